"""The tier-router tool provider: checks the credentials against ``GET /v1/portfolio``."""

from __future__ import annotations

from typing import Any

from dify_plugin import ToolProvider
from dify_plugin.errors.tool import ToolProviderCredentialValidationError

from tier_router_client import ServiceError, TierRouterClient


class TierRouterProvider(ToolProvider):
    def _validate_credentials(self, credentials: dict[str, Any]) -> None:
        try:
            client = TierRouterClient.from_credentials(credentials)
            portfolio = client.portfolio()
        except ServiceError as exc:
            raise ToolProviderCredentialValidationError(str(exc)) from None
        if not isinstance(portfolio.get("tiers"), list) or not portfolio["tiers"]:
            raise ToolProviderCredentialValidationError(
                f"{client.base_url}/v1/portfolio answered, but not with a tier-router "
                "portfolio (no tiers); is this the address of tier-router?")
