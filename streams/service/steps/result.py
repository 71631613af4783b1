"""What one step of the worker produced: outputs, records, dead letters, touched state, counts.

A step (a batch of input messages, an expiry tick) is decided by :class:`~streams.service.steps.Steps`
without Kafka, asyncio, metrics or a clock of its own. Everything it wants done goes into a
:class:`StepResult`, which the Faust shell applies: it marks the touched users' state for the
changelog, writes the join's changed keys, counts the tally into the metrics and stages the
outputs and records (streams/service/pipeline/commit.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.engine import Output
from streams.service.pipeline.deadletter import dead_letter
from streams.service.pipeline.ingest import Rejected
from streams.service.pipeline.labels import rejected_label
from streams.service.pipeline.outbox import Record  # noqa

log = logging.getLogger("lapse.service")


@dataclass
class Tally:
    """The step's counts, for the worker's metrics (applied once per step, not per event)."""

    #: canonical events decided, by (topic, event type)
    events_in: dict[tuple[str, str], int] = field(default_factory=dict)
    #: dead-lettered records, by (topic, reason class: the field at fault as
    #: :func:`~streams.service.pipeline.labels.rejected_label` names it, or ``"fault"``: a step raised)
    invalid: dict[tuple[str, str], int] = field(default_factory=dict)
    #: records whose step raised, by stage
    faults: dict[str, int] = field(default_factory=dict)
    #: vendor records deliberately ignored, by (topic, record kind)
    skipped: dict[tuple[str, str], int] = field(default_factory=dict)
    #: sealed records refused, as (topic, reason)
    forged: list[tuple[str, str]] = field(default_factory=list)
    #: events forwarded to their user's partition
    forwarded: int = 0
    #: input partitions the step read, as (topic, partition)
    saw: set[tuple[str, int]] = field(default_factory=set)

    def count(self, counts: dict, key: Any, n: int = 1) -> None:
        counts[key] = counts.get(key, 0) + n


@dataclass
class StepResult:
    """One step's effects, in the order the shell applies them.

    ``records`` are Kafka records ``(topic, key, value, partition)`` to produce (forwards,
    sightings, adapted events, dead letters); ``outputs`` the engine's decisions and audit records,
    which the shell encodes (decisions are signed there). ``touched`` users' state changed in
    place; ``join_state`` maps the IDS join's changed keys to their new table value (``None``: the
    key left the join). ``inbound_ts`` is the broker timestamp of the step's oldest message that
    can lead to a decision (for the decision-latency metric).
    """

    now: float
    outputs: list[Output] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)
    join_state: dict[str, dict | None] | None = None
    inbound_ts: float | None = None
    #: how many of ``records`` are dead letters (the shell holds them for the next commit point)
    dead_letters: int = 0
    tally: Tally = field(default_factory=Tally)

    def dead_letter(self, dead_letters_topic: str, msg: Any, rejected: Rejected, stage: str = "ingest") -> None:
        """``msg`` to dead letters with the reason and the field at fault."""
        self.tally.count(self.tally.invalid, (msg.topic, rejected_label(rejected.field)))
        record = dead_letter(msg.value, reason=rejected.reason, field=rejected.field, topic=msg.topic,
                             partition=msg.partition, offset=msg.offset, now=self.now, stage=stage)
        self.records.append((dead_letters_topic, msg.topic.encode(), orjson.dumps(record), None))
        self.dead_letters += 1

    def fault(self, dead_letters_topic: str, msg: Any, exc: BaseException, stage: str) -> None:
        """``msg``, whose step raised, to dead letters with the reason and the exception type."""
        self.tally.count(self.tally.faults, stage)
        self.tally.count(self.tally.invalid, (msg.topic, "fault"))
        log.warning("lapse: %s of %s/%s@%s failed (%s); record dead-lettered", stage, msg.topic, msg.partition,
                    msg.offset, type(exc).__name__)
        record = dead_letter(msg.value, reason=f"{stage} failed: {type(exc).__name__}: {str(exc)[:300]}",
                             field=None, topic=msg.topic, partition=msg.partition, offset=msg.offset, now=self.now,
                             stage=stage, error=type(exc).__name__)
        self.records.append((dead_letters_topic, msg.topic.encode(), orjson.dumps(record), None))
        self.dead_letters += 1

    def fault_record(self, dead_letters_topic: str, stage: str, exc: BaseException, raw: bytes) -> None:
        """A fault with no input message of its own (a deadline, an output, a resolved alert)."""
        self.tally.count(self.tally.faults, stage)
        self.records.append(fault_letter(dead_letters_topic, stage, exc, raw, self.now))
        self.dead_letters += 1


def fault_letter(dead_letters_topic: str, stage: str, exc: BaseException, raw: bytes, now: float) -> Record:
    """The dead letter of a fault with no input message of its own, logged."""
    log.warning("lapse: %s failed (%s); dead-lettered", stage, type(exc).__name__)
    record = dead_letter(raw, reason=f"{stage} failed: {type(exc).__name__}: {str(exc)[:300]}", field=None,
                         topic=f"({stage})", partition=-1, offset=-1, now=now, stage=stage, error=type(exc).__name__)
    return (dead_letters_topic, stage.encode(), orjson.dumps(record), None)


def safe_dumps(value: Any) -> bytes:
    """JSON of ``value`` for a dead letter, or its (cut) repr when it cannot be serialised."""
    try:
        return orjson.dumps(value, default=repr)
    except Exception:
        return repr(value)[:4096].encode("utf-8", "replace")
