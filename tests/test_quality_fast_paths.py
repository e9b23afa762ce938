"""The hand-written check's fast paths agree with the plain definitions they replace: the
marker trie with a flat alternation, the ASCII word pattern with ``\\w+``, the line-end read with
the whole line, the early exits of the degenerate and repetition signals with the full count."""

from __future__ import annotations

import random
import re

import pytest

from classifier_service.portfolio.quality import (
    DEFAULT_REFUSAL,
    DEFAULT_UNCERTAIN,
    QualityPolicy,
    _phrases,
)
from classifier_service.routing import quality as q
from classifier_service.routing.answer_features import text_words

PIECES = ["x", " ", "a", "'", "\u2019", "\n", ".", "\u00e9", "b", ",", "and", "word", "\t", "- ",
          "# ", "```", "~~~", "1. ", "zz", "\u00a0", "\u2003", "http://x.y/z", "\u6587\u7ae0", "_"]


def texts(seed: int, n: int = 3000, phrases: list[str] | None = None) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [rng.choice(phrases) if phrases and rng.random() < 0.3 else rng.choice(PIECES)
                 for _ in range(rng.randint(0, 60))]
        text = "".join(parts)
        out.append(text.replace("'", "\u2019") if rng.random() < 0.2 else text)
    return out


def flat(markers: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(m.lower()).replace("'", "['\u2019]") for m in markers)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


@pytest.mark.parametrize("markers", [DEFAULT_UNCERTAIN, DEFAULT_REFUSAL,
                                     ["a", "a b", "ab", "it's", "i'm not", "i'm", "x.y", "c++",
                                      "(?)", "don\u2019t"]])
def test_marker_trie_matches_what_the_flat_alternation_matches(markers: list[str]) -> None:
    trie, plain = _phrases(markers), flat(markers)
    phrases = [m.lower() for m in markers]
    for text in texts(1, phrases=phrases):
        for probe in (text, text.lower()):
            assert bool(trie.search(probe)) == bool(plain.search(probe)), probe


def plain_stops(text: str, policy: QualityPolicy) -> bool:
    if len(text) < policy.truncation_min_chars:
        return False
    last = text.rsplit("\n", 1)[-1].strip()
    if q.URL_AT_END.search(last):
        return False
    if not last or q.LIST_OR_BLOCK.match(last):
        return last.endswith((",", ";", ":")) if last else False
    if last.endswith((",", ";", ":", "-", "(", "/")):
        return True
    if not last[-1].isalnum():
        return False
    words = q.WORD.findall(last.lower())
    return bool(words) and (words[-1] in q.CONNECTIVES or len(words) >= 12)


def plain_degenerate(text: str) -> bool:
    visible = "".join(text.split())
    if len(visible) < q.DEGENERATE_ONE_CHAR:
        return False
    distinct = len(set(visible))
    return distinct == 1 or (len(visible) >= q.DEGENERATE_FEW_CHARS and distinct <= 3)


def plain_repetitive(lowered: str, policy: QualityPolicy) -> bool:
    tail = lowered[-q.REPETITION_WINDOW:]
    lines = [s for line in tail.splitlines() if len(s := line.strip()) > 10]
    if len(lines) >= 4 and len(set(lines)) <= len(lines) / 3:
        return True
    words = q.WORD.findall(tail)
    if len(words) < max(policy.repetition_min_words, 4):
        return False
    distinct = len(set(zip(words, words[1:], words[2:], words[3:], strict=False)))
    return distinct / (len(words) - 3) < policy.repetition_max_ratio


def test_signals_fast_paths_agree_with_their_plain_definitions() -> None:
    policy = QualityPolicy(truncation_min_chars=20, repetition_min_words=8)
    long_prose = "The river runs to the sea and the sea runs to the sky, " * 30
    cases = [*texts(2), long_prose, long_prose + "and", "z" * 80, "z zz zzz " * 20,
             "-.-." * 30, "word " * 5000, "\u6587\u7ae0 " * 400]
    for text in cases:
        lowered = text.strip().lower()
        assert q.words_of(text) == q.WORD.findall(text)
        assert q._stops_mid_sentence(text.strip(), policy) == plain_stops(text.strip(), policy)
        assert q._degenerate(text) == plain_degenerate(text)
        expected = plain_repetitive(lowered, policy)
        assert q._repetitive(lowered, policy) == expected
        if len(lowered) <= q.REPETITION_WINDOW:  # the words the check shares with it
            assert q._repetitive(lowered, policy, text_words(text)) == expected
