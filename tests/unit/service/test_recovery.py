"""Batched changelog recovery: Faust's per-event rules, applied to a queue taken in batches.

Real Faust objects (app, table, memory store, changelog queue); no broker is needed until an app
starts. The worker's kill -9 and failover integration tests run the same class against Kafka.
"""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types import TP, Message

from streams.service.state import recovery
from streams.service.state.recovery import BatchedRecovery
from tests.support.service import offline_service


def _app(guarantee: str = "at_least_once") -> tuple[faust.App, faust.Table]:
    app = faust.App("recovery-test", broker="kafka://127.0.0.1:1", store="memory://",
                    processing_guarantee=guarantee)
    table = app.Table("users", partitions=1)
    return app, table


def _event(app: faust.App, tp: TP, offset: int, key: str, value: str) -> faust.Event:
    msg = Message(tp.topic, tp.partition, offset, 0.0, 0, {}, key.encode(), value.encode(), None)
    return faust.Event(app, key, value, {}, msg)


def _recovering(app: faust.App, table: faust.Table, highwater: int) -> tuple[BatchedRecovery, TP]:
    rec = BatchedRecovery(app, app.tables)
    tp = TP(table.changelog_topic.get_topic_name(), 0)
    rec.active_tps = {tp}
    rec.tp_to_table = {tp: table}
    rec.active_highwaters[tp] = highwater
    rec.active_offsets[tp] = -1
    rec.in_recovery = True
    return rec, tp


async def test_events_apply_in_order_once_each_and_buffers_flush_at_the_tables_size():
    app, table = _app()
    table.recovery_buffer_size = 2
    rec, tp = _recovering(app, table, highwater=10)
    applied = [await rec._apply(_event(app, tp, off, k, v), 0.0)
               for off, k, v in [(0, "u1", "a"), (1, "u2", "b"), (1, "u2", "stale"), (2, "u1", "c")]]
    assert applied == [1, 1, 0, 1]  # offset 1 again (a re-fetch) is skipped
    assert dict(table.data) == {"u1": "a", "u2": "b"}  # two events: one flush; the third waits in the buffer
    assert [e.value for e in rec.buffers[table]] == ["c"]
    assert rec.active_offsets[tp] == 2


async def test_recovery_ends_only_when_every_active_partition_reached_its_highwater():
    app, table = _app()
    rec, tp = _recovering(app, table, highwater=2)
    for off, k, v in [(0, "u1", "a"), (1, "u2", "b")]:
        await rec._apply(_event(app, tp, off, k, v), 0.0)
    rec._end_if_done()
    assert rec.in_recovery and not rec.signal_recovery_end.is_set()
    await rec._apply(_event(app, tp, 2, "u1", "c"), 0.0)
    rec._end_if_done()
    assert not rec.in_recovery and rec.signal_recovery_end.is_set()
    assert dict(table.data) == {"u1": "c", "u2": "b"}  # what was still buffered was applied at the end


async def test_the_reader_task_takes_everything_queued_in_one_batch_and_then_ends_recovery():
    app, table = _app()
    table.recovery_buffer_size = 1000
    rec, tp = _recovering(app, table, highwater=499)
    queue = app.tables.changelog_queue
    for off in range(500):
        queue.put_nowait(_event(app, tp, off, f"u{off % 7}", f"v{off}"))
    checks = []
    end_if_done = rec._end_if_done
    rec._end_if_done = lambda: (checks.append(queue.qsize()), end_if_done())[1]  # type: ignore[method-assign]
    task = asyncio.create_task(BatchedRecovery._slurp_changelogs.fun(rec))
    await asyncio.wait_for(rec.signal_recovery_end.wait(), timeout=5)
    task.cancel()
    assert checks == [0]  # one end-of-recovery check, after the whole queue
    assert table.data["u6"] == "v496" and len(table.data) == 7


def test_install_replaces_recovery_for_at_least_once_only():
    app, _ = _app()
    assert recovery.install(app) and type(app.tables.recovery) is BatchedRecovery
    assert not recovery.install(app)  # once only
    exactly, _ = _app("exactly_once")
    assert not recovery.install(exactly)
    assert type(exactly.tables.recovery) is not BatchedRecovery


def test_the_worker_app_recovers_in_batches(tmp_path):
    service = offline_service(tmp_path)
    assert type(service.app.tables.recovery) is BatchedRecovery


def test_the_worker_reports_ready_only_once_fausts_rebalance_is_over(tmp_path):
    """Recovery signals completion (``ready``) before Faust seeks the input back and fetches again."""
    service = offline_service(tmp_path)
    service.ready = True
    service.app.rebalancing = True
    assert not service.serving
    service.app.rebalancing = False
    assert service.serving
    service.ready = False
    assert not service.serving


@pytest.fixture(autouse=True)
def _loop_for_faust():
    """Faust services want an event loop at construction, also in the sync tests."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    yield
