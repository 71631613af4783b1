"""Loading and validation: TOML text, a file or a decoded dict in, a :class:`Policy` out.

Validation collects every problem before giving up (:class:`_V`), so one :class:`PolicyError`
names each bad key; presets are resolved here and explicit limits override them. This is the
only module of the package that knows the policy file's format, and the top of its import order
(presets <- model <- evaluate <- load): nothing here is needed to evaluate a policy once built.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from ..durations import DurationError, parse_duration
from .evaluate import Policy
from .model import INF, RISK_BANDS, ActivityPolicy, AdaptivePolicy, IdsPolicy, PolicyError, Rule
from .presets import PRESETS

__all__ = ["policy_from_dict", "loads_policy", "load_policy", "default_policy"]


def _compile(patterns: tuple[str, ...]) -> Any:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


_TOP = {"defaults", "networks", "rules", "ids", "adaptive", "activity"}
_RULE_KEYS = {"name", "idle", "absolute", "preset", "roles", "network", "channel", "app", "aal", "privileged",
              "privileged_within", "bytes_over", "rate_over", "risk"}


class _V:
    """Collects errors while reading a policy dict."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, key: str, msg: str) -> None:
        self.errors.append(f"{key}: {msg}")

    def table(self, data: Any, key: str) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.err(key, f"expected a table, got {type(data).__name__}")
            return {}
        return data

    def unknown(self, data: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for k in data:
            if k not in allowed:
                self.err(f"{prefix}{k}", f"unknown key (expected one of {', '.join(sorted(allowed))})")

    def duration(self, data: dict[str, Any], k: str, prefix: str, default: float | None = None,
                 allow_none: bool = False) -> float | None:
        if k not in data:
            return default
        v = data[k]
        if allow_none and v == "none":
            return None
        try:
            out = parse_duration(v)
        except DurationError as exc:
            self.err(prefix + k, str(exc))
            return default
        if out <= 0:
            self.err(prefix + k, f"must be positive, got {v!r}")
            return default
        return out

    def number(self, data: dict[str, Any], k: str, prefix: str, default: float, lo: float = 0.0,
               hi: float = INF, integer: bool = False) -> float:
        if k not in data:
            return default
        v = data[k]
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type:
            self.err(prefix + k, f"expected {'an integer' if integer else 'a number'}, got {v!r}")
            return default
        if not lo <= v <= hi:
            self.err(prefix + k, f"expected a value between {lo:g} and {hi:g}, got {v!r}")
            return default
        return v

    def string(self, data: dict[str, Any], k: str, prefix: str) -> str | None:
        v = data.get(k)
        if v is not None and not isinstance(v, str):
            self.err(prefix + k, f"expected a string, got {v!r}")
            return None
        return v

    def strings(self, data: dict[str, Any], k: str, prefix: str) -> tuple[str, ...] | None:
        if k not in data:
            return None
        v = data[k]
        if not isinstance(v, list):
            self.err(prefix + k, f"expected a list of strings, got {v!r}")
            return None
        out = []
        for i, x in enumerate(v):
            if not isinstance(x, str):
                self.err(f"{prefix}{k}[{i}]", f"expected a string, got {x!r}")
            else:
                out.append(x)
        return tuple(out)


def _limits_with_preset(v: _V, data: dict[str, Any], prefix: str, idle: float | None,
                        absolute: float | None) -> tuple[float | None, float | None, str | None]:
    preset = v.string(data, "preset", prefix)
    if preset is not None:
        p = PRESETS.get(preset)
        if p is None:
            v.err(prefix + "preset", f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        else:
            idle, absolute = p.idle, p.absolute
    idle = v.duration(data, "idle", prefix, idle, allow_none=True)
    absolute = v.duration(data, "absolute", prefix, absolute, allow_none=True)
    return idle, absolute, preset


def policy_from_dict(data: dict[str, Any], source: str = "<dict>") -> Policy:
    """Validate a decoded policy and build a :class:`Policy`; raise :class:`PolicyError` listing every error.

    Explicit ``idle``/``absolute`` keys override a ``preset`` in the same table.
    """
    v = _V()
    if not isinstance(data, dict):
        raise PolicyError([f"(top): expected a table, got {type(data).__name__}"])
    v.unknown(data, _TOP, "")

    dd = v.table(data.get("defaults"), "defaults")
    v.unknown(dd, {"idle", "absolute", "preset"}, "defaults.")
    d_idle, d_abs, d_preset = _limits_with_preset(v, dd, "defaults.", 1800.0, 12 * 3600.0)
    defaults = Rule("defaults", d_idle, d_abs, d_preset)

    networks: dict[str, tuple[Any, ...]] = {}
    for name, cidrs in v.table(data.get("networks"), "networks").items():
        if not isinstance(cidrs, list):
            cidrs = [cidrs]
        nets = []
        for i, c in enumerate(cidrs):
            try:
                nets.append(ipaddress.ip_network(c, strict=False))
            except (ValueError, TypeError):
                v.err(f"networks.{name}[{i}]", f"expected a CIDR like \"10.0.0.0/8\", got {c!r}")
        networks[name] = tuple(nets)

    act = v.table(data.get("activity"), "activity")
    v.unknown(act, {"automatic", "privileged", "bytes_window", "refresh_resets_idle"}, "activity.")
    auto_p = v.strings(act, "automatic", "activity.") or ()
    priv_p = v.strings(act, "privileged", "activity.") or ()
    bytes_window = v.duration(act, "bytes_window", "activity.", 300.0) or 300.0
    refresh_resets_idle = act.get("refresh_resets_idle", False)
    if not isinstance(refresh_resets_idle, bool):
        v.err("activity.refresh_resets_idle", f"expected true or false, got {refresh_resets_idle!r}")
        refresh_resets_idle = False
    activity = ActivityPolicy(auto_p, priv_p, bytes_window, refresh_resets_idle, _compile(auto_p), _compile(priv_p))

    rules: list[Rule] = []
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        v.err("rules", "expected an array of tables ([[rules]])")
        raw_rules = []
    seen: set[str] = {"defaults"}
    for i, rd in enumerate(raw_rules):
        pre = f"rules[{i}]."
        if not isinstance(rd, dict):
            v.err(f"rules[{i}]", "expected a table")
            continue
        v.unknown(rd, _RULE_KEYS, pre)
        name = v.string(rd, "name", pre)
        if name is None:
            if "name" not in rd:
                v.err(pre + "name", "missing")
            name = f"rule{i}"
        elif name in seen:
            v.err(pre + "name", f"duplicate rule name {name!r}")
        seen.add(name)
        idle, absolute, preset = _limits_with_preset(v, rd, pre, None, None)
        if idle is None and absolute is None and not any(k in rd for k in ("idle", "absolute", "preset")):
            v.err(f"rules[{i}]", "sets no limit (give idle, absolute or preset)")
        roles = v.strings(rd, "roles", pre)
        network = v.string(rd, "network", pre)
        negated = False
        if network is not None:
            negated = network.startswith("!")
            network = network.lstrip("!").strip()
            if network not in networks:
                v.err(pre + "network", f"unknown network {network!r} (define it under [networks])")
        channel = v.string(rd, "channel", pre)
        if channel is not None and channel not in ("web", "mobile", "api"):
            v.err(pre + "channel", f"expected web, mobile or api, got {channel!r}")
        aal = None
        if "aal" in rd:
            aal = int(v.number(rd, "aal", pre, 0, 1, 3, integer=True)) or None
        privileged = rd.get("privileged")
        if privileged is not None and not isinstance(privileged, bool):
            v.err(pre + "privileged", f"expected true or false, got {privileged!r}")
            privileged = None
        within = v.duration(rd, "privileged_within", pre, 900.0) or 900.0
        if "privileged_within" in rd and privileged is None:
            v.err(pre + "privileged_within", "only meaningful with privileged = true")
        bytes_over = int(v.number(rd, "bytes_over", pre, -1, 0, integer=True)) if "bytes_over" in rd else None
        if bytes_over == -1:
            bytes_over = None
        rate_over = float(v.number(rd, "rate_over", pre, -1, 0)) if "rate_over" in rd else None
        if rate_over == -1:
            rate_over = None
        risk = v.string(rd, "risk", pre)
        if risk is not None and risk not in RISK_BANDS:
            v.err(pre + "risk", f"expected \"elevated\" or \"high\", got {risk!r}")
            risk = None
        rules.append(Rule(name, idle, absolute, preset, frozenset(roles) if roles is not None else None, network,
                          negated, channel, v.string(rd, "app", pre), aal, privileged, within, bytes_over,
                          rate_over, risk, i))

    ids_d = v.table(data.get("ids"), "ids")
    v.unknown(ids_d, {"revoke", "step_up", "lookback"}, "ids.")
    sev = {}
    for k, default in (("revoke", ("critical", "high")), ("step_up", ("medium",))):
        vals = v.strings(ids_d, k, "ids.")
        if vals is None:
            vals = default
        for j, s in enumerate(vals):
            if s not in ("critical", "high", "medium", "low"):
                v.err(f"ids.{k}[{j}]", f"expected one of critical, high, medium, low, got {s!r}")
        sev[k] = frozenset(x for x in vals if x in ("critical", "high", "medium", "low"))
    for s in sev["revoke"] & sev["step_up"]:
        v.err("ids.step_up", f"severity {s!r} is also in ids.revoke")
    ids = IdsPolicy(sev["revoke"], sev["step_up"], v.duration(ids_d, "lookback", "ids.", 3600.0) or 3600.0)

    ad = v.table(data.get("adaptive"), "adaptive")
    v.unknown(ad, {"enabled", "step_up_at", "revoke_at", "elevated_at", "warmup", "idle_factor"}, "adaptive.")
    enabled = ad.get("enabled", False)
    if not isinstance(enabled, bool):
        v.err("adaptive.enabled", f"expected true or false, got {enabled!r}")
        enabled = False
    d_ad = AdaptivePolicy()
    step_up_at = float(v.number(ad, "step_up_at", "adaptive.", d_ad.step_up_at, 0, 1))
    adaptive = AdaptivePolicy(
        enabled,
        step_up_at,
        float(v.number(ad, "revoke_at", "adaptive.", d_ad.revoke_at, 0, 1)),
        float(v.number(ad, "elevated_at", "adaptive.", min(d_ad.elevated_at, step_up_at), 0, 1)),
        int(v.number(ad, "warmup", "adaptive.", d_ad.warmup, 0, integer=True)),
        float(v.number(ad, "idle_factor", "adaptive.", d_ad.idle_factor, 0.01, 1)),
    )
    if adaptive.step_up_at > adaptive.revoke_at:
        v.err("adaptive.step_up_at", f"must not exceed revoke_at ({adaptive.revoke_at}), got {adaptive.step_up_at}")
    if adaptive.elevated_at > adaptive.step_up_at:
        v.err("adaptive.elevated_at", f"must not exceed step_up_at ({adaptive.step_up_at}), got {adaptive.elevated_at}")

    if v.errors:
        raise PolicyError(v.errors)
    normalised = {
        "defaults": {"idle": d_idle, "absolute": d_abs},
        "networks": {k: [str(n) for n in ns] for k, ns in networks.items()},
        "rules": [{"name": r.name, "idle": r.idle, "absolute": r.absolute, **r.conditions()} for r in rules],
        "ids": {"revoke": sorted(ids.revoke), "step_up": sorted(ids.step_up), "lookback": ids.lookback},
        "adaptive": {k: getattr(adaptive, k) for k in AdaptivePolicy.__slots__},
        "activity": {"automatic": list(auto_p), "privileged": list(priv_p), "bytes_window": bytes_window,
                     "refresh_resets_idle": refresh_resets_idle},
    }
    return Policy(defaults, tuple(rules), networks, ids, adaptive, activity, normalised, source)


def loads_policy(text: str, source: str = "<string>") -> Policy:
    """Parse and validate TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"{source}: not valid TOML: {exc}"]) from None
    return policy_from_dict(data, source)


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file (``None``: the shipped ``streams/policy.default.toml``)."""
    if path is None:
        return default_policy()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise PolicyError([f"{p}: not UTF-8 text (byte {exc.start})"]) from None
    return loads_policy(text, str(p))


def default_policy() -> Policy:
    """The shipped default policy.

    Examples
    --------
    >>> p = default_policy()
    >>> p.static_limits(None, "10.1.2.3", "web", None, None).idle, p.static_limits(None, "8.8.8.8", "web", None, None).idle
    (1800.0, 1200.0)
    """
    text = resources.files("streams").joinpath("policy.default.toml").read_text(encoding="utf-8")
    return loads_policy(text, "policy.default.toml")
