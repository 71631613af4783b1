"""Expiry after a restart or rebalance waits until the input already in the topics is decided.

A worker that takes partitions over restores their state from the changelog, which is as old as
the last commit point (streams/service/pipeline/interval.py): the input after it is read again. Deadlines
that passed meanwhile must not fire before that input is decided. The input may hold activity
that kept a session alive, or the IDS alert that already revoked it before the crash (its
decision was published). Firing first would revoke a live session for idleness, or publish a
second revocation with another reason and id.

:class:`CatchUp` holds the end offset of every input partition at assignment and lets the expiry
timer run once the worker has decided up to it (or its committed offset already covers it), or
after ``max_wait_s``, whichever comes first, so a huge backlog delays expiry by a bounded time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["CatchUp"]


class CatchUp:
    """The input partitions not yet decided up to their end offset at assignment.

    Parameters
    ----------
    max_wait_s : float
        Longest wait after :meth:`start`; then expiry runs whatever is left.
    clock : callable
        Monotonic seconds; injected so tests advance it by hand.

    Examples
    --------
    >>> from collections import namedtuple
    >>> Msg = namedtuple("Msg", "tp offset")
    >>> now = [0.0]
    >>> c = CatchUp(30.0, clock=lambda: now[0])
    >>> c.start({"activity-0": 10, "activity-1": 4, "identity-0": 0})  # identity-0 is empty
    >>> c.committed({"activity-1": 4}); c.done()                       # activity-1 needs nothing
    False
    >>> c.decided([Msg("activity-0", 8)]); c.done()
    False
    >>> c.decided([Msg("activity-0", 9)]); c.done(), c.waited_s
    (True, 0.0)
    """

    __slots__ = ("max_wait_s", "clock", "_ends", "_started", "_deadline", "waited_s", "last_decided")

    def __init__(self, max_wait_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(max_wait_s, (int, float)) or isinstance(max_wait_s, bool) or not max_wait_s >= 0:
            raise ValueError(f"CatchUp: max_wait_s must be a number of seconds >= 0, got {max_wait_s!r}")
        if not callable(clock):
            raise TypeError("CatchUp: clock must be callable() -> seconds")
        self.max_wait_s = float(max_wait_s)
        self.clock = clock
        self._ends: dict[Any, int] = {}
        self._started = self._deadline = 0.0
        #: how long the last catch-up took (None while it runs)
        self.waited_s: float | None = 0.0
        #: the newest offset decided of each partition waited for (diagnostics)
        self.last_decided: dict[Any, int] = {}

    @property
    def pending(self) -> int:
        """Partitions not caught up yet."""
        return len(self._ends)

    def start(self, end_offsets: Mapping[Any, int | None]) -> None:
        """Partitions were assigned: their end offsets (the next offset to be written) now."""
        self._ends = {tp: end for tp, end in end_offsets.items() if end}
        self.last_decided = {}
        self._started = self.clock()
        self._deadline = self._started + self.max_wait_s
        self.waited_s = None if self._ends else 0.0

    def decided(self, messages: Iterable[Any]) -> None:
        """A step decided these messages (anything with ``.tp`` and ``.offset``)."""
        ends = self._ends
        if not ends:
            return
        last = self.last_decided
        for m in messages:
            end = ends.get(m.tp)
            if end is not None:
                last[m.tp] = m.offset
                if m.offset >= end - 1:
                    del ends[m.tp]

    def left(self) -> dict[Any, int]:
        """The partitions not caught up yet and their end offsets."""
        return dict(self._ends)

    def committed(self, offsets: Mapping[Any, int | None]) -> None:
        """Committed offsets: a partition whose commit already covers its end needs nothing read."""
        ends = self._ends
        for tp in [tp for tp, end in ends.items() if (offsets.get(tp) or 0) >= end]:
            del ends[tp]

    def done(self) -> bool:
        """Whether deadlines may fire: caught up, or waited ``max_wait_s``."""
        if self._ends and self.clock() < self._deadline:
            return False
        if self.waited_s is None:
            self.waited_s = self.clock() - self._started
            self._ends = {}
        return True
