"""Durations written the way people write them in a policy: ``"15s"``, ``"30m"``, ``"12h"``, ``"1d"``."""

from __future__ import annotations

import re

__all__ = ["DurationError", "MAX_DURATION_S", "parse_duration", "format_duration"]

#: the longest duration a policy may state: 366 days. Events carry times up to the year 9000
#: (``events.MAX_TS``), so any event time plus any policy duration still formats as RFC 3339.
MAX_DURATION_S = 366 * 86400.0

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


class DurationError(ValueError):
    """A value that is not a duration like ``"15m"``, or one longer than :data:`MAX_DURATION_S`."""


def parse_duration(value: object) -> float:
    """Return the number of seconds a duration string stands for.

    Parameters
    ----------
    value : object
        A string made of a non-negative number and one unit: ``s``, ``m``, ``h`` or ``d``.

    Returns
    -------
    float
        Seconds.

    Raises
    ------
    DurationError
        When ``value`` is not such a string (numbers are refused: the unit must be explicit), or
        when it stands for more than 366 days.

    Examples
    --------
    >>> parse_duration("30m"), parse_duration("12h"), parse_duration("15s"), parse_duration("1d")
    (1800.0, 43200.0, 15.0, 86400.0)
    >>> try:
    ...     parse_duration(15)
    ... except DurationError as exc:
    ...     print(exc)
    expected a duration like "15m", got 15
    >>> try:
    ...     parse_duration("400d")
    ... except DurationError as exc:
    ...     print(exc)
    longer than 366 days: '400d'
    """
    if isinstance(value, str):
        m = _RE.match(value)
        if m:
            out = float(m.group(1)) * _UNITS[m.group(2)]  # (inf for a number too long for a float)
            if not out <= MAX_DURATION_S:
                raise DurationError(f"longer than 366 days: {value[:40]!r}")
            return out
    raise DurationError(f'expected a duration like "15m", got {value!r}')


def format_duration(seconds: float | None) -> str:
    """Format seconds back into the largest exact unit (``None`` means no limit).

    Examples
    --------
    >>> format_duration(900), format_duration(43200), format_duration(90), format_duration(None)
    ('15m', '12h', '90s', 'none')
    """
    if seconds is None:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
