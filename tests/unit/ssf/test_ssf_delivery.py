"""Push delivery: RFC 8935 outcomes, in-order retries with capped backoff, refused SETs kept in
``failed``, the durable queue (a real SQLite store) and its lock."""

from __future__ import annotations

import asyncio

import pytest

from streams.ssf.delivery import Deliverer, Outcome, backoff, parse_retry_after, push_outcome
from streams.ssf.store import StateLocked, Store


def test_outcomes():
    assert push_outcome(202, None, None, None).kind == "ok"
    assert push_outcome(400, "invalid_request", "bad", None).kind == "reject"
    for err in ("invalid_key", "invalid_issuer", "invalid_audience", "authentication_failed", "access_denied"):
        assert push_outcome(400, err, None, None).kind == "retry"
    assert push_outcome(400, "whatever", None, None).err is None
    assert push_outcome(429, None, None, "3").retry_after == 3.0
    assert push_outcome(500, None, None, None).kind == "retry" and push_outcome(413, None, None, None).kind == "reject"
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0 and parse_retry_after("soon") is None
    assert all(backoff(n, 0.5, 60) <= 60 for n in range(1, 100)) and backoff(1, 0.5, 60) >= 0.25


def test_store_is_exclusive_and_durable(tmp_path):
    s = Store(tmp_path)
    with pytest.raises(StateLocked):
        Store(tmp_path)
    assert s.enqueue([("stream:a", "j1", "t1", 0), ("stream:a", "j1", "t1", 0), ("stream:a", "j2", "t2", 0)],
                     {("topic", 0): 5}) == 2
    s.close()
    s = Store(tmp_path)
    assert [r[1] for r in s.head("stream:a", 10)] == ["j1", "j2"] and s.offsets("topic") == {0: 5}
    assert (tmp_path / "ssf.sqlite3").stat().st_mode & 0o077 == 0
    s.close()


async def test_order_is_kept_through_retries_and_refusals(tmp_path):
    store = Store(tmp_path)
    store.enqueue([("stream:a", f"j{i}", f"t{i}", 0) for i in range(10)])
    script = {"t3": ["retry", "retry", "ok"], "t5": ["reject"], "t7": [Outcome("retry", 400)] * 5}
    sent: list[str] = []

    async def send(payload: str) -> Outcome:
        sent.append(payload)
        todo = script.get(payload)
        if todo:
            o = todo.pop(0)
            return o if isinstance(o, Outcome) else Outcome(o, 503 if o == "retry" else 400, "invalid_request")
        return Outcome("ok", 202)

    async def db(fn, *a, **kw):
        return fn(*a, **kw)

    counters: dict[str, int] = {}
    d = Deliverer("stream:a", db=db, store=store, send=send, active=lambda: True, base_s=0.001, cap_s=0.004,
                  counters=counters)
    d.start()
    for _ in range(400):
        if store.pending("stream:a") == 0:
            break
        await asyncio.sleep(0.01)
    await d.stop()
    assert store.pending("stream:a") == 0
    delivered = [p for p in dict.fromkeys(sent)]
    assert delivered == [f"t{i}" for i in range(10)]  # nothing behind the head went first
    assert sent.count("t3") == 3 and sent.count("t7") == 5  # an unexplained 400: five tries, then failed
    assert [f["jti"] for f in store.failed("stream:a")] == ["j5", "j7"]
    assert counters["delivered"] == 8 and counters["rejected"] == 2


async def test_a_paused_stream_holds_its_sets(tmp_path):
    store = Store(tmp_path)
    store.enqueue([("stream:a", "j1", "t1", 0), ("stream:a", "c1", "control", 1)])
    active = {"on": False}
    sent: list[str] = []

    async def send(payload):
        sent.append(payload)
        return Outcome("ok", 202)

    async def db(fn, *a, **kw):
        return fn(*a, **kw)

    d = Deliverer("stream:a", db=db, store=store, send=send, active=lambda: active["on"], base_s=0.01, cap_s=0.01,
                  counters={})
    d.start()
    for _ in range(100):
        if sent:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert sent == ["control"]  # only the stream's own events while paused
    active["on"] = True
    d.poke()
    for _ in range(100):
        if len(sent) == 2:
            break
        await asyncio.sleep(0.01)
    await d.stop()
    assert sent == ["control", "t1"]
