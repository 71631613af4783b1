"""The commit interval (streams/service/pipeline/interval.py): when a step is a commit point, and which
held-back input messages its ticket acks. Time is advanced by hand, never slept."""

from __future__ import annotations

import pytest

from streams.service.pipeline.interval import CommitInterval
from tests.support.clock import Clock


def test_steps_inside_the_interval_hold_their_messages_and_the_next_commit_point_takes_all_in_order():
    clock = Clock(100.0)
    ci = CommitInterval(1.0, clock=clock)
    ci.hold(["a1", "a2"])
    clock.t += 0.4
    assert not ci.due()
    ci.hold(["b1"])
    clock.t += 0.6
    assert ci.due()
    assert ci.take() == ["a1", "a2", "b1"]
    assert ci.held == 0 and ci.take() == []


def test_the_interval_restarts_at_each_commit_point_forced_or_not():
    clock = Clock(100.0)
    ci = CommitInterval(1.0, clock=clock)
    clock.t += 0.9
    assert ci.due(force=True)  # a caller that waits for its step to be committed
    ci.take()
    clock.t += 0.9
    assert not ci.due(), "0.9 s after the forced commit point, not 1.8 s after the start"
    clock.t += 0.1
    assert ci.due()


def test_zero_interval_makes_every_step_a_commit_point():
    ci = CommitInterval(0, clock=Clock(100.0))
    ci.hold(["m"])
    assert ci.due() and ci.take() == ["m"]


@pytest.mark.parametrize("bad", [-1, 61, "1s", None, True, float("nan")])
def test_bad_interval_fails_fast_with_a_named_message(bad):
    with pytest.raises(ValueError, match="CommitInterval: interval_s"):
        CommitInterval(bad)
