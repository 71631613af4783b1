"""``lapse replay EVENTS.jsonl [--policy FILE] [--drain]``: the engine offline, on event time, with
the scorer the policy asks for (the same one the worker runs)."""

from __future__ import annotations

from typing import BinaryIO

import click

from streams.engine import Replay
from streams.engine.policy import PolicyError, load_policy
from streams.engine.replay import run_replay

__all__ = ["replay_cmd"]


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

