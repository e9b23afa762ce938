"""The loaded state of a running service: one portfolio, one model, and how they route.

A :class:`Runtime` is immutable once built; reloading builds a new one and swaps it in with a
single assignment, so a request in flight always sees one consistent pair.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

from classifier_service.errors import ModelArtifactError, TooLargeError
from classifier_service.portfolio.model import Portfolio, load_portfolio
from classifier_service.routing.artifact import Artifact, load_artifact
from classifier_service.routing.balancing import Balancer
from classifier_service.routing.classifier import Scores, TierClassifier
from classifier_service.routing.policy import Decision, RouteOptions, check_options, decide


@dataclass(frozen=True)
class Routed:
    scores: Scores
    decision: Decision


class Runtime:
    def __init__(
        self,
        portfolio: Portfolio,
        portfolio_path: Path,
        artifact: Artifact,
        classifier: TierClassifier | None = None,
    ) -> None:
        unknown = [t for t in artifact.tier_labels if not portfolio.has_tier(t)]
        if unknown:
            raise ModelArtifactError(
                artifact.path,
                f"the model predicts tiers {unknown} that the portfolio {portfolio_path} does not "
                f"define (its tiers: {', '.join(portfolio.tier_names)})",
            )
        self.portfolio = portfolio
        self.portfolio_path = portfolio_path
        self.classifier = classifier or TierClassifier(artifact)
        self.balancer = Balancer(portfolio)
        # The compiled classifier holds what serving needs; keep the metadata, not the
        # fitted estimators (tens of MB).
        self.artifact = replace(artifact, bundle={})

    @classmethod
    def load(cls, portfolio_path: Path, model_dir: Path) -> Runtime:
        portfolio = load_portfolio(portfolio_path)
        return cls(portfolio, Path(portfolio_path), load_artifact(model_dir))

    def with_portfolio(self, portfolio: Portfolio, portfolio_path: Path) -> Runtime:
        """The same model with another portfolio (checked against the model's tiers)."""
        return Runtime(portfolio, portfolio_path, self.artifact, self.classifier)

    @property
    def model_version(self) -> str:
        return self.artifact.model_version

    @property
    def confidence_threshold(self) -> float:
        explicit = self.portfolio.policy.confidence_threshold
        return explicit if explicit is not None else self.artifact.confidence_threshold

    def tier_probabilities(self, scores: Scores) -> dict[str, float]:
        """The classifier's probabilities over every portfolio tier, in ladder order."""
        return {t: scores.tiers.get(t, 0.0) for t in self.portfolio.tier_names}

    def check_length(self, prompt: str) -> None:
        """413 for a prompt over ``policy.max_prompt_chars``, before any work is spent on it."""
        self.check_chars(len(prompt))

    def check_chars(self, chars: int, what: str = "the prompt") -> None:
        """:meth:`check_length` for ``chars`` characters of ``what`` (e.g. a conversation)."""
        limit = self.portfolio.policy.max_prompt_chars
        if chars > limit:
            raise TooLargeError(
                f"{what} has {chars} characters; the limit "
                f"(policy.max_prompt_chars) is {limit}"
            )

    def route(
        self,
        prompt: str,
        agent: str | None = None,
        min_tier: str | None = None,
        max_tier: str | None = None,
        resident: Collection[str] | None = None,
    ) -> Routed:
        self.check_length(prompt)
        return self.route_checked(prompt, check_options(self.portfolio, agent, min_tier,
                                                        max_tier), resident)

    def route_checked(self, prompt: str, options: RouteOptions,
                      resident: Collection[str] | None = None,
                      prompt_chars: int | None = None) -> Routed:
        """:meth:`route` for a prompt whose length and options are already checked;
        ``prompt_chars``: what the context must hold, when more than ``prompt`` (a whole
        conversation, of which ``prompt`` is the classified last user message)."""
        scores = self.classifier.score(prompt)
        decision = decide(
            self.portfolio,
            scores,
            options,
            prompt_chars=len(prompt) if prompt_chars is None else prompt_chars,
            threshold=self.confidence_threshold,
            order=self.balancer.snapshot(),
            resident=resident if self.portfolio.policy.prefer_resident else None,
        )
        return Routed(scores, decision)
