"""The steady-session shortcut of ``FeatureExtractor`` changes nothing but the cost.

Most events are a session's next request from where it already is; ``FeatureExtractor.extract``
computes only what such an event can show. These tests replay whole streams of both generators
twice, once with the shortcut and once with it switched off, and compare every score and every
profile after every event.
"""

from __future__ import annotations

import copy
import pickle
import random
from collections import defaultdict

import pytest

from models.features import FeatureExtractor, observe
from models.scorer import AdaptiveScorer
from models.simulate import simulate
from models.simulate_heldout import simulate_heldout
from streams.engine import parse_event


def _sparse(events: list[dict], seed: int) -> list[dict]:
    """The stream as gateways that leave fields out send it: a third of the users never carry a
    device id, the others now and then; some events have no network, some no location."""
    rng = random.Random(seed)
    bare = {u for u in sorted({e.get("user") for e in events if e.get("user")}) if rng.random() < 1 / 3}
    out = []
    for e in events:
        e = dict(e)
        if e.get("user") in bare or rng.random() < 0.1:
            e.pop("device", None)
        geo = e.get("geo")
        if geo and rng.random() < 0.15:
            geo = e["geo"] = dict(geo)
            geo.pop("asn" if rng.random() < 0.5 else rng.choice(["lat", "country"]), None)
        out.append(e)
    return out


def _streams():
    tuning, _ = simulate(users=120, hours=30, seed=21, attack_rate=0.3, attack_after=3 * 3600)
    heldout, _ = simulate_heldout(users=120, days=1, seed=22, attack_rate=0.3)
    return {"tuning": tuning, "heldout": heldout, "tuning, fields left out": _sparse(tuning, 23),
            "heldout, fields left out": _sparse(heldout, 24)}


@pytest.fixture(scope="module")
def streams():
    return _streams()


@pytest.mark.parametrize("name", ["tuning", "heldout", "tuning, fields left out", "heldout, fields left out"])
def test_steady_shortcut_gives_the_same_scores_profiles_and_priors(streams, name):
    fast, full = AdaptiveScorer(warmup=300), AdaptiveScorer(warmup=300)
    full.fx._steady = lambda ctx: False  # every event through every feature
    pf, pu = defaultdict(dict), defaultdict(dict)
    steady = bare = refreshes = 0
    for raw in streams[name]:
        ev = parse_event(raw)
        if ev.user is None:
            continue
        a = fast.process(ev, pf[ev.user], None)
        b = full.process(ev, pu[ev.user], None)
        assert a == b, (raw, a, b)
        assert pf[ev.user] == pu[ev.user], raw
    for raw in streams[name]:  # how often the shortcut was taken, on the final profiles
        ev = parse_event(raw)
        if ev.user is not None and ev.type == "activity":
            _, ctx = fast.fx.extract(observe(ev), copy.deepcopy(pf[ev.user]))
            steady += ctx.steady
            bare += ctx.steady and ev.device is None
        elif ev.user is not None and ev.type == "refresh":
            _, ctx = fast.fx.extract(observe(ev), copy.deepcopy(pf[ev.user]))
            refreshes += ctx.steady
    assert pickle.dumps(fast.population) == pickle.dumps(full.population)
    assert pickle.dumps(fast.cal) == pickle.dumps(full.cal)
    assert steady > 0 and refreshes > 0  # the comparison exercised the shortcut, for requests and refreshes
    assert bare > 0 or "left out" not in name  # ... also for requests without a device


def test_a_request_from_a_new_address_inside_a_known_session_is_not_steady():
    fx, p = FeatureExtractor(), {}
    geo = {"country": "DE", "lat": 52.5, "lon": 13.4, "asn": 3320}
    base = {"type": "activity", "user": "u", "session": "s1", "ip": "81.10.20.30", "device": "d1", "geo": geo}
    for t in range(5):
        _, ctx = fx.extract(observe(dict(base, ts=t * 30.0)), p)
        fx.learn_ctx(ctx)
    _, ctx = fx.extract(observe(dict(base, ts=200.0)), p)
    assert ctx.steady
    x, ctx = fx.extract(observe(dict(base, ts=230.0, ip="203.0.113.9")), p)
    assert not ctx.steady and x["session_ip_change"] == 1.0 and x["new_ip"] > 0.0
    x, ctx = fx.extract(observe(dict(base, ts=230.0, device="d2")), p)
    assert not ctx.steady and x["session_device_change"] == 1.0


def test_without_a_device_a_located_request_without_its_network_is_measured_as_travel():
    """No device ties such a request to its session's place, and no known network says it is
    not a journey: the speed from the user's last place is computed, as the full path does."""
    fx, p = FeatureExtractor(), {}
    de = {"country": "DE", "lat": 52.5, "lon": 13.4, "asn": 3320}
    us = {"country": "US", "lat": 40.7, "lon": -74.0, "asn": 7922}
    a = {"type": "activity", "user": "u", "session": "s1", "ip": "81.10.20.30", "geo": de}
    for t in range(5):
        _, ctx = fx.extract(observe(dict(a, ts=t * 30.0)), p)
        fx.learn_ctx(ctx)
    _, ctx = fx.extract(observe(dict(a, ts=200.0)), p)
    assert ctx.steady  # no device at all: the session's known address and network suffice
    fx.learn_ctx(ctx)
    b = {"type": "login", "user": "u", "session": "s2", "ip": "23.1.2.3", "geo": us, "ts": 230.0}
    _, ctx = fx.extract(observe(b), p)
    fx.learn_ctx(ctx)
    x, ctx = fx.extract(observe(dict(a, ts=260.0, geo={"lat": 52.5, "lon": 13.4})), p)
    full = FeatureExtractor()
    full._steady = lambda ctx: False
    y, _ = full.extract(observe(dict(a, ts=260.0, geo={"lat": 52.5, "lon": 13.4})), copy.deepcopy(p))
    assert not ctx.steady and x == y and x["geo_kmh"] > 900.0


def test_a_steady_refresh_long_after_the_last_request_still_shows_the_idling():
    """A refresh from the session's own context takes the shortcut, and what it can show (how
    long nobody used the session) is still measured and still counts as evidence."""
    sc, p = AdaptiveScorer(warmup=0), {}
    geo = {"country": "DE", "lat": 52.5, "lon": 13.4, "asn": 3320}
    base = {"user": "u", "session": "s1", "ip": "81.10.20.30", "device": "d1", "geo": geo}
    sc.process(parse_event(dict(base, type="login", ts=0.0)), p)
    for t in range(1, 6):
        sc.process(parse_event(dict(base, type="activity", ts=t * 30.0)), p)
    refresh = dict(base, type="refresh", ts=150.0 + 4 * 3600)
    x, ctx = sc.fx.extract(observe(parse_event(refresh)), copy.deepcopy(p))
    assert ctx.steady and x["unattended"] == pytest.approx(2.0)  # 4 h idle: log2(240 min / 60)
    assert "unattended" in sc.baseline.contributions(x, ctx.steady)
