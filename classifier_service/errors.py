"""Domain errors of tier-router, and the one place that maps them to HTTP.

The tree::

    TierRouterError                 base of everything the service raises on purpose
    ├── ConfigError                 a file the service needs cannot be used (start-up refuses)
    │   ├── PortfolioError          the portfolio YAML is missing, malformed or inconsistent
    │   └── ModelArtifactError      the model folder is missing, corrupt or mismatched
    ├── DataError                   labelled training data cannot be read
    └── RequestError                a request cannot be served as asked (HTTP 4xx)
        ├── InvalidRequestError     a field names something that does not exist (422)
        ├── TooLargeError           the request exceeds a configured size (413)
        └── PreloadRefused          loading a model would cross its GPU's alert line (409)

Configuration errors stop start-up with a message that names the file, the field and the
problem; request errors become a JSON answer in FastAPI's ``{"detail": ...}`` shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TierRouterError(Exception):
    """Base class of every error tier-router raises on purpose."""


class ConfigError(TierRouterError):
    """A configuration file or artifact cannot be used."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class PortfolioError(ConfigError):
    """The portfolio is missing, malformed or inconsistent."""


class ModelArtifactError(ConfigError):
    """The model folder is missing, corrupt, or was built for something else."""


class DataError(TierRouterError):
    """Labelled training data cannot be read."""


class RequestError(TierRouterError):
    """A request cannot be served as asked; carries its HTTP status."""

    status_code = 400

    def detail(self) -> Any:
        return str(self)


class InvalidRequestError(RequestError):
    """A field of the request refers to something that does not exist (HTTP 422).

    ``loc`` follows FastAPI's validation-error location, e.g. ``("body", "min_tier")``.
    """

    status_code = 422

    def __init__(self, loc: tuple[str | int, ...], msg: str, value: Any = None) -> None:
        self.loc = loc
        self.msg = msg
        self.value = value
        super().__init__(f"{'.'.join(str(p) for p in loc)}: {msg}")

    def detail(self) -> list[dict[str, Any]]:
        return [
            {"type": "value_error", "loc": list(self.loc), "msg": self.msg, "input": self.value}
        ]


class TooLargeError(RequestError):
    """The request is larger than a limit of the portfolio or of a model's context (HTTP 413)."""

    status_code = 413


class PreloadRefused(RequestError):
    """Loading a model would push its GPU over the alert threshold (HTTP 409)."""

    status_code = 409
