"""Constant-size sliding-window counters (two buckets, linearly weighted).

A window is ``[bucket_start, previous, current]`` (a list for :func:`window_add`, a tuple for
:func:`window_push`). The estimate at time ``t`` counts the current bucket fully and the previous
one in proportion to how much of it still lies inside the window, so a counter costs three numbers
however busy the session is.
"""

from __future__ import annotations

__all__ = ["window_add", "window_push", "window_estimate", "window_until"]


def window_add(w: list[float] | None, t: float, amount: float, width: float) -> list[float]:
    """Add ``amount`` at time ``t`` and return the (possibly new) window.

    Examples
    --------
    >>> w = window_add(None, 0.0, 5, 60.0)
    >>> w = window_add(w, 30.0, 5, 60.0)
    >>> window_estimate(w, 30.0, 60.0)
    10.0
    >>> window_estimate(w, 90.0, 60.0), window_estimate(w, 120.0, 60.0)
    (5.0, 0.0)
    """
    if w is None:
        return [t - t % width, 0.0, float(amount)]
    start = w[0]
    if t >= start + width:
        steps = (t - start) // width
        new_start = start + steps * width
        w[1] = w[2] if steps == 1 else 0.0
        w[2] = 0.0
        w[0] = new_start
    w[2] += amount  # an event older than the current bucket is counted in it: never lost
    return w


def window_push(w: tuple[float, float, float] | None, t: float, amount: int,
                width: float) -> tuple[float, float, float]:
    """:func:`window_add` for a window kept as a tuple: returns the new window.

    The counts stay ints when the amounts are (exact below 2**53, so every estimate is the same
    float), and a session's counters then hold a tuple, its start and two (often cached) small
    ints, not a list and three floats. ``float()`` them to get :func:`window_add`'s form.

    Examples
    --------
    >>> w = window_push(window_push(None, 0.0, 5, 60.0), 30.0, 5, 60.0)
    >>> w, window_estimate(w, 30.0, 60.0) == window_estimate(window_add(window_add(None, 0.0, 5, 60.0), 30.0, 5, 60.0), 30.0, 60.0)
    ((0.0, 0, 10), True)
    >>> window_push(w, 61.0, 1, 60.0), window_push(w, 150.0, 1, 60.0)
    ((60.0, 10, 1), (120.0, 0, 1))
    """
    if w is None:
        return (t - t % width, 0, amount)
    start, prev, cur = w
    if t >= start + width:
        steps = (t - start) // width
        return (start + steps * width, cur if steps == 1 else 0, amount)
    return (start, prev, cur + amount)  # an event older than the current bucket is counted in it: never lost


def window_estimate(w: list[float] | tuple[float, float, float] | None, t: float, width: float) -> float:
    """Estimated total over the ``width`` seconds before ``t``."""
    if w is None:
        return 0.0
    start, prev, cur = w
    if t < start + width:
        frac = (t - start) / width
        if frac < 0.0:
            frac = 0.0
        return prev * (1.0 - frac) + cur
    if t < start + 2 * width:
        return cur * (1.0 - (t - start - width) / width)
    return 0.0


def window_until(w: list[float] | tuple[float, float, float] | None, t: float, threshold: float, width: float) -> float:
    """First time at or after ``t`` when the estimate is no longer above ``threshold``.

    Examples
    --------
    >>> w = window_add(None, 0.0, 100, 60.0)
    >>> window_until(w, 0.0, 50, 60.0)
    90.0
    """
    if w is None or window_estimate(w, t, width) <= threshold:
        return t
    start, prev, cur = w
    end1 = start + width
    # first segment: prev*(1-(x-start)/width) + cur, decreasing in x
    if t < end1 and prev > 0 and cur <= threshold:
        x = start + width * (1.0 - (threshold - cur) / prev)
        return max(t, x)
    if t < end1 and cur > threshold or t >= end1:
        # second segment: cur*(1-(x-end1)/width)
        x = end1 + width * (1.0 - threshold / cur) if cur > 0 else end1
        return max(t, x)
    return max(t, end1)
