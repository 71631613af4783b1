"""How long the interpreter's garbage collector stops the worker (a source of latency tails).

A full (generation 2) collection walks every tracked object: with hundreds of thousands of
sessions in memory it holds the event loop for tens to hundreds of milliseconds, and every IDS
alert that arrives meanwhile waits. :class:`GcPauses` times each collection through
``gc.callbacks`` into a histogram by generation and logs the long ones, so an operator sees them.

It also keeps full collections short: after one completes, :meth:`GcPauses.maybe_freeze` (called
from the worker's timer, outside the collector) moves every object that survived it to the
permanent generation (``gc.freeze``), so the next full collection walks only what was allocated
since. Sessions are long-lived and acyclic, which is the case freezing is for. The cost: a cycle
that was alive when frozen is not reclaimed if it later becomes garbage; once an ``unfreeze_every_s``
everything is unfrozen, so the next full collection (one long pause) reclaims such cycles.
Without freezing, a worker under 5k events/s (``bench/service_bench.py``) runs a full collection
of 50-100 ms every few seconds.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

__all__ = ["GcPauses"]

log = logging.getLogger("lapse.gc")


class GcPauses:
    """Times garbage collections into ``histogram`` (labelled by generation).

    Parameters
    ----------
    histogram : prometheus_client.Histogram
        With one label, ``generation``.
    warn_s : float
        Collections at least this long are logged at WARNING.
    freeze : bool
        Freeze survivors after each full collection (see the module docstring).
    unfreeze_every_s : float
        How often everything is unfrozen, so that one full collection walks it all again.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry, Histogram
    >>> h = Histogram("gc_pause_seconds", "GC pauses", ["generation"], registry=CollectorRegistry())
    >>> pauses = GcPauses(h).install()
    >>> _ = gc.collect(2)
    >>> pauses.uninstall()
    >>> pauses.collections[2] >= 1
    True
    """

    def __init__(self, histogram: Any, *, warn_s: float = 0.05, freeze: bool = True,
                 unfreeze_every_s: float = 3600.0) -> None:
        if warn_s <= 0:
            raise ValueError(f"GcPauses: warn_s must be > 0, got {warn_s!r}")
        if unfreeze_every_s <= 0:
            raise ValueError(f"GcPauses: unfreeze_every_s must be > 0, got {unfreeze_every_s!r}")
        self.histogram = histogram
        self.warn_s = warn_s
        self.freeze = freeze
        self.unfreeze_every_s = unfreeze_every_s
        self._full_since_freeze = False
        self._unfrozen_at = time.monotonic()
        self.collections = [0, 0, 0]
        self.longest = 0.0
        self._t0: float | None = None

    def install(self) -> GcPauses:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def collect_and_freeze(self) -> None:
        """One full collection now, then freeze what survived: at worker start and after a
        rebalance (a pause already), so the first full collection under load does not walk every
        module, class and recovered session (a pause of tens of milliseconds with 100k recovered
        sessions)."""
        gc.collect()
        self._full_since_freeze = False
        if self.freeze:
            gc.freeze()

    def maybe_freeze(self) -> bool:
        """After a full collection: freeze its survivors (returns whether it did). Call it from
        the event loop, never from inside a collection.

        >>> from prometheus_client import CollectorRegistry, Histogram
        >>> h = Histogram("gc_pause_seconds", "GC pauses", ["generation"], registry=CollectorRegistry())
        >>> pauses = GcPauses(h).install()
        >>> _ = gc.collect(2)
        >>> pauses.maybe_freeze(), pauses.maybe_freeze(), gc.get_freeze_count() > 0
        (True, False, True)
        >>> pauses.uninstall(); gc.unfreeze()
        """
        if not self.freeze:
            return False
        if time.monotonic() - self._unfrozen_at >= self.unfreeze_every_s:
            self._unfrozen_at = time.monotonic()
            self._full_since_freeze = False
            gc.unfreeze()  # the next full collection walks (and reclaims) everything once
            return False
        if not self._full_since_freeze:
            return False
        self._full_since_freeze = False
        gc.freeze()
        return True

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        if self._t0 is None:
            return
        took = time.perf_counter() - self._t0
        self._t0 = None
        gen = int(info.get("generation", 0))
        self.collections[gen] += 1
        if gen == 2:
            self._full_since_freeze = True
        self.longest = max(self.longest, took)
        self.histogram.labels(str(gen)).observe(took)
        if took >= self.warn_s:
            log.warning("lapse: garbage collection (generation %d) held the worker %.0f ms", gen, took * 1000)
