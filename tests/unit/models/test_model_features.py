"""Features compute what they claim on hand-built event sequences."""

from __future__ import annotations

import orjson

from models.features import FEATURES, FeatureExtractor, observe

BERLIN = {"country": "DE", "lat": 52.52, "lon": 13.40, "asn": 3320}
SAO_PAULO = {"country": "BR", "lat": -23.55, "lon": -46.63, "asn": 28573}
DAY = 86400.0


def _habitual_user(fx: FeatureExtractor, days: int = 15) -> dict:
    """A user with one 9:00-10:00 session a day from one laptop in Berlin, ~1 request/minute."""
    profile: dict = {}
    for d in range(days):
        t0 = d * DAY + 9 * 3600
        sid = f"s{d}"
        fx.process({"type": "login", "ts": t0, "user": "u", "session": sid, "ip": "10.0.0.1", "device": "laptop",
                    "geo": BERLIN}, profile)
        for k in range(1, 60):
            fx.process({"type": "activity", "ts": t0 + k * 60, "user": "u", "session": sid, "ip": "10.0.0.1",
                        "device": "laptop", "geo": BERLIN, "bytes": 20_000, "action": "read"}, profile)
    return profile


def _activity(ts: float, **kw) -> dict:
    ev = {"type": "activity", "ts": ts, "user": "u", "session": "s14", "ip": "10.0.0.1", "device": "laptop",
          "geo": BERLIN, "bytes": 20_000, "action": "read"}
    ev.update(kw)
    return ev


def test_known_context_scores_zero_on_every_feature():
    fx = FeatureExtractor()
    p = _habitual_user(fx)
    x = fx.compute(observe(_activity(14 * DAY + 9 * 3600 + 30)), p)
    assert set(x) == set(FEATURES)
    assert x["minute_share"] == 1.0  # not evidence: this session sent every request of its minute
    assert all(v == 0.0 for k, v in x.items() if k != "minute_share"), x


def test_token_replayed_from_another_country_and_device_shows_session_drift_and_novelty():
    fx = FeatureExtractor()
    p = _habitual_user(fx)
    x = fx.compute(observe(_activity(14 * DAY + 9 * 3600 + 3599, ip="203.0.113.9", device="evil",
                                     geo=SAO_PAULO)), p)
    assert x["session_ip_change"] == x["session_device_change"] == x["session_country_change"] == 1.0
    assert min(x["new_country"], x["new_device"], x["new_ip"], x["new_asn"]) > 2.0  # -log(2/17)
    assert x["geo_kmh"] > 100_000  # ~10,000 km in one minute


def test_geo_velocity_is_distance_over_elapsed_time():
    fx = FeatureExtractor()
    p = _habitual_user(fx, days=2)
    last = 1 * DAY + 9 * 3600 + 59 * 60
    x = fx.compute(observe(_activity(last + 10 * 3600, session="new", geo=SAO_PAULO)), p)
    assert 900 < x["geo_kmh"] < 1100  # Berlin-Sao Paulo is ~10,000 km; 10 h is a plausible flight


def test_mobile_ip_change_alone_is_not_a_device_change():
    fx = FeatureExtractor()
    p = _habitual_user(fx, days=3)
    x = fx.compute(observe(_activity(2 * DAY + 9 * 3600 + 3599, session="s2", ip="10.9.9.9")), p)
    assert x["session_ip_change"] == 1.0
    assert x["session_device_change"] == x["session_country_change"] == 0.0


def test_request_burst_and_bytes_burst_exceed_the_users_baseline():
    fx = FeatureExtractor()
    p = _habitual_user(fx)
    t = 14 * DAY + 9 * 3600 + 3599
    first = fx.process(_activity(t, bytes=30_000_000, action="export"), p)
    assert first["bytes_z"] > 3  # one 30 MB export vs ~20 kB per request
    for i in range(1, 30):
        x = fx.process(_activity(t + i, bytes=30_000_000, action="export"), p)
    assert x["rate_ratio"] > 3  # 30 in a minute vs ~1
    assert x["bytes_minute"] > 14  # log2: 900 MB in a minute vs ~30 kB


def test_privileged_action_is_surprising_for_a_user_who_never_does_them():
    fx = FeatureExtractor()
    p = _habitual_user(fx)
    x = fx.compute(observe(_activity(14 * DAY + 9 * 3600 + 3599, privileged=True)), p)
    assert x["privileged_surprise"] > 4


def test_failed_login_burst_shows_on_the_login_that_follows():
    fx = FeatureExtractor()
    p = _habitual_user(fx)
    t = 14 * DAY + 12 * 3600
    for i in range(25):
        fx.process({"type": "login_failed", "ts": t + i * 4, "user": "u", "ip": f"45.0.0.{i}"}, p)
    x = fx.compute(observe({"type": "login", "ts": t + 120, "user": "u", "session": "x", "ip": "45.0.0.1",
                            "device": "d", "geo": BERLIN}), p)
    assert x["failed_logins"] > 4
    quiet = fx.compute(observe({"type": "login", "ts": t + 8 * 3600, "user": "u", "session": "y",
                                "ip": "10.0.0.1", "device": "laptop", "geo": BERLIN}), p)
    assert quiet["failed_logins"] == 0.0


def test_hour_of_day_outside_the_habit_is_surprising():
    fx = FeatureExtractor()
    p = _habitual_user(fx)
    assert fx.compute(observe(_activity(14 * DAY + 3 * 3600)), p)["hour_surprise"] > 2
    assert fx.compute(observe(_activity(14 * DAY + 9 * 3600 + 1800)), p)["hour_surprise"] == 0.0


def test_background_refresh_long_after_the_last_activity_is_unattended():
    fx = FeatureExtractor()
    p = _habitual_user(fx)
    last = 14 * DAY + 9 * 3600 + 59 * 60
    x = fx.compute(observe({"type": "refresh", "ts": last + 3 * 3600, "user": "u", "session": "s14",
                            "automatic": True}), p)
    assert x["unattended"] > 1.5


def test_flagged_events_are_not_learnt_into_the_profile():
    fx = FeatureExtractor()
    p = _habitual_user(fx)
    ev = _activity(14 * DAY + 9 * 3600 + 3599, session="s15", device="evil", geo=SAO_PAULO, ip="203.0.113.9")
    fx.process(ev, p, flagged=True)
    x = fx.compute(observe(dict(ev, ts=ev["ts"] + 30)), p)
    assert x["new_device"] > 2.0 and x["new_country"] > 2.0


def test_profile_is_json_and_bounded():
    fx = FeatureExtractor()
    p: dict = {}
    for i in range(3000):  # a new IP, device and session every event: the worst case
        fx.process({"type": "login", "ts": float(i * 60), "user": "u", "session": f"s{i}", "ip": f"1.2.{i % 250}.{i}",
                    "device": f"d{i}", "geo": {"country": f"C{i % 50}", "lat": 0.0, "lon": 0.0, "asn": i}}, p)
    blob = orjson.dumps(p)
    assert orjson.loads(blob) == p
    assert len(blob) < 2048, len(blob)
