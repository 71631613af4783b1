"""Dead-letter records: what could not be used, where it came from, and why.

A record keeps the original bytes (base64), so nothing is lost and an operator can replay it
after a fix. Raw payloads larger than ``MAX_RAW`` are cut (the record says so and keeps the
original size): a dead-letter topic must never refuse the record that explains a failure.

>>> rec = dead_letter(b"{oops", reason="invalid JSON", field=None, topic="lapse.identity",
...                   partition=2, offset=41, now=0.0)
>>> rec["reason"], rec["partition"], rec["offset"], rec["raw_bytes"]
('invalid JSON', 2, 41, 5)
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

MAX_RAW = 64 * 1024

_AT: dict[int, str] = {}


def _at(now: float) -> str:
    """RFC 3339 of ``now`` to the millisecond; the second's prefix is formatted once."""
    sec = int(now // 1)
    prefix = _AT.get(sec)
    if prefix is None:
        if len(_AT) > 64:
            _AT.clear()
        prefix = _AT[sec] = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{prefix}.{int((now - sec) * 1000):03d}Z"


def dead_letter(raw: bytes | None, *, reason: str, field: str | None, topic: str, partition: int,
                offset: int, now: float, stage: str = "ingest", error: str | None = None) -> dict[str, Any]:
    raw = raw or b""
    return {
        "reason": reason,
        "field": field,
        "stage": stage,
        "error": error,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "at": _at(now),
        "raw_bytes": len(raw),
        "raw_truncated": len(raw) > MAX_RAW,
        "raw_b64": base64.b64encode(raw[:MAX_RAW]).decode(),
    }
