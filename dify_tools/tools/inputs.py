"""Tool inputs as Dify passes them: text, numbers as numbers or text, empty meaning unset."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class InputError(ValueError):
    """A tool input cannot be used; the message names the input and the problem."""


def text(params: Mapping[str, Any], name: str, *, required: bool = False,
         allow_empty: bool = False) -> str | None:
    """The text input ``name``; ``None`` when unset (missing, null or blank)."""
    value = params.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not allow_empty):
        if required:
            raise InputError(f"The input {name!r} is empty: connect a variable or enter text.")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"The input {name!r} must be text, not {type(value).__name__}.")
    return str(value) if allow_empty else str(value).strip()


def number(params: Mapping[str, Any], name: str, *, whole: bool = False,
           at_most: float | None = None, above: float | None = None,
           at_least: float | None = None, required: bool = False) -> float | int | None:
    """The number input ``name`` (a number or its text); ``None`` when unset."""
    value = params.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError(f"The input {name!r} is empty: connect a variable or enter a "
                             "number.")
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        result = float(value)
    except (TypeError, ValueError):
        raise InputError(f"The input {name!r} must be a number, not {value!r}.") from None
    if not math.isfinite(result):
        raise InputError(f"The input {name!r} must be a finite number, not {value!r}.")
    if whole and not result.is_integer():
        raise InputError(f"The input {name!r} must be a whole number, not {value!r}.")
    if at_most is not None and result > at_most:
        raise InputError(f"The input {name!r} must be at most {at_most:g}, not {value!r}.")
    if at_least is not None and result < at_least:
        raise InputError(f"The input {name!r} must be at least {at_least:g}, not {value!r}.")
    if above is not None and result <= above:
        raise InputError(f"The input {name!r} must be above {above:g}, not {value!r}.")
    return int(result) if whole else result
