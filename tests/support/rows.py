"""A small labelled training set: eight prompts per standard tier."""

from __future__ import annotations

SIMPLE = ["is this spam: 'win a free phone'", "positive or negative: great food",
          "convert 3 km to miles", "extract the date: meeting on 4 May", "classify: refund request",
          "translate 'hello' to spanish", "uppercase this: hello world", "yes or no: is 7 prime"]

MEDIUM = ["why is the sky blue", "summarise this article about rail strikes",
          "draft an email asking for a day off", "give me ideas for a birthday party",
          "how do I boil an egg", "explain what inflation is", "rewrite this more politely",
          "what is the capital of peru"]

COMPLEX = ["write a poem about the sea at night", "write a short story about a lost robot",
           "plan a 5 day trip with a budget of 800 and two kids, step by step",
           "analyse the trade-offs of remote work for a startup",
           "write a sonnet about winter", "design a distributed rate limiter",
           "solve: a train leaves at 3pm at 60 mph, another at 4pm at 80 mph, when do they meet",
           "write a haiku about coffee"]


def small_rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for tier, prompts in (("simple", SIMPLE), ("medium", MEDIUM), ("complex", COMPLEX)):
        rows += [{"prompt": p, "tier": tier, "category": f"kind-{tier}"} for p in prompts]
    return rows
