"""tier-router: route LLM requests between local models by task complexity."""

__version__ = "0.1.0"
