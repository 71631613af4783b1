from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine import PRESETS, PolicyError, default_policy, loads_policy, policy_from_dict
from streams.engine.state import SessionState

POLICY = """
[defaults]
idle = "30m"
absolute = "12h"
[networks]
corporate = ["10.0.0.0/8", "192.168.0.0/16"]
[[rules]]
name = "admins"
roles = ["admin"]
idle = "15m"
absolute = "8h"
[[rules]]
name = "off-network"
network = "!corporate"
idle = "10m"
[[rules]]
name = "api-clients"
channel = "api"
absolute = "1h"
"""


def test_errors_name_the_key_and_all_are_collected():
    with pytest.raises(PolicyError) as exc:
        loads_policy("""
[defaults]
idle = "soon"
[[rules]]
name = "a"
idle = "5m"
[[rules]]
name = "b"
idle = "5m"
[[rules]]
name = "c"
idle = 15
network = "nowhere"
colour = "red"
[adaptive]
step_up_at = 2
""")
    assert exc.value.errors == [
        'defaults.idle: expected a duration like "15m", got \'soon\'',
        'rules[2].colour: unknown key (expected one of aal, absolute, app, bytes_over, channel, idle, name, network, '
        'preset, privileged, privileged_within, rate_over, risk, roles)',
        'rules[2].idle: expected a duration like "15m", got 15',
        "rules[2].network: unknown network 'nowhere' (define it under [networks])",
        "adaptive.step_up_at: expected a value between 0 and 1, got 2",
    ]


def test_toml_syntax_error_is_a_policy_error():
    with pytest.raises(PolicyError, match="not valid TOML"):
        loads_policy("[defaults\nidle=")


def test_strictest_limit_wins_over_defaults_and_matching_rules():
    p = loads_policy(POLICY)
    lim = p.static_limits(("admin",), "8.8.8.8", "api", None, None)
    assert (lim.idle, lim.absolute, lim.rules, lim.idle_by, lim.absolute_by) == (
        600.0, 3600.0, ("defaults", "admins", "off-network", "api-clients"), "off-network", "api-clients")
    inside = p.static_limits(("user",), "10.1.2.3", "web", None, None)
    assert (inside.idle, inside.absolute, inside.rules) == (1800.0, 43200.0, ("defaults",))


def test_network_rule_matches_by_cidr_and_negation():
    p = loads_policy(POLICY)
    assert p.networks_of("192.168.4.4") == {"corporate"}
    assert p.static_limits(None, "192.168.4.4", None, None, None).idle == 1800.0
    assert p.static_limits(None, "172.16.0.1", None, None, None).idle == 600.0
    assert p.static_limits(None, "not-an-ip", None, None, None).idle == 600.0


def test_every_preset_has_its_figures_and_a_citation():
    figures = {k: (v.idle, v.absolute) for k, v in PRESETS.items()}
    assert figures == {
        "nist-800-63b-aal1": (None, 30 * 86400.0), "nist-800-63b-aal2": (1800.0, 43200.0),
        "nist-800-63b-aal3": (900.0, 43200.0), "nist-800-63b-4-aal2": (3600.0, 86400.0),
        "nist-800-63b-4-aal3": (900.0, 43200.0), "pci-dss-4": (900.0, None), "psd2": (300.0, None),
        "owasp-high-value": (300.0, None), "owasp-low-risk": (1800.0, None)}
    assert all(len(v.citation) > 20 for v in PRESETS.values())
    assert "8.2.8" in PRESETS["pci-dss-4"].citation


def test_preset_in_defaults_and_rules_with_explicit_override():
    p = loads_policy('[defaults]\npreset = "nist-800-63b-aal3"\nabsolute = "10h"\n'
                     '[[rules]]\nname = "cards"\napp = "payments"\npreset = "psd2"\n')
    assert p.static_limits(None, None, None, None, None).idle == 900.0
    assert p.static_limits(None, None, None, None, None).absolute == 36000.0
    assert p.static_limits(None, None, None, "payments", None).idle == 300.0


def test_version_is_stable_and_follows_content():
    assert loads_policy(POLICY).version == loads_policy(POLICY).version
    assert loads_policy(POLICY).version != loads_policy(POLICY.replace('"15m"', '"14m"')).version
    # formatting does not matter, only the normalised content
    assert loads_policy(POLICY).version == loads_policy(POLICY.replace('"30m"', '"1800s"')).version


def test_default_policy_loads():
    p = default_policy()
    assert p.static_limits(("admin",), "10.0.0.1", "web", None, None).idle == 900.0


ROLES = ["admin", "ops", "dev", "guest"]
rule_st = st.fixed_dictionaries(
    {"idle": st.integers(1, 120).map(lambda m: f"{m}m")},
    optional={"roles": st.lists(st.sampled_from(ROLES), min_size=1, max_size=2),
              "channel": st.sampled_from(["web", "api", "mobile"]),
              "absolute": st.integers(1, 48).map(lambda h: f"{h}h"),
              "privileged": st.just(True)})


@settings(max_examples=150, deadline=None)
@given(st.lists(rule_st, max_size=6), st.lists(st.sampled_from(ROLES), max_size=2), st.sampled_from(["web", "api"]),
       st.one_of(st.none(), st.floats(0, 2000)))
def test_strictest_wins_property_including_activity_conditions(rules, roles, channel, priv_age):
    data = {"defaults": {"idle": "30m", "absolute": "12h"},
            "rules": [{"name": f"r{i}", **r} for i, r in enumerate(rules)]}
    p = policy_from_dict(data)
    s = SessionState("s", "u", 0.0)
    s.roles, s.channel = tuple(roles) or None, channel
    t = 5000.0
    if priv_age is not None:
        s.priv_last = t - priv_age
    lim = p.limits(s, t)
    idle, absolute = [1800.0], [43200.0]
    for r in p.rules:
        if r.roles is not None and not set(roles) & r.roles:
            continue
        if r.channel is not None and r.channel != channel:
            continue
        if r.privileged and not (priv_age is not None and priv_age < r.privileged_within):
            continue
        if r.idle is not None:
            idle.append(r.idle)
        if r.absolute is not None:
            absolute.append(r.absolute)
    assert (lim.idle, lim.absolute) == (min(idle), min(absolute))
