"""Run the engine offline on event time over a file of canonical events (``lapse replay``'s core;
the command itself is ``streams.cli.replay``)."""

from __future__ import annotations

from typing import BinaryIO

import orjson

from .engine import Replay
from .events import InvalidEvent, parse_event

__all__ = ["run_replay"]


def run_replay(stream: BinaryIO, replay: Replay, out: BinaryIO, err: BinaryIO, drain: bool = False) -> dict[str, int]:
    """Feed every line of ``stream``; write decisions (sorted by ``at``) to ``out``, problems to ``err``."""
    decisions: list[tuple[str, int, bytes]] = []
    counts = {"lines": 0, "events": 0, "invalid": 0, "faults": 0, "decisions": 0, "audits": 0}
    seq = 0
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        counts["lines"] += 1
        try:
            ev = parse_event(line.rstrip(b"\r\n"))
        except InvalidEvent as exc:
            counts["invalid"] += 1
            where = f" ({exc.field})" if exc.field else ""
            err.write(f"line {lineno}: invalid event{where}: {exc.reason}\n".encode())
            continue
        counts["events"] += 1
        try:
            outs = replay.feed(ev)
        except Exception as exc:  # as the worker does: this event only, its user's state made safe
            counts["faults"] += 1
            err.write(f"line {lineno}: decision failed: {type(exc).__name__}: {str(exc)[:200]}\n".encode())
            outs = replay.engine.repair(ev.user, replay.clock) if ev.user is not None else []
        for o in outs:
            if o.kind == "decision":
                decisions.append((o.value["at"], seq, orjson.dumps(o.value)))
                seq += 1
            else:
                counts["audits"] += 1
    if drain:
        for o in replay.drain():
            if o.kind == "decision":
                decisions.append((o.value["at"], seq, orjson.dumps(o.value)))
                seq += 1
            else:
                counts["audits"] += 1
    decisions.sort(key=lambda d: (d[0], d[1]))
    for _, _, line in decisions:
        out.write(line + b"\n")
    counts["decisions"] = len(decisions)
    return counts
