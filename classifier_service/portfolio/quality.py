"""The portfolio's ``quality`` section: thresholds, weights and marker phrases of the answer
check (:mod:`classifier_service.routing.quality`), with their defaults."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_UNCERTAIN = [
    # English
    "i'm not sure", "i am not sure", "i'm not certain", "i am not certain", "i don't know",
    "i do not know", "i'm unsure", "i am unsure", "i cannot be certain", "i can't be certain",
    "i'm not confident", "i have no idea", "it's hard to say", "it is hard to say",
    "i might be wrong", "i may be wrong", "i could be wrong", "not entirely sure",
    "i don't have enough information", "i do not have enough information",
    "i cannot determine", "i can't determine", "unclear to me", "i'm guessing",
    # German
    "ich bin mir nicht sicher", "ich weiß es nicht", "ich weiss es nicht", "ich weiß nicht",
    "keine ahnung", "ich kann es nicht sagen", "schwer zu sagen", "ich bin unsicher",
    # French
    "je ne suis pas sûr", "je ne suis pas sure", "je ne suis pas certain", "je ne sais pas",
    "difficile à dire", "aucune idée", "je n'en suis pas sûr",
    # Spanish
    "no estoy seguro", "no estoy segura", "no lo sé", "no sé", "no tengo idea",
    "difícil de decir", "no estoy convencido",
]
DEFAULT_REFUSAL = [
    # English
    "i can't help with", "i cannot help with", "i can't assist with", "i cannot assist with",
    "i'm unable to", "i am unable to", "i won't be able to", "i can't provide",
    "i cannot provide", "i'm sorry, but i can't", "i'm sorry, but i cannot",
    "sorry, i can't", "sorry, i cannot", "as an ai language model", "as an ai, i",
    "i'm not able to", "i am not able to", "i must decline", "i can't do that",
    "i cannot do that", "i can't comply", "i cannot comply",
    # German
    "ich kann dabei nicht helfen", "ich kann ihnen dabei nicht helfen",
    "das kann ich nicht", "ich bin nicht in der lage", "als ki-sprachmodell",
    "leider kann ich", "ich darf nicht",
    # French
    "je ne peux pas vous aider", "je ne peux pas", "je suis incapable de",
    "en tant que modèle de langage", "désolé, mais je ne peux",
    # Spanish
    "no puedo ayudar", "no puedo ayudarte", "no puedo proporcionar", "no soy capaz de",
    "como modelo de lenguaje", "lo siento, pero no puedo",
]
DEFAULT_MIN_CHARS: dict[str, int] = {
    # A factual question may take a one-word answer ("Paris", "1989"); the kinds below it
    # ask for text that a word cannot be.
    "classification": 1, "extraction": 1, "conversion": 1, "template": 10, "closed_qa": 1,
    "open_qa": 1, "summarization": 60, "drafting": 120, "brainstorming": 40,
    "rewriting": 20, "code": 3, "reasoning": 1, "analysis": 150, "creative_writing": 120,
    "expert_knowledge": 120,
}
DEFAULT_WEIGHTS: dict[str, float] = {
    "empty": 1.0, "too_short": 0.5, "truncated": 0.6, "unclosed_code": 0.6, "uncertain": 0.5,
    "refusal": 0.8, "low_logprob": 0.5, "repetition": 0.6,
    "degenerate": 1.0,
}

class QualityPolicy(BaseModel):
    """The portfolio's ``quality`` section: thresholds, weights and markers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    escalate_below: float = Field(default=0.6, ge=0, le=1,
                                  description="Escalate when the score is below this.")
    low_logprob: float = Field(default=-1.0, le=0,
                               description="Mean token log-probability below this is low.")
    min_chars: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MIN_CHARS),
                                      description="Shortest acceptable answer per task kind.")
    min_chars_by_tier: dict[str, int] = Field(
        default_factory=lambda: {"simple": 1, "medium": 30, "complex": 120},
        description="Fallback when the model has no task kinds.")
    truncation_min_chars: int = Field(default=200, ge=0, description=(
        "Only answers at least this long are judged cut off mid-sentence."))
    repetition_min_words: int = Field(default=40, ge=8)
    repetition_max_ratio: float = Field(default=0.5, gt=0, le=1, description=(
        "Repetition when distinct 4-grams / all 4-grams falls below this."))
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    uncertain_markers: list[str] = Field(default_factory=lambda: list(DEFAULT_UNCERTAIN))
    refusal_markers: list[str] = Field(default_factory=lambda: list(DEFAULT_REFUSAL))

    @cached_property
    def uncertain_re(self) -> re.Pattern[str]:
        return _phrases(self.uncertain_markers)

    @cached_property
    def refusal_re(self) -> re.Pattern[str]:
        return _phrases(self.refusal_markers)


def _phrases(markers: list[str]) -> re.Pattern[str]:
    """Any of the phrases (lowercase, ``'`` also matching ``\u2019``) as a whole-word match.

    The alternatives are a trie (``i(?:\\ am\\ not\\ sure|\\ don['\u2019]t\\ know)``), not
    a flat list: the same phrases match, but each start position tries one branch per
    distinct next character instead of every phrase (a third of the check's time on a long
    answer went here)."""
    if not markers:
        return re.compile(r"(?!x)x")  # matches nothing
    trie: dict[str, Any] = {}
    for marker in markers:
        node = trie
        for ch in marker.lower():
            node = node.setdefault(ch, {})
        node[""] = {}  # a phrase ends here
    return re.compile(rf"(?<!\w){_trie_pattern(trie)}(?!\w)")


def _trie_pattern(node: dict[str, Any]) -> str:
    ends = "" in node
    parts = [("['\u2019]" if ch == "'" else re.escape(ch)) + _trie_pattern(child)
             for ch, child in sorted(node.items()) if ch]
    if not parts:
        return ""
    body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
    return f"(?:{body})?" if ends else body
