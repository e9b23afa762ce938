"""Domain errors of tier-router: the whole tree, in one place.

The tree::

    TierRouterError                 base of everything the service raises on purpose
    ├── ConfigError                 a file the service needs cannot be used (start-up refuses)
    │   ├── PortfolioError          the portfolio YAML is missing, malformed or inconsistent
    │   └── ModelArtifactError      the model folder is missing, corrupt or mismatched
    ├── MissingKeyError             an endpoint's API-key variable is not set
    ├── DataError                   labelled training data cannot be read
    ├── ExportError                 the OpenAPI document cannot be exported for Dify
    ├── GpuReadError                a GPU memory source cannot be read (becomes a detail)
    ├── ResidencyError              an Ollama server could not load or unload a model
    ├── BackendError                an endpoint could not answer (the gateway fails over)
    └── RequestError                a request cannot be served as asked (HTTP 4xx, 503)
        ├── InvalidRequestError     a field names something that does not exist (422)
        ├── TooLargeError           the request exceeds a configured size (413)
        ├── PreloadRefused          loading a model would cross its GPU's alert line (409)
        ├── UnknownModelError       the gateway's ``model`` is no tier or endpoint (404)
        ├── NoBackendError          no endpoint of the chain could answer (503)
        ├── UpstreamRejected        the endpoint refused the request itself (its 4xx)
        └── AuthError               refused by the key check
            ├── Unauthorized        no key, or an unknown one (401)
            └── Forbidden           a known key or client, not allowed here (403)

Configuration errors stop start-up with a message that names the file, the field and the
problem. Request errors are raised wherever they arise and rendered by the app's exception
handler (:mod:`classifier_service.app`) in the shape of the API that was called: FastAPI's
``{"detail": ...}``, OpenAI's ``{"error": {...}}`` or Ollama's ``{"error": "..."}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

ErrorStyle = Literal["detail", "openai", "ollama"]
"""The error shape of an API: FastAPI's ``detail``, OpenAI's ``error`` object, Ollama's string."""


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


class MissingKeyError(TierRouterError):
    """An endpoint names an API-key variable that is not set in this environment."""


class DataError(TierRouterError):
    """Labelled training data cannot be read."""


class ExportError(TierRouterError):
    """The service's OpenAPI document cannot be exported for Dify as it stands."""


class GpuReadError(TierRouterError):
    """A GPU memory source could not be read (kept inside the GPU monitor: it becomes a
    Snapshot detail)."""


class ResidencyError(TierRouterError):
    """An Ollama server could not load or unload a model."""


class BackendError(TierRouterError):
    """An endpoint could not answer: unreachable, too slow, or a server error (fail over)."""

    def __init__(self, endpoint: str, problem: str, status: int | None = None,
                 quote: str | None = None) -> None:
        self.endpoint = endpoint
        self.problem = problem
        self.status = status
        self.quote = quote
        """The server's own error text: it may quote the prompt, so it goes to the client
        (``str(error)``) but into logs only with prompt logging on."""
        super().__init__(f"{endpoint}: {problem}" + (f": {quote}" if quote else ""))


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


class UnknownModelError(RequestError):
    """The gateway's ``model`` is neither ``auto``, a tier nor an endpoint (HTTP 404)."""

    status_code = 404


class NoBackendError(RequestError):
    """No endpoint of the chain could answer (HTTP 503)."""

    status_code = 503


class ReloadNotPublished(RequestError):
    """A reload loaded, but could not be shared with the other workers (HTTP 503); the
    previous model keeps serving."""

    status_code = 503


class UpstreamRejected(RequestError):
    """The endpoint refused the request itself (a 4xx): the client's to fix, no failover."""

    def __init__(self, endpoint: str, status: int, text: str) -> None:
        self.status_code = status
        super().__init__(f"{endpoint} rejected the request (HTTP {status}): {text}")


class AuthError(RequestError):
    """Refused by the key check; ``style`` is the error shape of the API that was called."""

    def __init__(self, message: str, style: ErrorStyle = "detail") -> None:
        self.style = style
        super().__init__(message)


class Unauthorized(AuthError):
    """No key, or not a key this service knows (HTTP 401)."""

    status_code = 401


class Forbidden(AuthError):
    """A known key or client, but not allowed here (HTTP 403)."""

    status_code = 403
