"""``lapse evaluate``: replay a labelled stream through the engine with the adaptive scorer."""

from __future__ import annotations

import sys

import click
import orjson

__all__ = ["evaluate_cmd"]


def _read_jsonl(path: str, what: str) -> list[dict]:
    """JSON objects, one per line; a line that is not one is a named error, not a traceback."""
    fh = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    out = []
    try:
        text = fh.read()
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    if what == "labels" and text.lstrip().startswith(b"["):  # labels may also be one JSON list
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise click.ClickException(f"{path}: not a JSON list of labels ({exc})") from None
        lines = list(enumerate(items, 1))
    else:
        lines = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                lines.append((lineno, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                raise click.ClickException(f"{path} line {lineno}: not JSON ({exc})") from None
    for lineno, obj in lines:
        if not isinstance(obj, dict):
            raise click.ClickException(f"{path} line {lineno}: {what} must be JSON objects, got {type(obj).__name__}")
        out.append(obj)
    return out


def _valid_events(path: str) -> list[dict]:
    """The events ``lapse replay`` would replay: an invalid one is skipped, as there (counted)."""
    from streams.engine import InvalidEvent, parse_event

    out, invalid = [], 0
    for ev in _read_jsonl(path, "events"):
        try:
            parse_event(ev)
        except InvalidEvent:
            invalid += 1
            continue
        out.append(ev)
    if invalid:
        click.echo(f"evaluate: {invalid} invalid events skipped (as 'lapse replay' skips them)", err=True)
    return out


def _check_times(path: str, items: list[dict], what: str, fields: tuple[str, ...], at: tuple[str, ...]) -> None:
    """Each label or decision has its fields and a readable time, or the file is refused by name."""
    from models.features import _ts

    for i, item in enumerate(items, 1):
        missing = [f for f in fields if not isinstance(item.get(f), str)]
        if missing:
            raise click.ClickException(f"{path}: {what} {i} has no {', '.join(missing)} (strings)")
        try:
            _ts(next(item[k] for k in at if item.get(k) is not None))
        except (StopIteration, TypeError, ValueError):
            raise click.ClickException(f"{path}: {what} {i} has no readable {' or '.join(at)}") from None


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
    from streams.engine import PolicyError, load_policy

    evs = _valid_events(events)
    labels = _read_jsonl(labels_path, "labels")
    _check_times(labels_path, labels, "label", ("kind", "session"), ("start_ts", "start"))
    try:
        policy = adaptive_policy(policy_file, step_up_at=step_up_at, revoke_at=revoke_at)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    scorer = scorer_for(policy, detector=detector, warmup=warmup)
    if decisions_path is not None:
        from models.evaluate import run_from_decisions

        if policy_file is not None:
            policy = load_policy(policy_file)  # as it was replayed (adaptive_policy read it above)
        decisions = _read_jsonl(decisions_path, "decisions")
        _check_times(decisions_path, decisions, "decision", ("session", "action", "reason"), ("at",))
        run = run_from_decisions(evs, decisions)
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
