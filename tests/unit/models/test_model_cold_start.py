"""Cold start, confirmation, graded response and the one scorer every entry point uses."""

from __future__ import annotations

import sys

import orjson
import pytest
from click.testing import CliRunner

from models.evaluate import adaptive_policy, replay_engine, report
from models.features import FeatureExtractor, observe
from models.scorer import AdaptiveScorer, scorer_for
from models.simulate import simulate
from models.simulate_heldout import HELDOUT_KINDS, simulate_heldout
from streams.engine import Replay, loads_policy, parse_event

BERLIN = {"country": "DE", "lat": 52.52, "lon": 13.40, "asn": 3320}
DAY = 86400.0


def _ev(kind: str, ts: float, user: str, session: str, **kw) -> dict:
    ev = {"type": kind, "ts": ts, "user": user, "session": session, "ip": "81.10.20.30", "device": "laptop-1",
          "geo": BERLIN}
    if kind == "activity":
        ev.update(bytes=20_000, action="read")
    ev.update(kw)
    return ev


def _crowd(sc: AdaptiveScorer, profiles: dict, users: int = 40, days: int = 3) -> float:
    """Established users (one office egress each day), so the calibrator and the population priors
    are warm; returns the time after their traffic."""
    t_end = 0.0
    for d in range(days):
        for u in range(users):
            t0 = d * DAY + 8 * 3600 + u * 60
            sid = f"c{u}-{d}"
            p = profiles.setdefault(f"crowd{u}", {})
            ip, dev = f"62.{u}.1.{d % 3 + 1}", f"dev-{u}"
            sc.process(_ev("login", t0, f"crowd{u}", sid, ip=ip, device=dev), p, None)
            for k in range(1, 25):
                sc.process(_ev("activity", t0 + k * 40, f"crowd{u}", sid, ip=ip, device=dev), p, None)
            t_end = max(t_end, t0 + 25 * 40)
    return t_end


def test_a_new_users_second_session_from_the_context_of_the_first_is_not_flagged():
    sc, profiles = AdaptiveScorer(warmup=200), {}
    t = _crowd(sc, profiles) + 3600  # the calibrator is long past its warm-up
    new: dict = {}
    scores = []
    for s, t0 in (("first", t), ("second", t + 2 * 3600)):
        scores.append(sc.process(_ev("login", t0, "newcomer", s), new, None))
        for k in range(1, 20):
            scores.append(sc.process(_ev("activity", t0 + k * 30, "newcomer", s), new, None))
    assert all(x is not None and x.value == 0.0 for x in scores), [x.evidence for x in scores if x and x.value]
    # and its context was learnt: a later session from it has nothing new to say
    x = FeatureExtractor().compute(observe(_ev("login", t + 5 * 3600, "newcomer", "third")), new)
    assert x["new_ip"] == x["new_device"] == x["new_country"] == x["new_asn"] == 0.0


def test_first_seen_values_are_not_evidence_but_a_known_users_new_device_is():
    fx = FeatureExtractor()
    first = fx.compute(observe(_ev("login", 0, "u", "s0")), {})
    assert first["new_device"] == first["new_country"] == first["new_ip"] == 0.0
    p: dict = {}
    for i in range(20):
        fx.process(_ev("login", i * DAY, "u", f"s{i}"), p)
    assert fx.compute(observe(_ev("login", 21 * DAY, "u", "x", device="other")), p)["new_device"] > 2.0


POLICY = '[defaults]\nidle = "30m"\nabsolute = "12h"\n[adaptive]\nenabled = true\nstep_up_at = 0.5\nrevoke_at = 0.95\n'


def _feed(replay: Replay, events: list[dict]) -> list:
    return [o for e in events for o in replay.feed(parse_event(e))]


def _anomaly(outs: list) -> list[tuple[str, str]]:
    return [(o.value["action"], o.value["session"]) for o in outs
            if o.kind == "decision" and o.value["reason"] == "anomaly"]


def test_a_user_stepped_up_once_and_confirmed_is_not_stepped_up_again_for_the_same_context():
    policy = loads_policy(POLICY)
    sc = AdaptiveScorer(warmup=200)
    replay = Replay(policy, scorer=sc)
    crowd = []
    for d in range(3):
        for u in range(30):
            t0 = d * DAY + 8 * 3600 + u * 60
            crowd.append(_ev("login", t0, f"c{u}", f"c{u}-{d}", ip=f"62.{u}.1.1", device=f"dev-{u}"))
            crowd += [_ev("activity", t0 + k * 40, f"c{u}", f"c{u}-{d}", ip=f"62.{u}.1.1", device=f"dev-{u}")
                      for k in range(1, 25)]
        t0 = d * DAY + 9 * 3600  # our user: one laptop at home, every day
        crowd.append(_ev("login", t0, "alice", f"a{d}"))
        crowd += [_ev("activity", t0 + k * 40, "alice", f"a{d}") for k in range(1, 25)]
    crowd.sort(key=lambda e: e["ts"])
    assert not _anomaly(_feed(replay, crowd))
    phone = {"ip": "176.3.4.5", "device": "phone-1", "geo": dict(BERLIN, asn=3209)}
    t = 3 * DAY + 10 * 3600
    first = _feed(replay, [_ev("login", t, "alice", "p1", **phone)]
                  + [_ev("activity", t + k * 30, "alice", "p1", **phone) for k in range(1, 5)])
    assert _anomaly(first) == [("step_up", "p1")]
    step = next(o.value for o in first if o.kind == "decision" and o.value["reason"] == "anomaly")
    assert step["evidence"]["grade"] == "weak" and "a device this user has not used" in step["evidence"]["why"]
    _feed(replay, [_ev("reauth", t + 200, "alice", "p1", **phone)])  # the user passed the step-up
    t2 = t + DAY
    again = _feed(replay, [_ev("login", t2, "alice", "p2", **phone)]
                  + [_ev("activity", t2 + k * 30, "alice", "p2", **phone) for k in range(1, 10)])
    assert _anomaly(again) == []


def test_a_login_inside_a_stepped_up_session_confirms_it():
    sc, p = AdaptiveScorer(warmup=0), {}
    sc.process(_ev("login", 0, "u", "s1"), p, None)
    sc.stepped_up({"session": "s1"}, p)
    assert p["s"]["s1"][7] == 1
    n = sc.confirmed
    sc.process(_ev("login", 60, "u", "s1"), p, None)
    assert sc.confirmed == n + 1 and p["s"]["s1"][7] == 0


def test_a_weak_context_that_recurs_in_another_session_an_hour_later_is_learnt():
    fx, p = FeatureExtractor(), {}
    for i in range(10):
        fx.process(_ev("login", i * DAY, "u", f"s{i}"), p)
    trip = {"ip": "203.0.113.7", "geo": {"country": "PT", "lat": 38.7, "lon": -9.1, "asn": 2860}}
    # held back in its first session, and still new later in that session and 20 minutes on
    for ts, sid in ((10 * DAY, "t1"), (10 * DAY + 600, "t1"), (10 * DAY + 1200, "t1b")):
        obs = observe(_ev("login", ts, "u", sid, **trip))
        x, ctx = fx.extract(obs, p)
        assert x["new_country"] > 0
        fx.learn_ctx(ctx, flagged=True)
        fx.hold(ctx, x)
    # back in another session two hours on: recognised as the user's (no step-up) and learnt
    obs = observe(_ev("login", 10 * DAY + 7200, "u", "t2", **trip))
    x, ctx = fx.extract(obs, p)
    assert x["new_country"] == x["new_asn"] == x["new_ip"] == 0.0
    fx.learn_ctx(ctx)
    assert "c:PT" not in p.get("p", {}) or fx.novelty[2].known(ctx, "PT")
    x = fx.compute(observe(_ev("login", 10 * DAY + 9000, "u", "t3", **trip)), p)
    assert x["new_country"] == x["new_asn"] == x["new_ip"] == 0.0
    assert fx.novelty[2].known(ctx, "PT")


class _Weak:
    """Always the top score, but weak evidence."""

    def process(self, event, profile, session_state):
        from models.scorer import Score

        return Score(1.0, 9.0, {"grade": "weak"}, revocable=False, grade="weak")


def test_weak_evidence_steps_up_and_never_revokes():
    replay = Replay(loads_policy(POLICY), scorer=_Weak())
    outs = _feed(replay, [_ev("login", 0, "u", "s"), _ev("activity", 10, "u", "s"), _ev("activity", 20, "u", "s")])
    assert _anomaly(outs) == [("step_up", "s")]


@pytest.fixture(scope="module")
def hijack_stream(tmp_path_factory):
    events, labels = simulate(users=60, hours=30, seed=3, attack_rate=0.4)
    path = tmp_path_factory.mktemp("hj") / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path, labels


def test_lapse_replay_with_adaptive_enabled_scores_and_acts_on_a_hijack(hijack_stream, tmp_path):
    from streams.cli.replay import replay_cmd

    path, labels = hijack_stream
    (tmp_path / "p.toml").write_text('[defaults]\nidle = "30m"\nabsolute = "12h"\n[adaptive]\nenabled = true\n')
    r = CliRunner().invoke(replay_cmd, [str(path), "--policy", str(tmp_path / "p.toml"), "--drain"])
    assert r.exit_code == 0, r.output
    assert "adaptive scoring on" in r.stderr
    decisions = [orjson.loads(x) for x in r.stdout.splitlines()]
    hijacked = {lab["session"] for lab in labels if lab["kind"] == "hijack"}
    assert hijacked
    acted = {d["session"] for d in decisions if d["reason"] == "anomaly"} & hijacked
    assert acted == hijacked
    why = next(d["evidence"]["why"] for d in decisions if d["session"] in acted and d["reason"] == "anomaly")
    assert "another device" in why or "impossible travel" in why


def test_replay_refuses_adaptive_when_the_model_cannot_load(tmp_path, monkeypatch):
    from streams.cli.replay import replay_cmd

    monkeypatch.setitem(sys.modules, "models.scorer", None)  # import fails as if models/ were absent
    (tmp_path / "p.toml").write_text("[adaptive]\nenabled = true\n")
    r = CliRunner().invoke(replay_cmd, ["-", "--policy", str(tmp_path / "p.toml")], input=b"")
    assert r.exit_code != 0 and "[adaptive] enabled = true but the adaptive model cannot be loaded" in r.output


def test_every_entry_point_builds_the_same_scorer():
    from streams.service.worker import make_scorer

    on, off = loads_policy("[adaptive]\nenabled = true"), loads_policy("")
    assert isinstance(make_scorer(on), AdaptiveScorer) and make_scorer(off) is None
    assert isinstance(scorer_for(on), AdaptiveScorer) and scorer_for(off) is None
    with pytest.raises(ValueError, match="needs a scorer"):
        replay_engine([], adaptive_policy(None), None)


def test_heldout_generator_is_deterministic_canonical_and_labelled():
    events, labels = simulate_heldout(users=120, days=2, seed=5, attack_rate=0.3)
    assert (events, labels) == simulate_heldout(users=120, days=2, seed=5, attack_rate=0.3)
    parsed = [parse_event(e) for e in events]
    assert all(a.ts <= b.ts for a, b in zip(parsed, parsed[1:]))
    assert {lab["kind"] for lab in labels} == set(HELDOUT_KINDS)
    sessions = {e.session for e in parsed}
    assert all(lab["session"] in sessions for lab in labels)
    assert min(lab["start_ts"] for lab in labels) - parsed[0].ts < 86400  # attacks on a cold deployment
    first_seen: dict = {}
    for e in parsed:
        if e.user:
            first_seen.setdefault(e.user, e.ts)
    assert sum(1 for t in first_seen.values() if t - parsed[0].ts > 6 * 3600) >= 10  # users join mid-stream


def test_report_splits_benign_actions_by_tenure_and_times_within_60s_and_2m():
    events, labels = simulate_heldout(users=80, days=2, seed=9, attack_rate=0.3)
    policy = adaptive_policy(None)
    rep = report(replay_engine(events, policy, scorer_for(policy)), labels)
    assert set(rep["by_tenure"]) == {"first_day", "later"}
    assert sum(t["sessions"] for t in rep["by_tenure"].values()) == rep["benign_sessions"]
    for k in rep["kinds"].values():
        assert k["within_60s"] <= k["within_2m"] <= k["detected"]
