"""The quality check: one group of tests per signal, the portfolio's knobs, and /v1/quality."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from classifier_service.errors import PortfolioError
from classifier_service.portfolio.model import parse_portfolio
from classifier_service.portfolio.quality import QualityPolicy
from classifier_service.routing.quality import check
from tests.conftest import portfolio_yaml

POLICY = QualityPolicy()
GOOD_ESSAY = (
    "Remote work lets a startup hire from anywhere and saves on office rent, which matters "
    "when money is short. It also slows down the informal learning that happens when people "
    "sit together, and it asks more of managers, who must write things down. A hybrid week "
    "with two fixed office days is a common compromise. In the end, the right answer depends "
    "on how much of the work needs quick back-and-forth between people."
)


def reasons(response: str, **kw: object) -> list[str]:
    return list(check(response, POLICY, **kw).reasons)  # type: ignore[arg-type]


# -- empty and too short ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "...", "```\n```", "—"])
def test_empty(text: str) -> None:
    result = check(text, POLICY)
    assert "empty" in result.reasons
    assert result.escalate and result.score <= 0.4


def test_a_label_is_a_full_answer_to_a_classification() -> None:
    assert reasons("Positive", kind="classification") == []
    assert reasons("4", kind="extraction") == []


def test_a_label_is_too_short_for_an_essay() -> None:
    result = check("Positive.", POLICY, kind="analysis")
    assert result.reasons == ["too_short"]
    assert result.escalate
    assert reasons("A dragon.", kind="creative_writing") == ["too_short"]
    assert reasons(GOOD_ESSAY, kind="analysis") == []


def test_without_a_kind_the_tier_sets_the_minimum() -> None:
    assert reasons("Yes.", tier="simple") == []
    assert reasons("Yes.", tier="complex") == ["too_short"]


# -- truncation ---------------------------------------------------------------------------


def test_finish_reason_length_without_a_cap_is_truncated() -> None:
    assert "truncated" in reasons(GOOD_ESSAY, finish_reason="length")


def test_finish_reason_length_at_the_callers_own_cap_is_what_was_asked() -> None:
    assert "truncated" not in reasons(GOOD_ESSAY, finish_reason="length", max_tokens=64)
    assert reasons(GOOD_ESSAY, finish_reason="stop") == []


def test_a_sentence_cut_off() -> None:
    cut = GOOD_ESSAY.rsplit(" ", 12)[0]  # "... depends on how much of the work needs"
    assert cut[-1].isalpha()
    assert "truncated" in reasons(cut)
    assert "truncated" in reasons(GOOD_ESSAY[:-1] + " and")
    assert "truncated" in reasons(GOOD_ESSAY + "\nFirst, the costs are,")


def test_a_list_cut_off() -> None:
    items = "\n".join(f"{i}. Idea number {i}: plan a small weekend trip nearby." for i in range(8))
    assert "truncated" not in reasons(items)
    assert "truncated" in reasons(items + "\n8. Visit the,")


def test_short_answers_and_sign_offs_are_not_truncated() -> None:
    assert reasons("Paris") == []
    assert "truncated" not in reasons(GOOD_ESSAY + "\nHope this helps")


def test_unclosed_code_fence() -> None:
    code = "Here is the function:\n```python\ndef add(a, b):\n    return a + b\n"
    assert "unclosed_code" in reasons(code, kind="code")
    assert "unclosed_code" not in reasons(code + "```\n", kind="code")
    assert check(code, POLICY, kind="code").escalate


# -- uncertainty and refusal ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I'm not sure, but I think the capital is Sydney.",
        "I don\u2019t know the exact year; it could be 1850 or so.",
        "Honestly, it's hard to say without more data.",
        "Ich bin mir nicht sicher, aber es könnte 1871 gewesen sein.",
        "Je ne sais pas exactement, peut-être en 1850.",
        "No estoy seguro, pero creo que fue en 1850.",
    ],
)
def test_explicit_uncertainty(text: str) -> None:
    assert "uncertain" in reasons(text)


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that request.",
        "As an AI language model, I cannot browse the internet.",
        "Leider kann ich diese Frage nicht beantworten.",
        "Désolé, mais je ne peux pas répondre à cette question.",
        "Lo siento, pero no puedo ayudarte con eso.",
    ],
)
def test_refusals(text: str) -> None:
    result = check(text, POLICY)
    assert "refusal" in result.reasons
    assert result.escalate


def test_confident_answers_have_no_markers() -> None:
    assert reasons("The Berlin Wall fell on 9 November 1989.") == []
    assert reasons("Knowing the difference matters: the first is a noun.") == []  # "know"


# -- log-probability and repetition --------------------------------------------------------


def test_low_mean_logprob() -> None:
    assert "low_logprob" in reasons("The answer is 42.", avg_logprob=-2.3)
    assert "low_logprob" not in reasons("The answer is 42.", avg_logprob=-0.2)
    assert "low_logprob" not in reasons("The answer is 42.")


def test_degenerate_repetition() -> None:
    loop = "The best way to learn is to practice. " * 20
    assert "repetition" in reasons(loop)
    lines = "\n".join(["- buy milk and eggs today"] * 6)
    assert "repetition" in reasons(lines)
    assert "repetition" not in reasons(GOOD_ESSAY)


def test_score_combines_signals() -> None:
    one = check("I'm not sure, but I believe the Romans built the first one.", POLICY,
                kind="open_qa")
    two = check("I'm not sure, but I believe the Romans built the first one.", POLICY,
                kind="open_qa", avg_logprob=-3)
    assert one.reasons == ["uncertain"] and two.reasons == ["uncertain", "low_logprob"]
    assert 0 <= two.score < one.score < 1
    assert check(GOOD_ESSAY, POLICY, kind="analysis").score == 1.0


# -- the portfolio's quality section --------------------------------------------------------


def test_portfolio_overrides_markers_and_thresholds() -> None:
    text = portfolio_yaml() + (
        "quality:\n"
        "  escalate_below: 0.3\n"
        "  low_logprob: -0.5\n"
        "  uncertain_markers: ['vielleicht']\n"
        "  min_chars: {classification: 5}\n"
    )
    policy = parse_portfolio(text).quality
    assert "uncertain" in check("Vielleicht 1871.", policy).reasons
    assert "uncertain" not in check("I'm not sure.", policy).reasons  # replaced, not added
    assert check("I'm not sure.", policy, avg_logprob=-0.7).reasons == ["low_logprob"]
    assert not check("Vielleicht 1871.", policy).escalate  # 0.5 is not below 0.3
    assert check("Pos", policy, kind="classification").reasons == ["too_short"]


def test_portfolio_rejects_bad_quality_settings() -> None:
    with pytest.raises(PortfolioError, match=r"quality\.escalate_below"):
        parse_portfolio(portfolio_yaml() + "quality: {escalate_below: 3}\n")
    with pytest.raises(PortfolioError, match=r"quality\.markers: Extra inputs"):
        parse_portfolio(portfolio_yaml() + "quality: {markers: []}\n")


# -- POST /v1/quality -----------------------------------------------------------------------


def test_quality_endpoint_escalates_to_the_next_tier(client: TestClient) -> None:
    body = {"prompt": "Write an essay on the causes of the First World War",
            "response": "I'm not sure.", "tier": "simple"}
    data = client.post("/v1/quality", json=body).json()
    assert data["escalate"] is True
    assert set(data["reasons"]) >= {"uncertain", "too_short"}
    assert data["next_tier"] == "medium"
    assert data["next_endpoint"]["name"] == "llama2-13b"
    assert data["tier"] == "simple"
    assert 0 <= data["score"] < 0.6


def test_quality_endpoint_passes_a_good_answer(client: TestClient) -> None:
    data = client.post("/v1/quality", json={
        "prompt": "Is this review positive or negative? 'Great value, fast delivery.'",
        "response": "Positive", "finish_reason": "stop"}).json()
    assert data == {"escalate": False, "reasons": [], "score": 1.0, "tier": "simple",
                    "category": "classification", "next_tier": None, "next_endpoint": None}


def test_quality_endpoint_at_the_top_tier(client: TestClient) -> None:
    data = client.post("/v1/quality", json={"prompt": "write a poem", "response": "",
                                            "tier": "complex"}).json()
    assert data["escalate"] is True and data["reasons"][0] == "empty"
    assert data["next_tier"] is None and data["next_endpoint"] is None


def test_quality_endpoint_capped_length(client: TestClient) -> None:
    body: dict[str, object] = {
        "prompt": "Explain the trade-offs of remote work for a startup", "response": GOOD_ESSAY,
        "finish_reason": "length", "tier": "medium"}
    assert "truncated" in client.post("/v1/quality", json=body).json()["reasons"]
    body["max_tokens"] = 100
    assert client.post("/v1/quality", json=body).json()["reasons"] == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"prompt": "", "response": "x"}, "empty"),
        ({"prompt": "hi"}, "response"),
        ({"prompt": "hi", "response": "x", "tier": "mega"}, "unknown tier 'mega'"),
        ({"prompt": "hi", "response": "x", "avg_logprob": 2}, "avg_logprob"),
        ({"prompt": "hi", "response": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "hi", "response": "x", "avg_logprob": "high"}, "valid number"),
        ({"prompt": "hi", "response": "x", "avg_logprob": True}, "valid number"),
        ({"prompt": "hi", "response": "x", "avg_logprob": "-inf"}, "valid number"),
        ({"prompt": "hi", "response": "x", "max_tokens": "12.5"}, "valid integer"),
        ({"prompt": "hi", "response": "x", "max_tokens": "-3"}, "max_tokens"),
    ],
)
def test_quality_endpoint_bad_input(client: TestClient, body: dict[str, object],
                                    needle: str) -> None:
    response = client.post("/v1/quality", json=body)
    assert response.status_code == 422
    assert needle in response.text


@pytest.mark.parametrize("empty", ["", " ", None])
def test_quality_endpoint_empty_optional_numbers_are_unset(client: TestClient,
                                                           empty: str | None) -> None:
    """Dify sends an empty number input as "" (or null): the same as leaving it out."""
    body = {"prompt": "Explain the trade-offs of remote work for a startup",
            "response": GOOD_ESSAY, "finish_reason": "length", "tier": "medium"}
    unset = client.post("/v1/quality", json=body).json()
    empty_numbers = client.post("/v1/quality", json={**body, "avg_logprob": empty,
                                                     "max_tokens": empty})
    assert empty_numbers.status_code == 200, empty_numbers.text
    assert empty_numbers.json() == unset and "truncated" in unset["reasons"]


def test_quality_endpoint_reads_numbers_written_as_text(client: TestClient) -> None:
    body = {"prompt": "Explain the trade-offs of remote work for a startup",
            "response": GOOD_ESSAY, "finish_reason": "length", "tier": "medium"}
    as_text = client.post("/v1/quality", json={**body, "max_tokens": " 100 ",
                                               "avg_logprob": "-2.5"})
    as_numbers = client.post("/v1/quality", json={**body, "max_tokens": 100.0,
                                                  "avg_logprob": -2.5})
    assert as_text.status_code == 200, as_text.text
    assert as_text.json() == as_numbers.json()
    assert as_text.json()["reasons"] == ["low_logprob"]  # capped: not truncated


def test_quality_body_is_flat_for_dify(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/quality"]["post"]
    assert op["operationId"] == "check_quality" and op["description"]
    schema = spec["components"]["schemas"]["QualityRequest"]
    types = {name: prop.get("type") for name, prop in schema["properties"].items()}
    assert types == {"prompt": "string", "response": "string", "finish_reason": "string",
                     "tier": "string", "avg_logprob": "number", "max_tokens": "integer"}


def test_short_correct_answers_are_not_too_short() -> None:
    assert reasons("8", kind="open_qa") == []
    assert reasons("s[::-1]", kind="code") == []
    assert reasons("x = 4", kind="reasoning") == []


def test_an_answer_ending_with_a_link_is_not_cut_off() -> None:
    text = (GOOD_ESSAY + " The official documentation covers installation and the common "
            "troubleshooting steps in detail. You can read it at "
            "https://docs.python.org/3/installing/index.html")
    assert "truncated" not in reasons(text)
    assert "truncated" not in reasons(text + "/")


def test_quoted_phrases_are_not_the_answers_own_voice() -> None:
    assert reasons('"I don\'t know" in French is "je ne sais pas".') == []
    assert reasons("In German you say \u201ckeine Ahnung\u201d when you have no clue.") == []
    assert "uncertain" in reasons("I don't know, but \"maybe\" is a word.")


# -- degenerate ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["z" * 70_000, "z" * 16, "z zz zzz " * 20, "-.-." * 40,
                                  "ab" * 5_000])
def test_degenerate_answers_escalate_on_their_own(text: str) -> None:
    result = check(text, POLICY)
    assert "degenerate" in result.reasons
    assert result.escalate and result.score <= 0.0


@pytest.mark.parametrize("text", ["42", "1000000", "yes", "positive", GOOD_ESSAY,
                                  "0.5 * 2 = 1", "😀" * 3])
def test_real_answers_are_not_degenerate(text: str) -> None:
    assert "degenerate" not in reasons(text)


def test_quality_endpoint_flags_seventy_thousand_z(client: TestClient) -> None:
    answer = client.post("/v1/quality", json={"prompt": "Write a poem about the sea.",
                                              "response": "z" * 70_000})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["escalate"] is True and "degenerate" in body["reasons"]
