"""When the worker's input goes quiet, the offsets it acked go to the broker as soon as the timer's
commit point is committed, not at Faust's next periodic commit (in-process, tests/support/driver.py;
the broker test of offsets committed without more input is in tests/integration/test_service.py)."""

from __future__ import annotations

import asyncio

import orjson

from tests.support.driver import ServiceDriver

POLICY = '[defaults]\nidle = "1h"\n[adaptive]\nenabled = false\n'


def _driver(tmp_path) -> tuple[ServiceDriver, list[int]]:
    # a long commit interval: only going quiet makes the timer's step a commit point here
    d = ServiceDriver(tmp_path, POLICY, env={"LAPSE_COMMIT_INTERVAL_S": "60"})
    commits: list[int] = []

    async def commit_offsets() -> bool:
        # what was acked before this commit: every ticket submitted so far is committed
        commits.append(len(d.service.committer.tickets))
        return True

    d.service.commit_offsets = commit_offsets
    return d, commits


def _decide_held(d: ServiceDriver, user: str) -> None:
    """A login decided as the worker's inbox lane decides it: its message is held for the next
    commit point instead of being acked by its own step."""
    msg = d.message(d.topic("identity"), orjson.dumps(
        {"type": "login", "ts": d.now, "user": user, "session": f"{user}-s"}), user.encode())
    d.service._decide_user_batch([msg], ack=True)


async def _offset_commits_done(d: ServiceDriver) -> None:
    while d.service._offset_commits:
        await asyncio.gather(*list(d.service._offset_commits))


async def test_the_offsets_go_to_the_broker_once_the_commit_point_taken_when_input_went_quiet_is(tmp_path):
    d, commits = _driver(tmp_path)
    svc = d.service
    _decide_held(d, "ann")
    assert svc.interval.held == 1
    await svc._expiry_tick()  # input was decided just now: not quiet, the interval is not due
    await _offset_commits_done(d)
    assert commits == [] and svc.interval.held == 1
    svc._input_at -= 1.0  # a second without input
    await svc._expiry_tick()
    await _offset_commits_done(d)
    point = svc.committer.tickets[-1]
    assert point.messages and point.done.done() and svc.interval.held == 0
    assert commits == [len(svc.committer.tickets)]  # after the point, and once
    await svc._expiry_tick()  # still quiet, nothing held: nothing more to commit
    await _offset_commits_done(d)
    assert commits == [len(svc.committer.tickets)]


async def test_no_offset_is_committed_for_a_commit_point_that_failed(tmp_path):
    d, commits = _driver(tmp_path)
    svc = d.service
    committer = svc.committer

    class Failing:
        tickets = committer.tickets

        def submit(self, ticket):
            self.tickets.append(ticket)
            ticket.done.set_exception(RuntimeError("a record was not acknowledged"))
            return ticket

        async def room(self) -> None:
            return None

    _decide_held(d, "ann")
    svc.committer = Failing()
    svc._input_at -= 1.0
    await svc._expiry_tick()
    await asyncio.gather(*list(svc._offset_commits), return_exceptions=True)
    assert commits == [] and not svc._offset_commits
