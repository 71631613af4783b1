"""The commit interval: how often a step also writes the changelog and acks its inputs.

Every step publishes its decisions at once (steps 1-3 of the commit order in
:mod:`streams.service.pipeline.commit`). Writing the state it touched (step 4) and acking its input
messages (step 5) can wait: a step that is not a *commit point* hands its input messages to a
:class:`CommitInterval`, and the next commit point serializes every user touched since the last
one (once each, however many steps touched it) and acks every message held back. This is
Kafka Streams' record cache and ``commit.interval.ms``: a user who is active for the whole
interval costs one changelog record, not one per batch.

The invariant of the commit order holds: a commit point's changelog is serialized when it
decides, so it carries the effects of every step before it and of none after it; the committer
takes tickets in order, so those earlier steps' decisions are acknowledged before the changelog is
written and before any held-back offset is acked. A crash re-processes at most one interval of
input against the last committed state, and the engine re-issues the same decision ids.

A step must be a commit point when its caller waits for it to be committed (a Faust stream that
acks its own messages afterwards, a policy switch), and before a rebalance gives partitions away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["CommitInterval"]


class CommitInterval:
    """Input messages held back until the next commit point, and when that is due.

    Parameters
    ----------
    interval_s : float
        Longest time between two commit points; ``0`` makes every step one (no hold-back).
    clock : callable
        Monotonic seconds; injected so tests advance it by hand.

    Examples
    --------
    >>> now = [0.0]
    >>> ci = CommitInterval(1.0, clock=lambda: now[0])
    >>> ci.hold(["m1", "m2"]); ci.due(), ci.held
    (False, 2)
    >>> now[0] = 1.0
    >>> ci.due(), ci.take(), ci.held, ci.due()
    (True, ['m1', 'm2'], 0, False)
    >>> ci.due(force=True)
    True
    """

    __slots__ = ("interval_s", "clock", "_messages", "_last")

    def __init__(self, interval_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(interval_s, (int, float)) or isinstance(interval_s, bool) or not 0 <= interval_s <= 60:
            raise ValueError(f"CommitInterval: interval_s must be a number of seconds in [0, 60], got {interval_s!r}")
        if not callable(clock):
            raise TypeError("CommitInterval: clock must be callable() -> seconds")
        self.interval_s = float(interval_s)
        self.clock = clock
        self._messages: list[Any] = []
        self._last = clock()

    @property
    def held(self) -> int:
        """Input messages waiting for the next commit point."""
        return len(self._messages)

    def hold(self, messages: Iterable[Any]) -> None:
        """Keep a step's input messages until the next commit point acks them."""
        self._messages.extend(messages)

    def due(self, *, force: bool = False) -> bool:
        """Whether the step deciding now must be a commit point."""
        return force or self.interval_s == 0 or self.clock() - self._last >= self.interval_s

    def take(self) -> list[Any]:
        """At a commit point: every message held back (the point's ticket acks them); the interval
        restarts."""
        messages, self._messages = self._messages, []
        self._last = self.clock()
        return messages
