"""Expiry held back after assignment until the input already in the topics is decided
(streams/service/pipeline/catchup.py). Time is advanced by hand."""

from __future__ import annotations

from collections import namedtuple

import pytest

from streams.service.pipeline.catchup import CatchUp
from tests.support.clock import Clock

Msg = namedtuple("Msg", "tp offset")


def test_deadlines_wait_until_every_partition_is_decided_up_to_its_end_at_assignment():
    clock = Clock()
    c = CatchUp(60, clock=clock)
    c.start({("activity", 0): 100, ("activity", 1): 50})
    c.decided([Msg(("activity", 0), o) for o in range(100)])
    assert not c.done() and c.pending == 1
    c.decided([Msg(("activity", 1), 48)])
    assert not c.done()
    clock.t = 2.5
    c.decided([Msg(("activity", 1), 49), Msg(("activity", 1), 50)])  # 50: arrived after assignment
    assert c.done() and c.waited_s == 2.5


def test_partitions_whose_commit_covers_their_end_or_that_are_empty_hold_nothing_back():
    c = CatchUp(60, clock=Clock())
    c.start({("identity", 0): 0, ("identity", 1): None, ("activity", 0): 7})
    assert not c.done()
    c.committed({("activity", 0): 6})
    assert not c.done(), "offset 6 still to be decided"
    c.committed({("activity", 0): 7})
    assert c.done()


def test_a_backlog_holds_deadlines_back_at_most_max_wait():
    clock = Clock()
    c = CatchUp(30, clock=clock)
    c.start({("activity", 0): 10**9})
    clock.t = 29.9
    assert not c.done()
    clock.t = 30.0
    assert c.done() and c.pending == 0 and c.waited_s == 30.0


def test_messages_of_partitions_not_waited_for_change_nothing():
    c = CatchUp(30, clock=Clock())
    c.start({("activity", 0): 5})
    c.decided([Msg(("activity", 1), 99), Msg(("sightings", 0), 4)])
    assert c.pending == 1 and not c.done()


@pytest.mark.parametrize("bad", [-1, "60", None, False, float("nan")])
def test_bad_max_wait_fails_fast_with_a_named_message(bad):
    with pytest.raises(ValueError, match="CatchUp: max_wait_s"):
        CatchUp(bad)

