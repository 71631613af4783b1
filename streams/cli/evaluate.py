"""``lapse evaluate``: replay a labelled stream through the engine with the adaptive scorer."""

from __future__ import annotations

import sys

import click
import orjson

__all__ = ["evaluate_cmd"]


def _read_jsonl(path: str) -> list[dict]:
    fh = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        return [orjson.loads(line) for line in fh if line.strip()]
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


@click.command("evaluate")
@click.argument("events", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Labels JSON lines from 'lapse simulate --labels' (or a JSON list).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Policy TOML (default: the shipped one); [adaptive] is switched on.")
@click.option("--step-up-at", type=float, default=None, help="Override [adaptive] step_up_at.")
@click.option("--revoke-at", type=float, default=None, help="Override [adaptive] revoke_at.")
@click.option("--detector", default="baseline", show_default=True,
              help="'baseline' or 'baseline+hst' (or +loda, +hst_limits, +sad).")
@click.option("--warmup", type=int, default=1000, show_default=True,
              help="Calibrator warm-up (events, across all users; the per-user [adaptive] warmup is the policy's).")
@click.option("--model-only", is_flag=True, help="Apply the thresholds to the scores without the engine.")
@click.option("--decisions", "decisions_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Measure the decisions 'lapse replay --drain' wrote for EVENTS instead of replaying here.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate_cmd(events: str, labels_path: str, policy_file: str | None, step_up_at: float | None,
                 revoke_at: float | None, detector: str, warmup: int, model_only: bool, decisions_path: str | None,
                 as_json: bool) -> None:
    """Replay EVENTS (JSON lines) with LABELS and report, per attack kind, the share acted on within
    60 s and 2 min and the ROC AUC of the raw score, and model revocations / step-ups per 1,000
    benign sessions, split by user tenure (first day in the stream against later)."""
    from models.evaluate import adaptive_policy, format_report, replay_engine, replay_model, report
    from models.scorer import scorer_for

    evs = _read_jsonl(events)
    with open(labels_path, "rb") as fh:
        text = fh.read().strip()
    labels = orjson.loads(text) if text.startswith(b"[") else [orjson.loads(x) for x in text.splitlines() if x.strip()]
    policy = adaptive_policy(policy_file, step_up_at=step_up_at, revoke_at=revoke_at)
    scorer = scorer_for(policy, detector=detector, warmup=warmup)
    if decisions_path is not None:
        from models.evaluate import run_from_decisions

        if policy_file is not None:
            from streams.engine import load_policy

            policy = load_policy(policy_file)
        run = run_from_decisions(evs, _read_jsonl(decisions_path))
    elif model_only:
        run = replay_model(evs, scorer, policy.adaptive.step_up_at, policy.adaptive.revoke_at)
    else:
        run = replay_engine(evs, policy, scorer)
    rep = report(run, labels)
    rep["policy"] = {"source": policy.source, "step_up_at": policy.adaptive.step_up_at,
                     "revoke_at": policy.adaptive.revoke_at, "warmup": policy.adaptive.warmup,
                     "detector": detector}
    if as_json:
        click.echo(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode())
    else:
        p = rep["policy"]
        click.echo(f"policy {p['source']}: step_up_at={p['step_up_at']} revoke_at={p['revoke_at']} "
                   f"user warmup={p['warmup']} detector={detector}")
        click.echo(format_report(rep))
