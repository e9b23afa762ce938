from __future__ import annotations

from classifier_service.features import HEAD_TOKENS, TAIL_TOKENS, analyze, words


def test_words_are_lower_cased_unicode_tokens() -> None:
    assert words("What's the Größe of São Paulo?") == ["what's", "the", "größe", "of", "são",
                                                       "paulo"]


def test_unigrams_bigrams_and_markers() -> None:
    feats = analyze("Is this review positive?")
    assert feats[:4] == ["is", "this", "review", "positive"]
    assert "is this" in feats and "review positive" in feats
    assert "__first is" in feats and "__first2 is this" in feats
    assert "__ends_question" in feats
    assert "__len2" in feats  # 4 words: band log2(5) = 2
    assert "__multiline" not in feats and "__code_block" not in feats


def test_structure_markers() -> None:
    feats = analyze("fix this:\n```\nprint('x')\n```")
    assert {"__multiline", "__code_block", "__quoted"} <= set(feats)


def test_empty_prompt_has_only_the_length_band() -> None:
    assert analyze("  ?! ") == ["__len0"]


def test_long_prompts_are_read_at_head_and_tail() -> None:
    text = " ".join(f"w{i}" for i in range(5000))
    feats = analyze(text)
    toks = [f for f in feats if not f.startswith("__") and " " not in f]
    assert len(toks) == HEAD_TOKENS + TAIL_TOKENS
    assert toks[0] == "w0" and toks[-1] == "w4999"
    assert "w1000" not in toks
    assert "__len9" in feats


def test_analysis_is_deterministic() -> None:
    text = "Summarise the following email for my boss:\nHi team, the launch moves to May."
    assert analyze(text) == analyze(text)


def test_cjk_runs_become_character_bigrams() -> None:
    # no spaces in Chinese or Japanese: a run is split into overlapping character pairs
    assert words("请总结文章") == ["请总", "总结", "结文", "文章"]
    assert words("Pythonのlistを並べる") == ["python", "の", "list", "を並", "並べ", "べる"]
    assert words("東京 is big") == ["東京", "is", "big"]
    assert words("한국어") == ["한국", "국어"]
    feats = analyze("「配送が遅い」は肯定的\uff1f")
    assert "配送" in feats and "配送 送が" in feats and "__first 配送" in feats
    assert {"__ends_question", "__quoted"} <= set(feats)  # full-width ? and CJK quotes


def test_other_scripts_stay_words() -> None:
    assert words("Почему небо голубое?") == ["почему", "небо", "голубое"]
    assert words("¿Cuál es la capital?") == ["cuál", "es", "la", "capital"]


def test_ascii_fast_path_gives_the_general_paths_words() -> None:
    """ASCII text skips the CJK split; the words must be those of the general loop."""
    from itertools import pairwise

    from classifier_service import features

    def general(text: str) -> list[str]:
        toks: list[str] = []
        for tok in features.WORD.findall(text.lower()):
            if len(tok) > 1 and features.CJK_RUN.fullmatch(tok):
                toks.extend(a + b for a, b in pairwise(tok))
            else:
                toks.append(tok)
        return toks

    texts = ["What's the size of Sao Paulo?", "don't __init__ a_b x'y 'quoted' 3.14 --flag",
             "MiXeD CaSe\tTabs\nnew-lines", "", "   ", "it's O'Brien's",
             "東京 and 文章的主要 words", "naïve café"]
    for text in texts:
        assert words(text) == general(text), text


def test_analyze_words_returns_the_unigram_features() -> None:
    from classifier_service.features import analyze_words

    long = " ".join(f"w{i}" for i in range(HEAD_TOKENS + TAIL_TOKENS + 50))
    for text in ["Is this review positive?", long, "東京 tower", "__len3 __init__ x", ""]:
        feats, read = analyze_words(text)
        assert feats == analyze(text)
        assert feats[: len(read)] == read and (not read or " " not in "".join(read))
