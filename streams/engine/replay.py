"""``lapse replay EVENTS.jsonl [--policy FILE] [--drain]``: run the engine offline on event time."""

from __future__ import annotations

import sys
from typing import BinaryIO

import click
import orjson

from .engine import Replay
from .events import InvalidEvent, parse_event
from .policy import PolicyError, load_policy

__all__ = ["replay_cmd", "run_replay"]


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


def _scorer(policy):
    """The adaptive scorer the policy asks for (``None`` when ``[adaptive]`` is off).

    The engine does not depend on ``models/``: it is imported only when the policy enables it,
    and a policy that asks for scoring where the model cannot load is refused, never run
    without its ``[adaptive]`` section.
    """
    if not policy.adaptive.enabled:
        return None
    try:
        from models.scorer import scorer_for
    except ImportError as exc:
        raise click.ClickException(
            f"the policy sets [adaptive] enabled = true but the adaptive model cannot be loaded ({exc}); "
            "install lapse with its models package, or set enabled = false") from None
    return scorer_for(policy)


@click.command("replay")
@click.argument("events", type=click.File("rb"))
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), default=None,
              help="Policy TOML (default: the shipped streams/policy.default.toml).")
@click.option("--drain", is_flag=True, help="At end of input, advance the clock past every pending deadline.")
def replay_cmd(events: BinaryIO, policy_file: str | None, drain: bool) -> None:
    """Replay EVENTS (JSON lines; '-' for stdin) on event time; decisions to stdout in order of 'at'."""
    try:
        policy = load_policy(policy_file)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    replay = Replay(policy, scorer=_scorer(policy))
    out = click.get_binary_stream("stdout")
    err = click.get_binary_stream("stderr")
    c = run_replay(events, replay, out, err, drain)
    out.flush()
    eng = replay.engine
    summary = (f"replay: {c['lines']} lines, {c['events']} events, {c['invalid']} invalid, "
               f"{c['decisions']} decisions, {c['audits']} audit records, "
               f"{eng.counts['enforcement_gaps']} enforcement gaps, {eng.counts['automatic']} automatic, "
               f"{eng.live_sessions()} live sessions, policy {policy.version}"
               f"{', adaptive scoring on' if replay.engine.scorer is not None else ''}\n")
    err.write(summary.encode())
    err.flush()


if __name__ == "__main__":  # pragma: no cover
    replay_cmd(sys.argv[1:])
