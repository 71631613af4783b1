"""Deadline index: a min-heap with lazy invalidation.

Each key has one true due time (``_due``) and one or more heap entries, of which at least one is
at or before it. Moving a deadline later costs one dict write (an earlier entry surfaces first and
is re-pushed at the true time); moving it earlier pushes one entry. An entry that surfaces finds
the key's true time: later, it is re-pushed there; earlier, it is a leftover and dropped; equal, the
key is due. "What expired by t" pops only entries at or before t, so it costs O(popped * log n)
and never scans. (No per-key record of which entry is "the" live one: that would be a second dict
as large as ``_due``, for the rare key that moved earlier twice.)
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from typing import Any

__all__ = ["DeadlineIndex"]


class DeadlineIndex:
    """Keys with due times; pop those due by ``now`` in time order (ties by key).

    Examples
    --------
    >>> d = DeadlineIndex()
    >>> d.set("a", 10.0); d.set("b", 5.0); d.set("a", 20.0)   # "a" moves later
    >>> list(d.pop_due(12.0))
    [('b', 5.0)]
    >>> list(d.pop_due(25.0)), len(d)
    ([('a', 20.0)], 0)
    """

    __slots__ = ("_heap", "_due")

    def __init__(self) -> None:
        self._heap: list[tuple[float, Any]] = []
        self._due: dict[Hashable, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._due

    def get(self, key: Hashable) -> float | None:
        """The key's due time, or ``None``."""
        return self._due.get(key)

    def set(self, key: Hashable, at: float) -> None:
        """Set (or move) the key's due time."""
        due = self._due
        old = due.get(key)
        due[key] = at
        if old is None or at < old:
            heapq.heappush(self._heap, (at, key))

    def discard(self, key: Hashable) -> None:
        """Forget the key (its heap entries die lazily)."""
        self._due.pop(key, None)

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()

    def next_due(self) -> float | None:
        """A lower bound of the earliest due time (entries of forgotten keys on top are dropped first)."""
        heap, due = self._heap, self._due
        while heap:
            at, key = heap[0]
            d = due.get(key)
            if d is not None and d >= at:
                return at
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> Iterator[tuple[Any, float]]:
        """Yield ``(key, due)`` for every key due at or before ``now``, earliest first.

        A key is removed before it is yielded; the caller may ``set`` it again (even to a time
        at or before ``now``, which is then yielded in this same pass).
        """
        heap, due = self._heap, self._due
        pop, push = heapq.heappop, heapq.heappush
        while heap and heap[0][0] <= now:
            at, key = pop(heap)
            d = due.get(key)
            if d is None or d < at:
                continue  # forgotten, or a leftover: an entry at d came (or comes) first
            if d > at:
                push(heap, (d, key))  # moved later: re-queued at its true time (this pass if still due)
                continue
            del due[key]
            yield key, d
