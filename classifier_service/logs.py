"""Logging: one JSON object per line (or uvicorn's plain text), and what may be logged.

``TIER_ROUTER_LOG_FORMAT`` is ``json`` (default) or ``text``. Prompt and answer text never
reaches the log unless ``TIER_ROUTER_LOG_PROMPTS`` is true: decisions of ``/v1/route`` are
logged with their request id, tier, reason and confidence (event ``route``), gateway answers
with the endpoint, tier, reason, route taken and escalations (event ``gateway``).
Fields of an event travel in ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any, Literal

LogFormat = Literal["json", "text"]

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message",
                                                                                 "color_message"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key != "fields" and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def log_config(fmt: LogFormat = "json", level: str = "info") -> dict[str, Any]:
    """uvicorn's logging config, plus the ``tier_router`` logger, in the chosen format."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["tier_router"] = {"handlers": ["default"], "level": level.upper(),
                                        "propagate": False}
    if fmt == "json":
        config["formatters"] = {"json": {"()": "classifier_service.logs.JsonFormatter"}}
        for handler in config["handlers"].values():
            handler["formatter"] = "json"
    return config
