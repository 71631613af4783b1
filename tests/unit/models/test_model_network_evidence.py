"""Network, pace and failure evidence: what tells a replayed token, a script or a botnet from a
user's VPN, handover, batch of exports or stale password; and the weak-evidence scale."""

from __future__ import annotations

from models.detectors import UserBaseline
from models.features import FEATURES, FeatureExtractor, observe
from models.population import Population
from models.scorer import AdaptiveScorer
from models.simulate import simulate
from streams.config import default_policy_path
from streams.engine import load_policy

DAY = 86400.0
HOME = {"ip": "81.10.20.30", "device": "laptop-1", "channel": "web",
        "geo": {"country": "DE", "lat": 52.52, "lon": 13.40, "asn": 3320}}
PROXY = {"ip": "91.64.7.8", "geo": {"country": "DE", "lat": 50.1, "lon": 8.7, "asn": 31334}}


def _ev(kind: str, ts: float, session: str, **kw) -> dict:
    ev = {"type": kind, "ts": ts, "user": "u", "session": session, **HOME}
    if kind == "activity":
        ev.update(bytes=20_000, action="read")
    ev.update(kw)
    return ev


def _habitual(fx: FeatureExtractor, days: int = 15) -> dict:
    p: dict = {}
    for d in range(days):
        t0 = d * DAY + 9 * 3600
        fx.process(_ev("login", t0, f"s{d}"), p)
        for k in range(1, 30):
            fx.process(_ev("activity", t0 + k * 60, f"s{d}"), p)
    return p


def _warm_scorer(warmup: int, users: int) -> tuple[AdaptiveScorer, list[dict], dict]:
    """A scorer that has scored 30 h of benign tuning traffic: (scorer, events, profiles)."""
    sc = AdaptiveScorer(warmup=warmup)
    events, _ = simulate(users=users, hours=30, seed=3, attack_rate=0.0)
    profiles: dict = {}
    for e in events:
        if e.get("user"):
            sc.process(e, profiles.setdefault(e["user"], {}), None)
    return sc, events, profiles


def _run(fx: FeatureExtractor, p: dict, events: list[dict]) -> list[dict]:
    out = []
    for e in events:
        x, ctx = fx.extract(observe(e), p)
        fx.learn_ctx(ctx)
        out.append(x)
    return out


def test_a_token_used_from_the_owners_network_and_a_new_one_in_turn_is_strong_evidence():
    fx = FeatureExtractor(Population())
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    xs = _run(fx, p, [_ev("login", t, "live"), _ev("activity", t + 30, "live"),
                      _ev("activity", t + 60, "live", **PROXY),      # the replay, same device id
                      _ev("activity", t + 90, "live")])             # the owner's next request
    assert xs[2]["session_new_network"] == 1.0 and xs[2]["session_alternation"] == 0.0
    assert xs[3]["session_alternation"] == 1.0
    c = UserBaseline.contributions(xs[3])
    assert UserBaseline.grade(xs[3], c, in_session=True) == "strong"


def test_a_token_used_from_two_address_ranges_in_turn_is_strong_even_on_the_owners_own_isp():
    # a residential proxy on the owner's own ISP, with the stolen browser's device id: nothing
    # but the address range differs, and only the interleaving gives the replay away
    fx = FeatureExtractor(Population())
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    proxy = {"ip": "81.10.99.7"}
    xs = _run(fx, p, [_ev("login", t, "live"), _ev("activity", t + 30, "live"),
                      _ev("activity", t + 40, "live", **proxy),     # the replay's first request
                      _ev("activity", t + 70, "live"),              # the owner's next request
                      _ev("activity", t + 95, "live", **proxy)])    # the replay again
    assert [x["session_interleaved"] for x in xs] == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert xs[2]["session_asn_change"] == 0.0 and xs[2]["session_new_network"] == 0.0
    c = UserBaseline.contributions(xs[4])
    assert UserBaseline.grade(xs[4], c, in_session=True) == "strong"
    assert "two address ranges in turn" in "; ".join(UserBaseline.explain(xs[4], c))


def test_one_move_of_address_a_shared_egress_balancing_its_ranges_and_a_dual_stack_browser_are_no_interleaving():
    pop = Population()
    fx = FeatureExtractor(pop)
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    # a laptop carried home: one move, and it stays
    moved = _run(fx, p, [_ev("login", t, "m"), _ev("activity", t + 30, "m")] +
                 [_ev("activity", t + 60 + 30 * k, "m", ip="81.10.77.9") for k in range(4)])
    assert all(x["session_interleaved"] == 0.0 for x in moved)
    # a corporate proxy that balances everyone over two ranges: both are other users' too
    for colleague in range(3):
        pop.adopt("ip", "62.1.1")
        pop.adopt("ip", "62.1.2")
    egress = _run(fx, p, [_ev("activity", t + 600 + 20 * k, "m", ip=f"62.1.{1 + k % 2}.9") for k in range(8)])
    assert all(x["session_interleaved"] == 0.0 for x in egress)
    # a dual-stack browser on the owner's ISP, its IPv4 and IPv6 addresses in turn
    v6 = "2a02:8108:1:2::5"
    dual = _run(fx, p, [_ev("activity", t + 800 + 10 * k, "m", ip=v6 if k % 2 else "81.10.20.30") for k in range(6)])
    assert all(x["session_interleaved"] == 0.0 for x in dual)
    # the same pattern between the owner's range and one nobody else uses is interleaving
    mixed = _run(fx, p, [_ev("activity", t + 900 + 20 * k, "m", ip="62.1.1.9" if k % 2 else "198.51.100.4")
                         for k in range(6)])
    assert any(x["session_interleaved"] == 1.0 for x in mixed)


def test_a_phone_handing_over_between_wifi_and_cellular_is_no_alternation():
    fx = FeatureExtractor(Population())
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    cell = {"ip": "176.3.4.5", "channel": "mobile", "device": "phone-1",
            "geo": {"country": "DE", "lat": 51.0, "lon": 10.0, "asn": 3209}}
    wifi = dict(HOME, channel="mobile", device="phone-1")
    xs = _run(fx, p, [_ev("login", t, "ph", **cell)] +
              [_ev("activity", t + 30 * k, "ph", **(wifi if k % 2 else cell)) for k in range(1, 8)])
    assert all(x["session_alternation"] == 0.0 and x["session_new_network"] == 0.0 for x in xs)
    assert all(x["session_interleaved"] == 0.0 for x in xs)


def test_one_move_to_a_vpn_provider_seen_in_several_countries_is_no_journey():
    pop = Population()
    for cc in ("NL", "US", "JP"):
        pop.locate("9009", cc)
    fx = FeatureExtractor(pop)
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    vpn = {"ip": "45.80.1.2", "geo": {"country": "JP", "lat": 35.7, "lon": 139.7, "asn": 9009}}
    xs = _run(fx, p, [_ev("login", t, "v"), _ev("activity", t + 60, "v", **vpn),
                      _ev("login", t + 3600, "v2", **vpn)])
    assert xs[1]["session_country_change"] == 0.0 and xs[1]["session_new_network"] == 0.0
    assert xs[1]["geo_kmh"] == 0.0
    assert xs[2]["geo_kmh"] == 0.0 and xs[2]["new_country"] == 0.0
    # the same move to a network seen in one country only is a journey, and an impossible one
    single = {"ip": "45.80.1.2", "geo": {"country": "SG", "lat": 1.35, "lon": 103.8, "asn": 7473}}
    x = fx.compute(observe(_ev("login", t + 7200, "v3", **single, device="other")), p)
    assert x["geo_kmh"] > 900 and x["new_country"] > 0


def test_a_far_login_from_the_users_own_device_steps_up_and_from_a_new_device_revokes():
    fx = FeatureExtractor(Population())
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    far = {"ip": "45.80.1.2", "geo": {"country": "SG", "lat": 1.35, "lon": 103.8, "asn": 7473}}
    _run(fx, p, [_ev("login", t, "here"), _ev("activity", t + 60, "here")])
    own = fx.compute(observe(_ev("login", t + 600, "far1", **far)), p)
    new = fx.compute(observe(_ev("login", t + 600, "far2", **dict(far, device="laptop-x"))), p)
    assert own["geo_kmh"] > 900 and new["geo_kmh"] > 900
    assert UserBaseline.grade(own, UserBaseline.contributions(own)) == "weak"
    assert UserBaseline.grade(new, UserBaseline.contributions(new)) == "strong"


def test_impossible_travel_from_the_users_own_device_steps_up_under_the_shipped_thresholds_and_a_trip_does_not():
    # a warm scorer whose weak-evidence scale has seen many sessions carry everyday novelty
    ad = load_policy(default_policy_path()).adaptive
    sc, events, _ = _warm_scorer(200, users=200)
    assert sc.weak_cal.n >= 50
    t = (observe(events[-1]).ts // DAY + 1) * DAY + 9 * 3600   # the traveller's usual hour
    far = {"ip": "45.80.1.2", "geo": {"country": "TR", "lat": 41.01, "lon": 28.98, "asn": 64999}}   # Istanbul

    def far_login(after_s: float) -> object:
        p: dict = {}
        for d in range(15):   # one laptop, four European offices in turn
            city = EUROPE[d % 4]
            t0 = t - (15 - d) * DAY
            sc.process(_ev("login", t0, f"s{d}", user="traveller", **city), p, None)
            for k in range(1, 20):
                sc.process(_ev("activity", t0 + k * 60, f"s{d}", user="traveller", **city), p, None)
        sc.process(_ev("login", t, "home", user="traveller"), p, None)
        sc.process(_ev("activity", t + 60, "home", user="traveller"), p, None)
        return sc.process(_ev("login", t + 60 + after_s, "far", user="traveller", **far), p, None)

    copied = far_login(2400)   # 40 min after Berlin, 1,740 km away: a copied device id, or a VPN nobody here uses
    assert copied.grade == "weak" and not copied.revocable
    assert copied.value >= ad.step_up_at, copied.evidence
    trip = far_login(DAY)     # the next day: a flight, the same novelty and no travel speed
    assert trip.grade == "weak" and trip.value < ad.step_up_at, trip.evidence


EUROPE = [{"ip": f"81.{10 + i}.20.30", "geo": {"country": c, "lat": lat, "lon": lon, "asn": asn}}
          for i, (c, lat, lon, asn) in enumerate((("DE", 52.52, 13.40, 3320), ("FR", 48.86, 2.35, 3215),
                                                   ("IT", 45.46, 9.19, 3269), ("ES", 40.42, -3.70, 3352)))]


def test_failed_logins_are_strong_only_from_other_devices_before_a_login_from_a_new_address_range():
    fx = FeatureExtractor(Population())
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    for k in range(9):   # a stale saved password, retried
        fx.learn(observe(_ev("login_failed", t + 5 * k, None)), p)
    own = fx.compute(observe(_ev("login", t + 60, "a")), p)
    assert own["failed_logins"] > 3 and own["failed_own_device"] == 1.0
    assert UserBaseline.grade(own, UserBaseline.contributions(own)) == "weak"
    for k in range(9):   # a botnet: another device for every attempt
        fx.learn(observe(_ev("login_failed", t + 3600 + 5 * k, None, device=f"bot-{k}")), p)
    owner = fx.compute(observe(_ev("login", t + 3660, "b")), p)   # the owner, from their own laptop
    assert owner["failed_logins"] > 3 and owner["failed_own_device"] == 0.0
    assert UserBaseline.grade(owner, UserBaseline.contributions(owner)) == "weak"
    laptop = fx.compute(observe(_ev("login", t + 3660, "n", device="new-laptop")), p)   # theirs, at home
    assert laptop["new_device"] > 0 and laptop["new_ip"] == 0.0
    assert UserBaseline.grade(laptop, UserBaseline.contributions(laptop)) == "weak"
    bot = fx.compute(observe(_ev("login", t + 3660, "c", device="bot-9", ip="203.0.113.50")), p)
    assert UserBaseline.grade(bot, UserBaseline.contributions(bot)) == "strong"


def test_a_volume_burst_is_strong_at_machine_pace_and_weak_at_a_persons():
    fx = FeatureExtractor(Population())
    t = 20 * DAY + 9 * 3600 + 5

    def burst(gap: float) -> str:
        p = _habitual(fx)
        grades = []
        for k in range(40):
            x, ctx = fx.extract(observe(_ev("activity", t + gap * k, "s19", bytes=20_000_000)), p)
            fx.learn_ctx(ctx)
            grades.append(UserBaseline.grade(x, UserBaseline.contributions(x), in_session=True))
        return "strong" if "strong" in grades else "weak"

    assert burst(1.5) == "strong"     # a script
    assert burst(15.0) == "weak"      # reports exported one by one


def test_weak_evidence_counts_once_per_session_on_its_own_scale():
    sc, events, profiles = _warm_scorer(100, users=40)
    weak_sessions = sc.weak_cal.n
    assert 0 < weak_sessions <= len({e.get("session") for e in events if e.get("session")})
    # a session that keeps showing its new device adds one score, not one per event
    p = profiles[events[-1]["user"]]
    t = 40 * 3600
    for k in range(20):
        sc.process(_ev("activity", t + k * 30, "new-dev", user=events[-1]["user"], device="fresh"), p, None)
    assert sc.weak_cal.n - weak_sessions <= 1


def test_tuning_generator_carries_joiners_several_devices_and_vpn_exits():
    events, _ = simulate(users=200, hours=48, seed=4, attack_rate=0.0)
    first: dict = {}
    devices: dict = {}
    vpn_countries: dict = {}
    for e in events:
        u = e.get("user")
        if not u:
            continue
        first.setdefault(u, e["ts"])
        if e.get("device"):
            devices.setdefault(u, set()).add(e["device"])
        g = e.get("geo") or {}
        if g.get("asn") in (60068, 212238, 20473):
            vpn_countries.setdefault(g["asn"], set()).add(g["country"])
    t0 = min(first.values())
    assert sum(1 for ts in first.values() if ts > t0.replace("T00", "T12")) >= 10   # joined mid-stream
    assert sum(1 for d in devices.values() if len(d) >= 3) >= 10
    assert any(len(c) >= 2 for c in vpn_countries.values())


def test_tuning_generator_replays_tokens_from_home_country_proxies_with_and_without_the_device_id():
    events, labels = simulate(users=300, hours=30, seed=4, attack_rate=0.5, attack_after=2)
    home = {}
    device = {}
    for e in events:
        if e.get("session") and e["type"] == "login":
            home.setdefault(e["user"], e["geo"]["country"])
            device[e["session"]] = e["device"]
    hijacks = [lab for lab in labels if lab["kind"] == "hijack"]
    local = [lab for lab in hijacks if lab["detail"]["country"] == home[lab["user"]]]
    copied = [lab for lab in local if lab["detail"]["device"] == device[lab["session"]]]
    assert len(hijacks) >= 20
    assert 0 < len(copied) < len(local) < len(hijacks)


def _far_login(pop: Population, asn: int) -> tuple[dict, str]:
    """A habitual Berlin user, then, a minute after their last request, a login from a new phone
    in India on network ``asn``: the features and their grade."""
    fx = FeatureExtractor(pop)
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    far = {"ip": "49.36.1.2", "device": "phone-new", "channel": "mobile",
           "geo": {"country": "IN", "lat": 19.07, "lon": 72.88, "asn": asn}}
    x = _run(fx, p, [_ev("login", t, "here"), _ev("activity", t + 60, "here"),
                     _ev("login", t + 120, "far", **far)])[2]
    return x, UserBaseline.grade(x, UserBaseline.contributions(x))


def test_impossible_travel_to_a_network_many_users_here_share_steps_up_and_does_not_revoke():
    pop = Population()
    for _ in range(12):              # a big carrier: its addresses geolocate at its hub
        pop.adopt("asn", "55836")
    x, grade = _far_login(pop, 55836)
    assert x["geo_kmh"] > 900 and x["geo_uncertain"] == 1.0
    assert grade == "weak"


def test_impossible_travel_to_a_network_two_colleagues_use_steps_up_and_to_one_only_is_strong():
    # a deployment's first hours: the corporate egress has been seen with two colleagues so far
    two, one = Population(), Population()
    for _ in range(2):
        two.adopt("asn", "64513")
    one.adopt("asn", "64513")
    x, grade = _far_login(two, 64513)
    assert x["geo_kmh"] > 900 and x["geo_uncertain"] == 1.0 and grade == "weak"
    x, grade = _far_login(one, 64513)
    assert x["geo_kmh"] > 900 and x["geo_uncertain"] == 0.0 and grade == "strong"


def test_impossible_travel_to_a_network_nobody_here_uses_is_strong():
    pop = Population()
    for _ in range(12):
        pop.adopt("asn", "55836")
    x, grade = _far_login(pop, 45609)   # the same trip to a network no colleague is on
    assert x["geo_kmh"] > 900 and x["geo_uncertain"] == 0.0
    assert grade == "strong"


def test_the_attackers_login_consumes_the_guessing_burst_and_the_owners_next_login_does_not_inherit_it():
    fx = FeatureExtractor(Population())
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    bot = {"ip": "203.0.113.50", "geo": {"country": "RU", "lat": 55.75, "lon": 37.62, "asn": 8359}}
    for k in range(9):   # a botnet guesses, then gets in
        fx.learn(observe(_ev("login_failed", t + 5 * k, None, device=f"bot-{k}", **bot)), p)
    x, ctx = fx.extract(observe(_ev("login", t + 60, "attacker", device="bot-9", **bot)), p)
    assert UserBaseline.grade(x, UserBaseline.contributions(x)) == "strong"
    fx.learn_ctx(ctx, flagged=True)   # flagged, so none of its context is learnt
    phone = {"ip": "100.64.3.4", "device": "phone-1", "channel": "mobile"}   # the owner, minutes later
    owner = fx.compute(observe(_ev("login", t + 500, "owner", **phone)), p)
    assert owner["new_ip"] > 0 and owner["failed_logins"] == 0.0
    assert UserBaseline.grade(owner, UserBaseline.contributions(owner)) == "weak"
    # without the attacker's login, the same burst is still there for the next login to carry
    q = _habitual(FeatureExtractor(Population()))
    fx2 = FeatureExtractor(Population())
    for k in range(9):
        fx2.learn(observe(_ev("login_failed", t + 5 * k, None, device=f"bot-{k}", **bot)), q)
    after = fx2.compute(observe(_ev("login", t + 500, "owner", **phone)), q)
    assert after["failed_logins"] > 2


def test_travel_and_failures_that_the_users_own_phone_explains_are_not_combined_evidence():
    x = dict.fromkeys(FEATURES, 0.0)
    x.update(geo_kmh=20_000.0, failed_logins=3.2, failed_own_device=1.0)   # no new device
    c = UserBaseline.contributions(x)
    assert set(c) == {"geo_kmh", "failed_logins"}
    assert UserBaseline.grade(x, c) == "weak"
    x.update(failed_own_device=0.0, new_ip=2.0)   # failures from elsewhere, then a login from a new range
    assert UserBaseline.grade(x, UserBaseline.contributions(x)) == "strong"


def test_a_burst_is_strong_evidence_in_the_session_that_makes_it_not_in_the_owners_other_session():
    fx = FeatureExtractor(Population())
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    _run(fx, p, [_ev("login", t, "owner"), _ev("activity", t + 30, "owner")])
    burst = [_ev("activity", t + 120 + k, "replay", bytes=40_000_000, action="export") for k in range(30)]
    xs = _run(fx, p, burst + [_ev("activity", t + 151, "owner")])
    attacker, owner = xs[-2], xs[-1]
    assert attacker["minute_share"] > 0.9 and owner["minute_share"] < 0.1
    assert UserBaseline.grade(attacker, UserBaseline.contributions(attacker), in_session=True) == "strong"
    c = UserBaseline.contributions(owner)
    assert "bytes_minute" in c  # the user's minute is still extraordinary ...
    assert UserBaseline.grade(owner, c, in_session=True) == "weak"  # ... but not this session's doing


def test_a_session_record_written_before_the_range_slots_existed_keeps_scoring_without_them():
    # a worker upgraded in place finds its users' live sessions stored with the older, shorter record
    sc, profiles = AdaptiveScorer(warmup=10), {}
    p = profiles.setdefault("u", {})
    for k in range(50):
        sc.process(_ev("activity", k * 30.0, "s1"), p, None)
    old = p["s"]["s1"]
    del old[15:]
    proxy = {"ip": "81.10.99.7"}
    scores = [sc.process(_ev("activity", 2000.0 + 20 * k, "s1", **(proxy if k % 2 else {})), p, None)
              for k in range(6)]
    assert all(s is not None and s.grade != "strong" for s in scores)   # no interleaving without its slots
    assert len(p["s"]["s1"]) == 15
    fresh = [sc.process(_ev("activity", 4000.0 + 20 * k, "s2", **(proxy if k % 2 else {})), p, None)
             for k in range(6)]
    assert len(p["s"]["s2"]) > 15 and any(s.grade == "strong" for s in fresh)


def test_a_replay_from_another_range_of_the_owners_isp_seconds_after_the_owners_request_steps_up():
    # the stolen browser's device id, a residential proxy on the owner's own ISP: nothing but the
    # address differs, and the owner is not back yet; only the pace gives the replay away
    ad = load_policy(default_policy_path()).adaptive
    sc, events, _ = _warm_scorer(200, users=200)
    t = (observe(events[-1]).ts // DAY + 1) * DAY + 9 * 3600
    p: dict = {}
    for d in range(15):
        t0 = t - (15 - d) * DAY
        sc.process(_ev("login", t0, f"s{d}"), p, None)
        for k in range(1, 30):
            sc.process(_ev("activity", t0 + k * 60, f"s{d}"), p, None)
    sc.process(_ev("login", t, "live"), p, None)
    owner = sc.process(_ev("activity", t + 60, "live"), p, None)
    replay = sc.process(_ev("activity", t + 61.5, "live", ip="81.10.99.7"), p, None)
    assert owner.value == 0.0
    assert replay.evidence.get("session_instant_move") == 1.0, (replay, sc.weak_cal.n)
    assert replay.grade == "weak" and not replay.revocable
    assert replay.value >= ad.step_up_at, replay.evidence
    assert "another address seconds after its last request" in replay.evidence["why"]


def test_a_move_of_address_after_a_pause_to_a_shared_range_or_on_a_phone_is_no_instant_move():
    pop = Population()
    fx = FeatureExtractor(pop)
    p = _habitual(fx)
    t = 20 * DAY + 9 * 3600
    for colleague in range(3):
        pop.adopt("ip", "62.1.1")   # a corporate VPN concentrator everybody here uses
    vpn = {"ip": "62.1.1.9", "geo": {"country": "DE", "lat": 52.5, "lon": 13.4, "asn": 64600}}
    cell = {"ip": "176.3.4.5", "geo": {"country": "DE", "lat": 51.0, "lon": 10.0, "asn": 3209}}
    xs = _run(fx, p, [
        _ev("login", t, "m"), _ev("activity", t + 30, "m"),
        _ev("activity", t + 45, "m", ip="81.10.77.9"),               # a laptop carried home: 15 s
        _ev("activity", t + 47, "m", **vpn),                         # the company VPN switched on
        _ev("login", t + 48, "m", ip="198.51.100.4"),                # a new authentication
        _ev("login", t + 600, "ph", channel="mobile", device="phone-1"),
        _ev("activity", t + 601, "ph", channel="mobile", device="phone-1", **cell),   # Wi-Fi to cellular
    ])
    assert [x["session_instant_move"] for x in xs] == [0.0] * len(xs)
    # the same moves seconds apart, to a range nobody else uses, off the phone: each one counts
    ys = _run(fx, p, [_ev("activity", t + 900, "m"), _ev("activity", t + 902, "m", ip="81.10.77.9"),
                      _ev("activity", t + 903, "m", **cell)])
    assert [y["session_instant_move"] for y in ys] == [0.0, 1.0, 1.0]
    # a request from the first range delivered late, after the session's newer ones
    late = _run(fx, p, [_ev("activity", t + 901, "m")])
    assert late[0]["session_ip_change"] == 1.0 and late[0]["session_instant_move"] == 0.0


def test_an_instant_move_is_weak_evidence_on_its_own():
    x = dict(dict.fromkeys(FEATURES, 0.0), minute_share=1.0, session_instant_move=1.0, session_ip_change=1.0)
    c = UserBaseline.contributions(x)
    assert c["session_instant_move"] > c["session_ip_change"]
    assert UserBaseline.grade(x, c, in_session=True) == "weak"
