"""The identity/activity inbox: batches in arrival order, bounded, emptied on rebalance."""

from __future__ import annotations

import asyncio

import pytest

from streams.service.pipeline.inbox import Inbox


async def test_take_waits_for_the_first_message_then_returns_what_arrived_within_the_window():
    box = Inbox(maxsize=100)

    async def later():
        await asyncio.sleep(0.01)
        box.put(1)
        box.put(2)

    task = asyncio.create_task(later())
    assert await box.take(10, within=0.02) == [1, 2]
    await task
    assert len(box) == 0


async def test_take_never_returns_more_than_asked_and_keeps_order():
    box = Inbox(maxsize=100)
    for i in range(7):
        box.put(i)
    assert await box.take(3, within=0) == [0, 1, 2]
    assert await box.take(10, within=0) == [3, 4, 5, 6]


async def test_a_full_inbox_makes_the_consumer_wait_until_a_batch_is_taken():
    box = Inbox(maxsize=2)
    box.put("a")
    box.put("b")
    assert box.full()
    waiter = asyncio.create_task(box.wait_not_full())
    await asyncio.sleep(0)
    assert not waiter.done()
    await box.take(1, within=0)
    await asyncio.wait_for(waiter, 1)


async def test_clear_drops_everything_and_releases_a_waiting_consumer():
    box = Inbox(maxsize=1)
    box.put("x")
    waiter = asyncio.create_task(box.wait_not_full())
    await asyncio.sleep(0)
    box.clear()
    await asyncio.wait_for(waiter, 1)
    assert len(box) == 0 and not box.full()


def test_bad_size_fails_at_construction():
    with pytest.raises(ValueError, match="maxsize"):
        Inbox(0)
