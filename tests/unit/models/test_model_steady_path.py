"""The steady-session shortcut of ``FeatureExtractor`` changes nothing but the cost.

Most events are a session's next request from where it already is; ``FeatureExtractor.extract``
computes only what such an event can show. These tests replay whole streams of both generators
twice, once with the shortcut and once with it switched off, and compare every score and every
profile after every event.
"""

from __future__ import annotations

import copy
import pickle
from collections import defaultdict

import pytest

from models.features import FeatureExtractor, observe
from models.scorer import AdaptiveScorer
from models.simulate import simulate
from models.simulate_heldout import simulate_heldout
from streams.engine import parse_event


def _streams():
    tuning, _ = simulate(users=120, hours=30, seed=21, attack_rate=0.3, attack_after=3 * 3600)
    heldout, _ = simulate_heldout(users=120, days=1, seed=22, attack_rate=0.3)
    return {"tuning": tuning, "heldout": heldout}


@pytest.fixture(scope="module")
def streams():
    return _streams()


@pytest.mark.parametrize("name", ["tuning", "heldout"])
def test_steady_shortcut_gives_the_same_scores_profiles_and_priors(streams, name):
    fast, full = AdaptiveScorer(warmup=300), AdaptiveScorer(warmup=300)
    full.fx._steady = lambda ctx: False  # every event through every feature
    pf, pu = defaultdict(dict), defaultdict(dict)
    steady = 0
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
    assert pickle.dumps(fast.population) == pickle.dumps(full.population)
    assert pickle.dumps(fast.cal) == pickle.dumps(full.cal)
    assert steady > 0  # the comparison exercised the shortcut


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
