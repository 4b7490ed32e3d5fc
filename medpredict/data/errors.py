"""Errors and warnings about a user's data and study spec, each naming what is at fault."""

from __future__ import annotations

from collections.abc import Sequence


class DataError(ValueError):
    """The data cannot be used as given; the message says where and what was expected."""


class SpecError(ValueError):
    """A study spec is invalid; the message names each offending field."""


class DataWarning(UserWarning):
    """The data can be used, but something deserves a look (e.g. a likely leak)."""


def describe_rows(rows: Sequence[int], limit: int = 10) -> str:
    """``"rows 3, 17, 42"`` (1-based file row numbers), shortened past ``limit``."""
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def describe_limits(low: float | None, high: float | None) -> str:
    """Physical limits in words; at least one of ``low`` and ``high`` is given.

    Examples
    --------
    >>> describe_limits(0, 130), describe_limits(0, None), describe_limits(None, 300)
    ('0 to 130', 'at least 0', 'at most 300')
    """
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    if low is not None:
        return f"at least {low:g}"
    return f"at most {high:g}"
