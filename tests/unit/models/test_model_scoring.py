"""Scorer, detectors and calibration: warm-up, protection, snapshots, engine integration."""

from __future__ import annotations

import random

import pytest

from models.calibration import TailCalibrator
from models.detectors import FEATURES, Protected, UserBaseline, make_detector
from models.evaluate import adaptive_policy
from models.scorer import AdaptiveScorer
from models.simulate import simulate
from streams.engine import Replay, parse_event


@pytest.fixture(scope="module")
def stream():
    return simulate(users=60, hours=30, seed=3, attack_rate=0.4)


def test_calibrator_gives_no_value_before_warmup_and_a_stable_scale_after():
    cal = TailCalibrator(warmup=500, window=2000, refit_every=100)
    rng = random.Random(0)
    for _ in range(499):
        cal.learn_one(rng.expovariate(1.0))
    assert cal.value(5.0) is None
    cal.learn_one(1.0)
    v_mid, v_high = cal.value(2.0), cal.value(12.0)
    assert 0.0 < v_mid < v_high <= 1.0
    # shifting traffic: twice the raw scale, same calibrated meaning
    cal2 = TailCalibrator(warmup=500, window=2000, refit_every=100)
    for _ in range(3000):
        cal2.learn_one(2 * rng.expovariate(1.0))
    assert abs(cal2.value(4.0) - cal.value(2.0)) < 0.06


@pytest.mark.parametrize("negatives", [False, True])
def test_calibrator_ranks_a_window_of_mostly_zeros_as_a_full_sort_would(negatives):
    # the refit sorts only the non-zero scores behind the block of zeros: the exceedance of every
    # score must be what ranking the whole window gives, negative scores (another detector) too
    rng = random.Random(4)
    cal = TailCalibrator(warmup=50, window=400, refit_every=40)
    for _ in range(1000):
        r = rng.random()
        cal.learn_one(0.0 if r < 0.8 else -rng.random() if negatives and r < 0.85 else rng.expovariate(1.0))
    ranked = sorted(cal.buf[cal.pos:] + cal.buf[:cal.pos])
    n = len(ranked)
    assert cal._u > 0.3  # every score below is inside the empirical bulk
    for x in (-0.7, -1e-9, 0.0, 1e-9, 0.3):
        assert cal.exceedance(x) == max(sum(v >= x for v in ranked) / n, cal._p_u)

def test_scorer_returns_nothing_during_warmup(stream):
    events, _ = stream
    sc = AdaptiveScorer(warmup=300)
    profiles: dict = {}
    out = [sc.process(e, profiles.setdefault(e["user"], {}), None) for e in events[:299] if e.get("user")]
    assert all(s is None for s in out)


def test_engine_makes_no_adaptive_decision_before_warmup(stream):
    events, _ = stream
    replay = Replay(adaptive_policy(None, step_up_at=0.01, revoke_at=0.02), scorer=AdaptiveScorer(warmup=10**9))
    outs = [o for e in events for o in replay.feed(parse_event(e))]
    assert not [o for o in outs if o.kind == "decision" and o.value["reason"] == "anomaly"]


class _Spy:
    """Wraps a detector and counts what it learnt."""

    def __init__(self, inner):
        self.inner, self.learnt = inner, []

    def learn_one(self, x):
        self.learnt.append(x)
        self.inner.learn_one(x)

    def score_one(self, x):
        return self.inner.score_one(x)


@pytest.mark.parametrize("name", ["sad"])
def test_protected_detector_does_not_learn_from_flagged_events(name):
    spy = _Spy(make_detector(name, seed=1))
    det = Protected(spy, TailCalibrator(warmup=100, refit_every=50), protect_at=0.5)
    rng = random.Random(1)
    quiet = dict.fromkeys(FEATURES, 0.0)
    values = [det.process_one(dict(quiet, new_ip=rng.random() * 0.2, rate_ratio=rng.random() * 0.2))[1]
              for _ in range(600)]
    odd = dict(quiet, new_ip=7.0, rate_ratio=9.0, session_device_change=1.0, geo_kmh=1e5)
    det.protect_at = min(0.5, max(v for v in values if v is not None) + 0.01) if name == "hst" else 0.5
    n = len(spy.learnt)
    raw, value = det.process_one(odd)
    assert value >= det.protect_at
    assert len(spy.learnt) == n and odd not in spy.learnt


def test_scorer_does_not_learn_flagged_events_into_calibration(stream):
    events, _ = stream
    sc = AdaptiveScorer(warmup=200)
    profiles: dict = {}
    for e in events[:3000]:
        if e.get("user") and e["type"] != "alert":
            sc.process(e, profiles.setdefault(e["user"], {}), None)
    n = sc.cal.n
    user = events[2999]["user"] or "u00001"
    s = sc.process({"type": "activity", "ts": events[2999]["ts"], "user": user, "session": "hijacked", "ip": "203.0.113.1",
                    "device": "evil", "geo": {"country": "KP", "lat": 39.0, "lon": 125.7, "asn": 131279},
                    "bytes": 90_000_000, "privileged": True}, profiles.setdefault(user, {}), None)
    assert s is not None and s.value >= sc.protect_at
    assert sc.cal.n == n and sc.flagged >= 1


def test_snapshot_restore_gives_identical_scores(stream):
    events, _ = stream
    a = AdaptiveScorer(detector="baseline+hst", warmup=200)
    pa: dict = {}
    half = len(events) // 2
    for e in events[:half]:
        if e.get("user"):
            a.process(e, pa.setdefault(e["user"], {}), None)
    b = AdaptiveScorer.from_snapshot(a.snapshot())
    pb = {k: __import__("copy").deepcopy(v) for k, v in pa.items()}
    for e in events[half:]:
        if e.get("user"):
            sa = a.process(e, pa.setdefault(e["user"], {}), None)
            sb = b.process(e, pb.setdefault(e["user"], {}), None)
            assert (sa is None and sb is None) or (sa.value, sa.raw, sa.evidence) == (sb.value, sb.raw, sb.evidence)


def test_snapshot_from_another_river_version_is_refused():
    import pickle

    state = pickle.loads(AdaptiveScorer().snapshot())
    state["river"] = "0.0.1"
    with pytest.raises(ValueError, match="river"):
        AdaptiveScorer().restore(pickle.dumps(state))


def test_evidence_names_top_contributing_features():
    ub = UserBaseline()
    x = dict(dict.fromkeys(FEATURES, 0.0), session_device_change=1.0, new_country=2.0, hour_surprise=1.2)
    c = ub.contributions(x)
    assert max(c, key=c.get) == "session_device_change"
    assert set(c) == {"session_device_change", "new_country", "hour_surprise"}
