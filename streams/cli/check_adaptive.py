"""``lapse check-adaptive``: the adaptive model's held-out check in one command."""

from __future__ import annotations

import click
import orjson

__all__ = ["check_adaptive_cmd"]


def _seeds(text: str) -> list[int]:
    """``"2-7"``, ``"2,4,9"`` or ``""`` (none) as a list of seeds."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise click.BadParameter(f"not a seed or a range of seeds: {part!r}") from None
        if b < a or b - a > 1000:
            raise click.BadParameter(f"a range of seeds goes up, by at most 1,000: {part!r}")
        out.extend(range(a, b + 1))
    return out


@click.command("check-adaptive")
@click.option("--heldout-seeds", default="2-7,20-31", show_default=True,
              help="Draws of the held-out generator (models.simulate_heldout): '2-7', '2,3' or '' for none.")
@click.option("--tuning-seeds", default="12", show_default=True,
              help="Draws of the tuning generator (models.simulate), reported apart; '' for none.")
@click.option("--users", type=int, default=1000, show_default=True)
@click.option("--hours", type=float, default=72.0, show_default=True)
@click.option("--heldout-attack-rate", type=float, default=0.05, show_default=True)
@click.option("--tuning-attack-rate", type=float, default=0.1, show_default=True)
@click.option("--tuning-attack-after", type=float, default=None,
              help="Hours before the tuning generator's first attack (default: half the run, at most 24).")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Policy TOML (default: the shipped one); [adaptive] is switched on.")
@click.option("--jobs", type=click.IntRange(1, 64), default=2, show_default=True, help="Draws replayed at once.")
@click.option("--json", "as_json", is_flag=True, help="Print every draw's report and the pooled figures as JSON.")
@click.option("--strict", is_flag=True,
              help="Exit with status 1 when a goal is not met on the pooled held-out draws (for a tuning pipeline).")
def check_adaptive_cmd(heldout_seeds: str, tuning_seeds: str, users: int, hours: float, heldout_attack_rate: float,
                       tuning_attack_rate: float, tuning_attack_after: float | None, policy_file: str | None,
                       jobs: int, as_json: bool, strict: bool) -> None:
    """Generate several draws of both generators, replay each as 'lapse replay --drain' does with
    the policy's [adaptive] section on, and report per draw and pooled (with 95 % intervals): the
    share of hijack, impossible-travel and exfiltration sessions acted on within 2 min, and model
    revocations and step-ups per 1,000 benign sessions (first day apart), against the goals."""
    from models.draws import Draw, goals_met, pool, run_draws
    from models.evaluate import adaptive_policy
    from streams.engine import PolicyError

    try:
        adaptive_policy(policy_file)  # each draw loads it again: a bad file is refused once, here
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        groups = {
            "tuning": [Draw("simulate", s, users, hours, tuning_attack_rate, tuning_attack_after)
                       for s in _seeds(tuning_seeds)],
            "heldout": [Draw("heldout", s, users, hours, heldout_attack_rate) for s in _seeds(heldout_seeds)],
        }
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not any(groups.values()):
        raise click.UsageError("no draws: give --heldout-seeds or --tuning-seeds")
    everything = run_draws([d for ds in groups.values() for d in ds], policy_file, jobs)
    reports, i = {}, 0
    for name, ds in groups.items():
        reports[name], i = everything[i:i + len(ds)], i + len(ds)
    pooled = {name: pool(reps) for name, reps in reports.items() if reps}
    goals = {name: goals_met(p) for name, p in pooled.items()}
    missed = [g for g, ok in goals.get("heldout", {}).items() if not ok]
    if as_json:
        click.echo(orjson.dumps({name: {"draws": reports[name], "pooled": p, "goals_pooled": goals[name]}
                                 for name, p in pooled.items()}, option=orjson.OPT_INDENT_2).decode())
    else:
        _print(reports, everything, users, hours)
    if strict and missed:
        raise click.ClickException(f"held-out goals not met, pooled: {', '.join(missed)}")


def _print(reports: dict[str, list[dict]], everything: list[dict], users: int, hours: float) -> None:
    """Each generator's table (:func:`models.draws.format_draws`) under the policy it ran."""
    from models.draws import format_draws

    titles = {"tuning": "tuning generator (models.simulate; thresholds are chosen on it)",
              "heldout": "held-out generator (models.simulate_heldout; never used to choose thresholds)"}
    first = everything[0]["policy"]
    click.echo(f"policy {first['source']}: step_up_at={first['step_up_at']} revoke_at={first['revoke_at']} "
               f"user warmup={first['warmup']}; {users} users, {hours:g} h per draw")
    for name, reps in reports.items():
        if reps:
            click.echo("")
            click.echo(format_draws(titles[name], reps))
