"""The adapter step: vendor records (``raw.<format>``) in, canonical events on the identity,
activity and ids-alerts topics out.

Unmappable records go to dead letters with the adapter's reason and field; deliberately ignored
types (e.g. Suricata flow records) are counted, not dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from streams.service.pipeline.ingest import Rejected
from streams.service.pipeline.labels import EVENT_TYPES, label
from streams.service.steps.result import StepResult


class RawSteps:
    """The adapters' step (mixed into :class:`~streams.service.steps.Steps`)."""

    def adapt_raw(self, msgs: Sequence[Any], now: float) -> StepResult:
        """A batch of vendor records -> the canonical events (and dead letters) to produce."""
        from streams.adapters import adapt

        step = StepResult(now)
        records, tally, names = step.records, step.tally, self.names
        formats = self.raw_format
        for msg in msgs:
            n_rec = len(records)
            try:
                tally.saw.add((msg.topic, msg.partition))
                result = adapt(formats[msg.topic], msg.value or b"")
                if result.error is not None:
                    step.dead_letter(names.dead_letters, msg, Rejected(result.error.reason, result.error.field),
                                     stage="adapter")
                    continue
                if result.skipped is not None:
                    tally.count(tally.skipped, (msg.topic, label(result.skipped.split(":", 1)[0], formats.values())))
                    continue
                for canonical in result.events:
                    kind = canonical.get("type")
                    tally.count(tally.events_in, (msg.topic, label(kind, EVENT_TYPES)))
                    if kind == "alert":
                        topic, key = names.ids_alerts, canonical.get("src_ip") or canonical.get("dest_ip") or ""
                    elif kind == "activity":
                        topic, key = names.activity, canonical.get("user") or ""
                    else:
                        topic, key = names.identity, canonical.get("user") or ""
                    records.append((topic, str(key).encode(), orjson.dumps(canonical), None))
            except Exception as exc:  # an adapter's surprise: this record to dead letters, not the worker
                del records[n_rec:]
                step.fault(names.dead_letters, msg, exc, "adapter")
        return step

    # the attributes the mixin reads (set by StepContext)
    names: Any
    raw_format: dict[str, str]
