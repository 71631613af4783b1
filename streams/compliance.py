"""Compliance report of a session policy: effective limits per context, and the standards each meets.

``lapse policy report FILE [--out REPORT.md] [--html REPORT.html]``

Every figure and citation lives in :data:`STANDARDS` (one place to review against the sources).
The limits in the report come from the engine's own evaluation (:meth:`Policy.static_limits`),
never from a re-implementation, so the document shows what the worker enforces.

A *context* is one combination of role, network, channel, application and AAL that the policy
distinguishes (every value a rule mentions, plus "any other"). Rules with activity conditions
(privileged use, transfer volume, request rate, risk band) can only tighten a context's limits
while their condition holds; they are listed separately.

Examples
--------
>>> from streams.engine import loads_policy
>>> p = loads_policy('[defaults]\\nidle = "15m"\\nabsolute = "12h"')
>>> [(s.key, meets(s, 900.0, 43200.0)) for s in STANDARDS if s.key in ("pci-dss-4-8.2.8", "psd2-rts-4")]
[('pci-dss-4-8.2.8', True), ('psd2-rts-4', False)]
>>> md = render_markdown(build_report(p, "p.toml"))
>>> "| any | any | any | any | any | 15m | 12h |" in md
True
"""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from streams.engine.durations import format_duration
from streams.engine.policy import PRESETS, Policy

__all__ = ["Standard", "STANDARDS", "meets", "build_report", "render_markdown", "render_html"]

MIN = 60.0
HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Standard:
    """A published session limit: the largest ``idle`` / ``absolute`` (seconds) it allows; ``None`` = no figure."""

    key: str
    short: str          # column header
    name: str
    idle: float | None
    absolute: float | None
    strength: str       # "shall" (normative), "should" (recommendation), "guidance"
    citation: str
    note: str = ""


#: The figures, each with its citation. Reviewed against the sources named in ``citation``.
STANDARDS: tuple[Standard, ...] = (
    Standard("nist-800-63b-3-aal1", "NIST3 AAL1", "NIST SP 800-63B rev. 3, AAL1", None, 30 * DAY, "shall",
             "NIST SP 800-63B (June 2017) §4.1.3: reauthentication at least once per 30 days during an extended "
             "usage session, regardless of user activity"),
    Standard("nist-800-63b-3-aal2", "NIST3 AAL2", "NIST SP 800-63B rev. 3, AAL2", 30 * MIN, 12 * HOUR, "shall",
             "NIST SP 800-63B (June 2017) §4.2.3: reauthentication once per 12 hours regardless of activity, and "
             "after any period of inactivity lasting 30 minutes or longer"),
    Standard("nist-800-63b-3-aal3", "NIST3 AAL3", "NIST SP 800-63B rev. 3, AAL3", 15 * MIN, 12 * HOUR, "shall",
             "NIST SP 800-63B (June 2017) §4.3.3: reauthentication once per 12 hours regardless of activity, and "
             "after any period of inactivity lasting 15 minutes or longer"),
    Standard("nist-800-63b-4-aal1", "NIST4 AAL1", "NIST SP 800-63B-4, AAL1", None, 30 * DAY, "should",
             "NIST SP 800-63B-4 (August 2025) §2.1.3: reauthentication SHOULD be repeated at least once per "
             "30 days; no inactivity timeout required"),
    Standard("nist-800-63b-4-aal2", "NIST4 AAL2", "NIST SP 800-63B-4, AAL2", HOUR, 24 * HOUR, "should",
             "NIST SP 800-63B-4 (August 2025) §2.2.3: reauthentication at least once per 24 hours; inactivity "
             "timeout SHOULD be no more than 1 hour"),
    Standard("nist-800-63b-4-aal3", "NIST4 AAL3", "NIST SP 800-63B-4, AAL3", 15 * MIN, 12 * HOUR, "shall",
             "NIST SP 800-63B-4 (August 2025) §2.3.3: reauthentication at least once per 12 hours; inactivity "
             "timeout no more than 15 minutes"),
    Standard("pci-dss-4-8.2.8", "PCI 8.2.8", "PCI DSS v4.0 requirement 8.2.8", 15 * MIN, None, "shall",
             "PCI DSS v4.0 (March 2022) requirement 8.2.8: if a user session has been idle for more than 15 "
             "minutes, the user is required to re-authenticate to re-activate the terminal or session"),
    Standard("psd2-rts-4", "PSD2 RTS", "PSD2 RTS on SCA, Art. 4(3)(d)", 5 * MIN, None, "shall",
             "Commission Delegated Regulation (EU) 2018/389, Art. 4(3)(d): the maximum time without activity "
             "by the payer after being authenticated for accessing its payment account online shall not exceed "
             "5 minutes",
             "applies to online access to payment accounts"),
    Standard("owasp-high-value", "OWASP HV", "OWASP Session Management, high-value", 5 * MIN, None, "guidance",
             "OWASP Session Management Cheat Sheet, Session Expiration: common idle timeouts are 2-5 minutes "
             "for high-value applications",
             "a range: 2-5 min idle; limits at or under 5 min meet it"),
    Standard("owasp-low-risk", "OWASP LR", "OWASP Session Management, low-risk", 30 * MIN, None, "guidance",
             "OWASP Session Management Cheat Sheet, Session Expiration: 15-30 minutes idle for low-risk "
             "applications",
             "a range: 15-30 min idle; limits at or under 30 min meet it"),
)

#: IPs tried as "outside every named network" (documentation ranges, RFC 5737 / RFC 3849)
_OUTSIDE_IPS = ("203.0.113.10", "198.51.100.10", "192.0.2.10", "2001:db8::10")


def meets(std: Standard, idle: float | None, absolute: float | None) -> bool:
    """True when limits ``idle``/``absolute`` (``None`` = unlimited) are within ``std``'s figures."""
    if std.idle is not None and (idle is None or idle > std.idle):
        return False
    if std.absolute is not None and (absolute is None or absolute > std.absolute):
        return False
    return True


def _network_probes(policy: Policy) -> list[tuple[str, str | None]]:
    """(label, ip) per named network, plus one IP outside all of them (or none when not findable)."""
    probes: list[tuple[str, str | None]] = []
    for name, nets in policy.networks.items():
        for net in nets:
            ip = str(next(net.hosts(), net.network_address)) if net.num_addresses > 1 else str(net.network_address)
            if name in policy.networks_of(ip):
                probes.append((name, ip))
                break
    for ip in _OUTSIDE_IPS:
        if not policy.networks_of(ip):
            probes.append(("outside named networks" if policy.networks else "any", ip))
            break
    else:  # pragma: no cover - every documentation range inside a named network
        probes.append(("unknown ip", None))
    return probes


def _contexts(policy: Policy) -> list[dict[str, Any]]:
    roles = sorted({x for r in policy.rules if r.roles for x in r.roles})
    role_opts: list[tuple[str, tuple[str, ...] | None]] = [("any", None)] + [(r, (r,)) for r in roles]
    uses_net = any(r.network for r in policy.rules)
    net_opts = _network_probes(policy) if uses_net else [("any", "203.0.113.10")]
    channels = sorted({r.channel for r in policy.rules if r.channel})
    ch_opts: list[tuple[str, str | None]] = [("any", None)] + [(c, c) for c in channels]
    apps = sorted({r.app for r in policy.rules if r.app})
    app_opts: list[tuple[str, str | None]] = [("any", None)] + [(a, a) for a in apps]
    aals = sorted({r.aal for r in policy.rules if r.aal})
    aal_opts: list[tuple[str, int | None]] = [("any", None)] + [(str(a), a) for a in aals]
    rows = []
    for (rl, rv), (nl, ip), (cl, cv), (al, av), (ql, qv) in itertools.product(role_opts, net_opts, ch_opts,
                                                                              app_opts, aal_opts):
        lim = policy.static_limits(rv, ip, cv, av, qv)
        rows.append({"role": rl, "network": nl, "channel": cl, "app": al, "aal": ql, "limits": lim})
        if len(rows) >= 2000:
            break
    return rows


def build_report(policy: Policy, source: str, *, generated: datetime | None = None) -> dict[str, Any]:
    """The report as data (rendered by :func:`render_markdown` / :func:`render_html`)."""
    generated = generated or datetime.now(timezone.utc)
    rows = []
    for c in _contexts(policy):
        lim = c.pop("limits")
        rows.append({**c, "idle": lim.idle, "absolute": lim.absolute, "idle_by": lim.idle_by,
                     "absolute_by": lim.absolute_by, "rules": list(lim.rules),
                     "meets": {s.key: meets(s, lim.idle, lim.absolute) for s in STANDARDS}})
    conditional = []
    for r in policy.rules:
        if r.dynamic:
            conds = {k: v for k, v in r.conditions().items()}
            conditional.append({"rule": r.name, "conditions": conds, "idle": r.idle, "absolute": r.absolute,
                                "meets": [s.key for s in STANDARDS if meets(s, r.idle, r.absolute)]})
    summary = []
    for s in STANDARDS:
        ok = [r for r in rows if r["meets"][s.key]]
        summary.append({"standard": s.key, "name": s.name, "strength": s.strength, "meets": len(ok),
                        "of": len(rows), "all": len(ok) == len(rows)})
    presets = [(name, PRESETS[name].citation) for name in
               sorted({p for p in [policy.defaults.preset, *(r.preset for r in policy.rules)] if p})]
    return {"source": source, "version": policy.version, "generated": generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "defaults": {"idle": policy.defaults.idle, "absolute": policy.defaults.absolute,
                         "preset": policy.defaults.preset},
            "rules": [{"name": r.name, "conditions": r.conditions(), "idle": r.idle, "absolute": r.absolute,
                       "preset": r.preset} for r in policy.rules],
            "networks": {k: [str(n) for n in v] for k, v in policy.networks.items()},
            "rows": rows, "conditional": conditional, "summary": summary, "presets": presets,
            "ids": {"revoke": sorted(policy.ids.revoke), "step_up": sorted(policy.ids.step_up),
                    "lookback": policy.ids.lookback},
            "adaptive": {"enabled": policy.adaptive.enabled, "step_up_at": policy.adaptive.step_up_at,
                         "revoke_at": policy.adaptive.revoke_at}}


def _d(x: float | None) -> str:
    return format_duration(x) if x is not None else "none"


def _max(x: float | None) -> str:
    return f"≤ {format_duration(x)}" if x is not None else "no figure"


def _blocks(rep: dict[str, Any]) -> list[tuple[str, Any]]:
    """Document blocks: ("h1"|"h2"|"p"|"ul", text or items) and ("table", (header, rows))."""
    std_cols = [s.short for s in STANDARDS]
    b: list[tuple[str, Any]] = []
    b.append(("h1", f"Session policy compliance report — version {rep['version']}"))
    b.append(("p", f"Policy file: `{rep['source']}` · version `{rep['version']}` · generated {rep['generated']} by "
                   "`lapse policy report`. Limits below are computed by the engine that enforces them."))
    d = rep["defaults"]
    b.append(("p", f"Defaults: idle {_d(d['idle'])}, absolute {_d(d['absolute'])}"
                   + (f" (preset `{d['preset']}`)" if d["preset"] else "") + ". Each session gets the strictest "
                   "limit over the defaults and every rule that matches it."))
    b.append(("h2", "Summary by standard"))
    b.append(("table", (["standard", "kind", "contexts meeting it", "verdict"],
                        [[s["name"], s["strength"], f"{s['meets']} of {s['of']}",
                          "meets" if s["all"] else ("partly" if s["meets"] else "misses")] for s in rep["summary"]])))
    b.append(("h2", "Effective limits per context"))
    b.append(("p", "One row per combination of role, network, channel, application and AAL that the policy "
                   "distinguishes (\"any\" = a value no rule names). ✓ meets, ✗ misses."))
    header = ["role", "network", "channel", "app", "aal", "idle", "absolute", "set by"] + std_cols
    rows = []
    for r in rep["rows"]:
        by = r["idle_by"] if r["idle_by"] == r["absolute_by"] else f"{r['idle_by']} / {r['absolute_by']}"
        rows.append([r["role"], r["network"], r["channel"], r["app"], r["aal"], _d(r["idle"]), _d(r["absolute"]), by]
                    + ["✓" if r["meets"][s.key] else "✗" for s in STANDARDS])
    b.append(("table", (header, rows)))
    if rep["conditional"]:
        b.append(("h2", "Conditional tightening (activity rules)"))
        b.append(("p", "While a condition holds, the rule's limits apply on top of the context's (strictest wins)."))
        b.append(("table", (["rule", "when", "idle", "absolute", "meets on its own"],
                            [[c["rule"], ", ".join(f"{k}={v}" for k, v in c["conditions"].items()), _d(c["idle"]),
                              _d(c["absolute"]), ", ".join(s.short for s in STANDARDS if s.key in c["meets"]) or "—"]
                             for c in rep["conditional"]])))
    b.append(("h2", "Rules"))
    b.append(("table", (["rule", "conditions", "idle", "absolute", "preset"],
                        [[r["name"], ", ".join(f"{k}={v}" for k, v in r["conditions"].items()) or "always",
                          _d(r["idle"]), _d(r["absolute"]), r["preset"] or ""] for r in rep["rules"]])))
    if rep["networks"]:
        b.append(("ul", [f"network `{k}`: {', '.join(v)}" for k, v in rep["networks"].items()]))
    ids = rep["ids"]
    b.append(("p", f"IDS alerts: revoke on {', '.join(ids['revoke']) or 'none'}; step-up on "
                   f"{', '.join(ids['step_up']) or 'none'}; sightings looked back {_d(ids['lookback'])}. Adaptive "
                   f"scoring {'enabled' if rep['adaptive']['enabled'] else 'disabled'}."))
    b.append(("h2", "Standards and citations"))
    b.append(("ul", [f"**{s.short}** — {s.name}: idle {_max(s.idle)}, absolute {_max(s.absolute)} ({s.strength}). "
                     f"{s.citation}." + (f" Note: {s.note}." if s.note else "") for s in STANDARDS]))
    if rep["presets"]:
        b.append(("ul", [f"preset `{n}`: {c}" for n, c in rep["presets"]]))
    b.append(("p", "A standard applies only where its scope does (e.g. PSD2 to online payment-account access, "
                   "PCI DSS to the cardholder data environment); the report shows where the policy's limits are "
                   "within each figure, not which standard a deployment must meet."))
    return b


def _md_cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(rep: dict[str, Any]) -> str:
    out: list[str] = []
    for kind, val in _blocks(rep):
        if kind == "h1":
            out.append(f"# {val}\n")
        elif kind == "h2":
            out.append(f"## {val}\n")
        elif kind == "p":
            out.append(f"{val}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in val) + "\n")
        elif kind == "table":
            header, rows = val
            out.append("| " + " | ".join(map(_md_cell, header)) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out.extend("| " + " | ".join(map(_md_cell, r)) + " |" for r in rows)
            out.append("")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    """Escape, then the two Markdown inline forms the report uses: `code` and **bold**."""
    import re

    t = html.escape(str(text))
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)


def render_html(rep: dict[str, Any]) -> str:
    parts = ["<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>lapse policy report {html.escape(rep['version'])}</title><style>",
             "body{font:14px/1.45 system-ui,sans-serif;margin:2em;max-width:1400px;color:#1b1f24}"
             "table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccd;padding:3px 7px;text-align:left}"
             "th{background:#eef1f5}td.ok{color:#116329}td.miss{color:#a40e26;background:#fff0f0}"
             "code{background:#f2f3f5;padding:0 3px}", "</style></head><body>"]
    for kind, val in _blocks(rep):
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{_inline_html(val)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{_inline_html(val)}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(x)}</li>" for x in val) + "</ul>")
        elif kind == "table":
            header, rows = val
            parts.append("<table><thead><tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in header)
                         + "</tr></thead><tbody>")
            for r in rows:
                cells = []
                for x in r:
                    cls = ' class="ok"' if x == "✓" else (' class="miss"' if x == "✗" else "")
                    cells.append(f"<td{cls}>{_inline_html(x)}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts)

