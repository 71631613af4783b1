"""``lapse policy check FILE``, ``lapse policy explain FILE --event JSON``, ``lapse policy publish FILE``
and ``lapse policy report FILE``."""

from __future__ import annotations

from typing import Any

import click
import orjson

from streams.engine.durations import format_duration
from streams.engine.events import InvalidEvent, parse_event
from streams.engine.policy import PRESETS, Policy, PolicyError, load_policy
from streams.engine.state import SessionState
from streams.engine.windows import window_add
from streams.engine.policy import RATE_WINDOW_S

__all__ = ["policy_cmd", "explain", "publish_cmd", "report_cmd"]


def _load(path: str) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("policy")
def policy_cmd() -> None:
    """Validate and explain session policies."""


@policy_cmd.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def check_cmd(file: str) -> None:
    """Validate FILE and print the effective limits of each rule (a rule alone over the defaults)."""
    p = _load(file)
    d = p.defaults
    click.echo(f"{file}: ok (version {p.version})")
    cite = f"  [{PRESETS[d.preset].citation}]" if d.preset else ""
    click.echo(f"  defaults: idle {format_duration(d.idle)}, absolute {format_duration(d.absolute)}{cite}")
    for r in p.rules:
        idle = min((x for x in (d.idle, r.idle) if x is not None), default=None)
        absolute = min((x for x in (d.absolute, r.absolute) if x is not None), default=None)
        conds = ", ".join(f"{k}={v}" for k, v in r.conditions().items()) or "always"
        cite = f"  [{PRESETS[r.preset].citation}]" if r.preset else ""
        click.echo(f"  {r.name}: when {conds} -> idle {format_duration(idle)}, absolute {format_duration(absolute)}{cite}")
    click.echo(f"  ids: revoke {sorted(p.ids.revoke)}, step_up {sorted(p.ids.step_up)}, lookback {format_duration(p.ids.lookback)}")
    a = p.adaptive
    click.echo(f"  adaptive: {'enabled' if a.enabled else 'disabled'} (step_up_at {a.step_up_at}, revoke_at {a.revoke_at})")
    if p.activity.automatic or p.activity.privileged:
        click.echo(f"  activity: automatic {list(p.activity.automatic)}, privileged {list(p.activity.privileged)}")


def explain(policy: Policy, ev_raw: Any) -> dict[str, Any]:
    """Which rules bind a session shaped by this event, and why (JSON-ready).

    Examples
    --------
    >>> from streams.engine.policy import loads_policy
    >>> p = loads_policy('[[rules]]\\nname = "admins"\\nroles = ["admin"]\\nidle = "15m"')
    >>> out = explain(p, {"type": "login", "ts": 0, "user": "u", "session": "s", "roles": ["admin"]})
    >>> out["limits"]["idle"], out["limits"]["idle_by"], out["rules"][0]["matches"]
    ('15m', 'admins', True)
    """
    ev = parse_event(ev_raw)
    s = SessionState(ev.session or "-", ev.user or "-", ev.ts)
    s.ip, s.channel, s.app, s.roles, s.aal = ev.ip, ev.channel, ev.app, ev.roles, ev.aal
    activity: dict[str, Any] = {}
    if ev.type == "activity":
        auto = ev.automatic or policy.is_automatic(ev.action, ev.resource)
        priv = ev.privileged or policy.is_privileged(ev.action, ev.resource)
        activity = {"automatic": auto, "privileged": priv}
        if priv:
            s.priv_last = s.priv_since = ev.ts
        s.rate_w = window_add(None, ev.ts, 1, RATE_WINDOW_S)
        if ev.bytes:
            s.bytes_w = window_add(None, ev.ts, ev.bytes, policy.activity.bytes_window)
    raw_risk = (ev.raw or {}).get("risk")
    if isinstance(raw_risk, (int, float)) and not isinstance(raw_risk, bool):
        s.risk = float(raw_risk)
    lim = policy.limits(s, ev.ts)
    return {
        "event": {"type": ev.type, "user": ev.user, "session": ev.session, "ip": ev.ip,
                  "networks": sorted(policy.networks_of(ev.ip)), **activity},
        "limits": {"idle": format_duration(lim.idle), "absolute": format_duration(lim.absolute),
                   "idle_by": lim.idle_by, "absolute_by": lim.absolute_by, "rules": list(lim.rules),
                   "activity_conditions": [{"rule": r, "condition": c, "from_event": ev.type} for r, c in lim.conditions]},
        "rules": policy.explain_rules(s, ev.ts),
        "policy_version": policy.version,
    }


@policy_cmd.command("explain")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--event", "event_json", required=True, help="One canonical event as JSON (add \"risk\": 0.95 to try risk rules).")
def explain_cmd(file: str, event_json: str) -> None:
    """Show which rules of FILE bind a session with this EVENT's attributes, and why."""
    p = _load(file)
    try:
        out = explain(p, event_json.encode())
    except InvalidEvent as exc:
        raise click.ClickException(f"invalid event: {exc}") from None
    lim = out["limits"]
    click.echo(f"limits: idle {lim['idle']} (by {lim['idle_by']}), absolute {lim['absolute']} (by {lim['absolute_by']})")
    click.echo(f"binding rules: {', '.join(lim['rules'])}")
    for c in lim["activity_conditions"]:
        click.echo(f"  activity condition {c['condition']} of rule {c['rule']} holds (from this {c['from_event']} event)")
    for r in out["rules"]:
        mark = "match" if r["matches"] else "no   "
        why = "" if r["matches"] else "  because " + "; ".join(r["why_not"])
        click.echo(f"  [{mark}] {r['rule']}: idle {r['idle']}, absolute {r['absolute']}{why}")
    click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


# -- operator commands (logic in streams/service/web/policy_publish.py and streams/compliance.py) --

@policy_cmd.command("publish")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--operator", default=None, help="Who publishes (recorded in the audit trail; default: login name).")
def publish_cmd(file: str, operator: str | None) -> None:
    """Validate FILE and publish it to the compacted policy topic; every worker applies it at once.

    A bad file is refused (nothing is sent) with an error naming each bad key. Broker and topic
    prefix come from the environment (LAPSE_BOOTSTRAP, LAPSE_TOPIC_PREFIX, ...).
    """
    import asyncio

    from streams.config import ConfigError, Settings
    from streams.service.web.policy_publish import publish

    _load(file)  # refuse a bad file before touching the broker
    try:
        settings = Settings.load()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        rec = asyncio.run(publish(settings, file, operator))
    except (PolicyError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"published {file}: version {rec['version']} to {settings.topic('policy')} "
               f"(by {rec['operator']} at {rec['published_at']})")


@policy_cmd.command("report")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the Markdown report here (default: standard output).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), default=None, help="Also write an HTML report.")
def report_cmd(file: str, out: str | None, html_out: str | None) -> None:
    """Compliance report of FILE: effective limits per role, network, channel and app, and the
    standards each meets or misses (NIST SP 800-63B rev. 3 and 4, PCI DSS 8.2.8, PSD2 RTS, OWASP)."""
    from pathlib import Path

    from streams.compliance import build_report, render_html, render_markdown

    rep = build_report(_load(file), file)
    md = render_markdown(rep)
    if out:
        Path(out).write_text(md, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(md)
    if html_out:
        Path(html_out).write_text(render_html(rep), encoding="utf-8")
        click.echo(f"wrote {html_out}", err=True)
