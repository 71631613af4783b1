"""Identity and activity arrive on different topics: a login may be read after its session's
first requests. The decisions must not depend on that interleaving."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine import Engine, loads_policy, parse_event

from engine_harness import T0

POLICY = loads_policy("""
[defaults]
idle = "10m"
absolute = "1h"
[[rules]]
name = "admins"
roles = ["admin"]
idle = "2m"
absolute = "30m"
""")


def _run(events: list[dict]) -> list[tuple]:
    eng = Engine(POLICY)
    outs = []
    for e in events:
        outs += eng.handle(parse_event(e), T0)  # wall clock fixed before every deadline
    outs += eng.expire(float("inf"))
    return sorted((o.value["id"], o.value["reason"], o.value["at"]) for o in outs if o.kind == "decision")


def _session(n_activity: int, admin: bool, sso: bool) -> tuple[dict, list[dict]]:
    login = {"type": "login", "ts": T0 + 1, "user": "u", "session": "s", "roles": ["admin" if admin else "staff"]}
    if sso:
        login["sso_session"] = "sso1"
    acts = [{"type": "activity", "ts": T0 + 2 + 30 * i, "user": "u", "session": "s", "ip": "10.0.0.1"}
            for i in range(n_activity)]
    return login, acts


def test_a_login_read_after_its_sessions_activity_still_sets_roles_and_the_absolute_start():
    login, acts = _session(3, admin=True, sso=False)
    in_order = _run([login] + acts)
    login_late = _run(acts + [login])
    assert login_late == in_order
    [(_, reason, at)] = in_order
    assert reason == "idle_timeout" and at == "2026-01-01T00:03:02Z"  # admins: 2 min after the last request


def test_a_late_login_still_links_its_sso_session():
    login, acts = _session(2, admin=False, sso=True)
    other = {"type": "login", "ts": T0 + 1.5, "user": "u", "session": "s2", "sso_session": "sso1"}
    logout = {"type": "logout", "ts": T0 + 100, "user": "u", "sso_session": "sso1"}
    in_order = _run([login, other] + acts + [logout])
    late = _run(acts + [other, login, logout])
    assert late == in_order
    assert [r for _, r, _ in in_order] == ["sso_logout", "sso_logout"]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(0, 6), admin=st.booleans(), sso=st.booleans())
def test_decisions_do_not_depend_on_where_the_login_is_read(n, k, admin, sso):
    login, acts = _session(n, admin, sso)
    k = min(k, n)
    assert _run(acts[:k] + [login] + acts[k:]) == _run([login] + acts)
