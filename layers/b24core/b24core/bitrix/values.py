"""Numbers and times a portal sends, read strictly.

A box's admin controls what the box answers, so every number in an answer is untrusted input: "²" is
``str.isdigit()`` yet no ``int()``, "1e309" is a float that is infinite, and a 400-digit integer or a
timestamp past year 9999 overflows what a datetime holds. These helpers answer None for anything that
is not a plain, finite, sane value; callers turn None into their own "bad answer" for that portal only.
"""

from __future__ import annotations

import math
from typing import Any

_MAX_DIGITS = 18  # below 2**63: IDs, counts, offsets, Unix times in ms


def is_digits(value: Any) -> bool:
    """A non-negative integer written with ASCII digits only (or an int)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return bool(0 <= value < 10**_MAX_DIGITS)
    return bool(
        isinstance(value, str) and 0 < len(value) <= _MAX_DIGITS and value.isascii() and value.isdigit()
    )


def as_int(value: Any) -> int | None:
    """An integer (a leading minus allowed), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**_MAX_DIGITS else None
    if isinstance(value, str):
        text = value[1:] if value.startswith("-") else value
        if is_digits(text):
            return int(value)
    return None


def as_float(value: Any) -> float | None:
    """A finite number (int, float or ASCII decimal text), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if abs(value) < 10**_MAX_DIGITS else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and 0 < len(value) <= 40 and value.isascii():
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) and abs(number) < 10**_MAX_DIGITS else None
    return None


def as_epoch(value: Any) -> float | None:
    """Unix seconds between 1970 and 2999 (a ``time`` block's start, finish, reset), or None."""
    number = as_float(value)
    return number if number is not None and 0 < number < 32_503_680_000 else None
