"""The worker's steps as plain functions of their input: messages and ``now`` in; decisions,
records to produce and touched state out.

A step never talks to Kafka, never awaits, never reads a clock and never counts a metric: it
returns a :class:`StepResult`, which the Faust shell (streams/service/app.py) applies and takes
through the commit order (streams/service/pipeline/commit.py). The steps:

========================  ==========================================================================
``adapt_raw``             ``raw.<format>`` vendor records -> canonical events (streams/adapters/)
``decide_users``          identity, activity and user-requests -> decisions, sightings, forwards
``decide_join``           ids-alerts and sightings -> the IDS join's matches, decided or forwarded
``tick``                  the deadlines due by ``now`` -> decisions (each user step does the same);
                          the IDS join's keys nothing can meet any more -> tombstones
========================  ==========================================================================

Every input message gets one of: decided, forwarded (sealed) to the partition that holds its key,
counted as deliberately ignored, or a dead letter with the reason. A message whose step raises is
dead-lettered with the exception, its user's state repaired, and its neighbours decided as
without it.

Examples
--------
>>> from types import SimpleNamespace
>>> from streams.config import Settings
>>> from streams.engine import Engine, loads_policy
>>> from streams.service.pipeline.sealed import Sealer
>>> settings = Settings()
>>> steps = Steps(Engine(loads_policy('[defaults]\\nidle = "30m"')), Sealer(b"k" * 32), TopicNames(settings),
...               partition_of=lambda user: 0, join_partition_of=lambda key: 0,
...               owns_user=lambda user: True, owns_join_key=lambda key: True, raw_format={},
...               max_skew_s=300, max_event_age_s=86400, max_record_bytes=1 << 20)
>>> login = SimpleNamespace(topic=settings.topic("identity"), partition=0, offset=0, key=b"u1", timestamp=0.0,
...                         value=b'{"type": "login", "ts": 1000, "user": "u1", "session": "s1", "src_ip": "192.0.2.1"}')
>>> step = steps.decide_users([login], now=1000.0)
>>> [o.value["kind"] for o in step.outputs], step.touched, {r[0] for r in step.records} == {settings.topic("sightings")}
(['session_start'], ['u1'], True)
>>> step = steps.decide_users([], now=1000.0 + 31 * 60, expire=True)
>>> [(o.value["reason"], o.value["session"]) for o in step.outputs if o.kind == "decision"]
[('idle_timeout', 's1')]
"""

from __future__ import annotations

from collections.abc import MutableMapping

from streams.service.steps.context import StepContext, TopicNames
from streams.service.steps.join import JoinSteps
from streams.service.steps.raw import RawSteps
from streams.service.steps.result import StepResult, Tally, fault_letter, safe_dumps
from streams.service.steps.users import UserSteps


class Steps(UserSteps, JoinSteps, RawSteps, StepContext):
    """Every step of one worker over one engine (see the module docstring);
    ``Steps(engine, sealer, names, **context)`` takes :class:`StepContext`'s parameters."""

    def tick(self, data: MutableMapping[str, dict], now: float, *, expire: bool) -> StepResult:
        """The expiry timer's step: with ``expire``, the deadlines due by ``now``; and a slice of
        the IDS join's keys (table ``data``) that nothing can meet any more."""
        step = StepResult(now)
        if expire:
            self.expire_deadlines(step)
        self.expire_join(data, step)
        return step


__all__ = ["StepContext", "StepResult", "Steps", "Tally", "TopicNames", "fault_letter", "safe_dumps"]
