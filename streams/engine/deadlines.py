"""Deadline index: a min-heap with lazy invalidation.

Each key has one true due time (``_due``) and at most one *live* heap entry (``_mark``). Moving a
deadline later costs nothing (the old entry is re-pushed when it surfaces); moving it earlier
pushes one entry. "What expired by t" pops only entries at or before t, so it costs
O(popped * log n) and never scans.
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

    __slots__ = ("_heap", "_due", "_mark")

    def __init__(self) -> None:
        self._heap: list[tuple[float, Any]] = []
        self._due: dict[Hashable, float] = {}
        self._mark: dict[Hashable, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._due

    def get(self, key: Hashable) -> float | None:
        """The key's due time, or ``None``."""
        return self._due.get(key)

    def set(self, key: Hashable, at: float) -> None:
        """Set (or move) the key's due time."""
        self._due[key] = at
        mark = self._mark.get(key)
        if mark is None or at < mark:
            self._mark[key] = at
            heapq.heappush(self._heap, (at, key))

    def discard(self, key: Hashable) -> None:
        """Forget the key (its heap entries die lazily)."""
        self._due.pop(key, None)

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()
        self._mark.clear()

    def next_due(self) -> float | None:
        """A lower bound of the earliest due time (dead entries on top are dropped first)."""
        heap = self._heap
        while heap:
            at, key = heap[0]
            if self._mark.get(key) == at and key in self._due:
                return at
            heapq.heappop(heap)
            if self._mark.get(key) == at:
                del self._mark[key]
        return None

    def pop_due(self, now: float) -> Iterator[tuple[Any, float]]:
        """Yield ``(key, due)`` for every key due at or before ``now``, earliest first.

        A key is removed before it is yielded; the caller may ``set`` it again (even to a time
        at or before ``now``, which is then yielded in this same pass).
        """
        heap, due, mark = self._heap, self._due, self._mark
        pop, push = heapq.heappop, heapq.heappush
        while heap and heap[0][0] <= now:
            at, key = pop(heap)
            if mark.get(key) != at:
                continue  # dead entry
            del mark[key]
            d = due.get(key)
            if d is None:
                continue
            if d <= now:
                if d > at:
                    # moved later but still due: keep time order by re-queueing at its true time
                    mark[key] = d
                    push(heap, (d, key))
                    continue
                del due[key]
                yield key, d
            else:
                mark[key] = d
                push(heap, (d, key))
