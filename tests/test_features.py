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
