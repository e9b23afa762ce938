"""The loaded state of a running service: one portfolio, one model, and how they route.

A :class:`Runtime` is immutable once built; reloading builds a new one and swaps it in with a
single assignment, so a request in flight always sees one consistent pair.

The model folder is a classifier's, or an outcome model's (its ``metadata.json`` says
``format: tier-router-outcomes``): then the classifier is the copy inside it (``classifier/``,
checksums in the outcome metadata) and the outcome model decides the ladder step of the policy
and, when it has a check, judges answers.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from classifier_service.errors import ModelArtifactError, TooLargeError
from classifier_service.portfolio.model import Portfolio, load_portfolio
from classifier_service.routing.artifact import Artifact, load_artifact
from classifier_service.routing.balancing import Balancer
from classifier_service.routing.classifier import Scores, TierClassifier
from classifier_service.routing.outcome_model import OutcomeModel, is_outcome_folder
from classifier_service.routing.policy import (
    Chooser,
    Decision,
    Reason,
    RouteOptions,
    check_options,
    decide,
)


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
        outcome: OutcomeModel | None = None,
    ) -> None:
        if outcome is not None:  # first: its message names what the outcome model lacks
            _check_outcome_tiers(outcome, portfolio, portfolio_path)
        unknown = [t for t in artifact.tier_labels if not portfolio.has_tier(t)]
        if unknown:
            raise ModelArtifactError(
                artifact.path,
                f"the model predicts tiers {unknown} that the portfolio {portfolio_path} does not "
                f"define (its tiers: {', '.join(portfolio.tier_names)})",
            )
        self.outcome = outcome
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
        outcome = None
        if is_outcome_folder(model_dir):
            outcome = OutcomeModel.load(model_dir)
            base = outcome.classifier_dir
            if base is None:
                raise ModelArtifactError(model_dir, "this outcome model holds no classifier/ "
                                         "folder (the classifier it falls back to); retrain it "
                                         "with tier-router train --outcomes")
            artifact = load_artifact(base)
        else:
            artifact = load_artifact(model_dir)
        return cls(portfolio, Path(portfolio_path), artifact, outcome=outcome)

    def with_portfolio(self, portfolio: Portfolio, portfolio_path: Path) -> Runtime:
        """The same model with another portfolio (checked against the model's tiers)."""
        return Runtime(portfolio, portfolio_path, self.artifact, self.classifier, self.outcome)

    @property
    def model_version(self) -> str:
        if self.outcome is not None:
            return self.outcome.model_version
        return self.artifact.model_version

    @property
    def model_dir(self) -> Path:
        """The folder ``--model`` named (the outcome model's, when one is loaded)."""
        if self.outcome is not None and self.outcome.path is not None:
            return self.outcome.path
        return self.artifact.path

    @property
    def operating_point(self) -> dict[str, Any] | None:
        """The outcome model's calibrated point as its metadata holds it (None: a classifier)."""
        if self.outcome is None:
            return None
        point = self.outcome.metadata.get("operating_point")
        return dict(point) if isinstance(point, dict) else None

    @property
    def model_kind(self) -> Literal["classifier", "outcomes"]:
        return "outcomes" if self.outcome is not None else "classifier"

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
        choose: Chooser | None = None
        if self.outcome is not None:
            outcome = self.outcome

            def choose(opts: RouteOptions) -> tuple[str, Reason, str]:
                choice = outcome.choose(prompt, scores, opts.min_tier, opts.max_tier)
                return choice.tier, choice.reason, choice.detail

        decision = decide(
            self.portfolio,
            scores,
            options,
            prompt_chars=len(prompt) if prompt_chars is None else prompt_chars,
            threshold=self.confidence_threshold,
            order=self.balancer.snapshot(),
            resident=resident if self.portfolio.policy.prefer_resident else None,
            choose=choose,
        )
        return Routed(scores, decision)


def _check_outcome_tiers(outcome: OutcomeModel, portfolio: Portfolio, portfolio_path: Path
                         ) -> None:
    """The outcome model decides over the portfolio's tiers: the same names, cheapest first."""
    path = outcome.path or Path("<outcome model>")
    missing = [t for t in outcome.tiers if not portfolio.has_tier(t)]
    if missing:
        raise ModelArtifactError(
            path, f"the outcome model's tiers {missing} are missing from the portfolio "
            f"{portfolio_path} (its tiers: {', '.join(portfolio.tier_names)})")
    unknown = [t for t in portfolio.tier_names if t not in outcome.tiers]
    if unknown:
        raise ModelArtifactError(
            path, f"the portfolio {portfolio_path} has tiers {unknown} that the outcome model "
            f"was not trained on (its tiers: {', '.join(outcome.tiers)}); retrain with this "
            "portfolio")
    if list(outcome.tiers) != list(portfolio.tier_names):
        raise ModelArtifactError(
            path, f"the outcome model orders its tiers {', '.join(outcome.tiers)}, the "
            f"portfolio {portfolio_path} {', '.join(portfolio.tier_names)} (cheapest first)")
