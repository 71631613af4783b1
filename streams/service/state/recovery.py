"""Changelog recovery that takes the changelog queue in batches.

Faust's :class:`~faust.tables.recovery.Recovery` takes one changelog event per turn of the event
loop (an ``asyncio.wait_for`` per event, so a new task each time) and, after every event, works out
whether recovery is over by rebuilding the remaining-offsets counter over every active partition.
That costs about 120 us per changelog record, most of it event-loop turns rather than work: 30 s
for the changelog of 100k live sessions (about 250k records).

:class:`BatchedRecovery` changes one method, the task that drains the queue. It waits for the first
event as Faust does (5 s timeout, then checks whether recovery ended). It then takes every event
already queued, up to ``max_batch``, and applies each exactly as Faust does: its offset, the table's
buffer (flushed at the table's ``recovery_buffer_size``) and ``on_changelog_event``. It checks for
the end of recovery once per batch. Recovery can therefore end at most one batch later than it would
have, and never earlier: the check is Faust's own (``need_recovery``: every active partition read
up to its highwater).

Only for ``at_least_once``: Faust's exactly-once path also looks for aborted transactions on a
timeout, which this task does not do, so :func:`install` leaves an exactly-once app's recovery alone.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import Any

from faust.tables.recovery import Recovery
from faust.utils.tracing import finish_span
from mode import Service

__all__ = ["BatchedRecovery", "install"]

log = logging.getLogger(__name__)


class BatchedRecovery(Recovery):
    """:class:`~faust.tables.recovery.Recovery` whose changelog reader takes the queue in batches."""

    #: most events applied between two end-of-recovery checks (and two yields to the event loop)
    max_batch = 10_000

    @Service.task
    async def _slurp_changelogs(self) -> None:
        queue = self.tables.changelog_queue
        while not self.should_stop:
            try:
                self.signal_recovery_end.clear()
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=5.0)
                except asyncio.TimeoutError:
                    if self.should_stop:
                        return
                    self._end_if_done()
                    continue
                batch = [first]
                while len(batch) < self.max_batch and not queue.empty():
                    batch.append(queue.get_nowait())
                started = monotonic()
                applied = 0
                for event in batch:
                    applied += await self._apply(event, started)
                if applied:
                    self._note_processing_time((monotonic() - started) / applied, applied)
                self._end_if_done()
                self._standbys_if_done()
            except Exception as exc:  # as Faust's task: log, keep reading
                log.warning("Error in recovery %r", exc)

    async def _apply(self, event: Any, now: float) -> int:
        """Apply one changelog event as Faust's reader does; 1 if it was new, else 0."""
        message = event.message
        tp = message.tp
        offset = message.offset
        if tp in self.active_tps:
            offsets = self.active_offsets
            self._active_events_received_at[tp] = now
            size_of = "recovery_buffer_size"
        elif tp in self.standby_tps:
            offsets = self.standby_offsets
            self._standby_events_received_at[tp] = now
            size_of = "standby_buffer_size"
        else:
            # Faust logs this and then applies the event to whatever table the previous event
            # went to; here it is only logged
            log.warning("recovery: changelog event for %s, which is neither active nor standby here", tp)
            return 0
        seen = offsets.get(tp)
        if seen is not None and offset <= seen:
            return 0
        offsets[tp] = offset
        table = self.tp_to_table[tp]
        buf = self.buffers[table]
        buf.append(event)
        await table.on_changelog_event(event)
        size = self.buffer_sizes.get(tp)
        if size is None:
            size = self.buffer_sizes[tp] = getattr(table, size_of)
        if len(buf) >= size:
            table.apply_changelog_batch(buf)
            buf.clear()
            self._last_flush_at = now
        return 1

    def _note_processing_time(self, per_event: float, n: int) -> None:
        """Feed Faust's time-remaining estimate (a window of per-event processing times)."""
        times = self._processing_times
        times.extend([per_event] * min(n, self.num_samples_required_for_estimate))
        while len(times) > self.num_samples_required_for_estimate:
            times.popleft()
        self._last_active_event_processed_at = monotonic()

    def _end_if_done(self) -> None:
        """Faust's end-of-recovery step: once every active partition is read to its highwater,
        apply what is still buffered and signal the end."""
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            self.signal_recovery_end.set()

    def _standbys_if_done(self) -> None:
        if not (self._standbys_span is None and self.tables.standbys_ready) and not self.standby_remaining_total():
            if self._standbys_span:
                finish_span(self._standbys_span)
                self._standbys_span = None
            self.tables.on_standbys_ready()


def install(app: Any) -> bool:
    """Give ``app``'s table manager a :class:`BatchedRecovery` (before the app starts).

    Returns whether it did: not for an exactly-once app, nor once the manager made its own.
    """
    guarantee = str(getattr(app.conf, "processing_guarantee", "")).lower()
    if "exactly" in guarantee:
        return False
    tables = app.tables
    if tables._recovery is not None:
        return False
    tables._recovery = BatchedRecovery(app, tables, beacon=tables.beacon, loop=tables.loop)
    return True
