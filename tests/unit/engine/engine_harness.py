"""A TopologyTestDriver-style harness: inject events, advance the clock, inspect exact outputs."""

from __future__ import annotations

from typing import Any


from streams.engine import Engine, Output, Policy, loads_policy, parse_event

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Driver:
    def __init__(self, policy: Policy | str, scorer: Any = None, tombstone_s: float = 3600.0) -> None:
        if isinstance(policy, str):
            policy = loads_policy(policy)
        self.engine = Engine(policy, scorer=scorer, tombstone_s=tombstone_s)
        self.now = T0

    def send(self, type: str, at: float, **fields: Any) -> list[Output]:
        """Deliver an event whose ts is T0 + at; the clock moves to it first (expiring deadlines)."""
        ts = T0 + at
        outs = []
        if ts > self.now:
            outs = self.advance(at)
        ev = parse_event({"type": type, "ts": ts, **fields})
        return outs + self.engine.handle(ev, self.now)

    def advance(self, at: float) -> list[Output]:
        self.now = max(self.now, T0 + at)
        return self.engine.expire(self.now)


def decisions(outs: list[Output]) -> list[tuple[str, str, str, float]]:
    """(action, reason, session, at-offset) of each decision."""
    from streams.engine import parse_ts

    return [(o.value["action"], o.value["reason"], o.value["session"], parse_ts(o.value["at"]) - T0)
            for o in outs if o.kind == "decision"]


def audits(outs: list[Output]) -> list[tuple[str, str | None]]:
    return [(o.value["kind"], o.value["session"]) for o in outs if o.kind == "audit"]


