"""Per-event risk features from a small, bounded, JSON-serialisable per-user profile.

Every concept is one class with two methods:

``compute(ctx, out)``
    reads the profile (never writes it) and puts one or more named floats into ``out``;
``learn(ctx)``
    folds the event into the profile.

Computing and learning are separate so that the scorer can follow River's
``protect_anomaly_detector`` idea: an event that the model flags is *not* learnt, so an attacker
cannot teach the profile that their country, device or download volume is normal.

The profile is a plain ``dict`` of short keys holding numbers, strings and small lists/dicts; each
concept bounds its own part (LRU caps, decayed counters), so a profile stays well under 2 KiB and
can live in the engine's changelog-backed per-user state.

A feature value of ``0.0`` always means "nothing unusual"; larger means riskier.

Examples
--------
>>> fx = FeatureExtractor()
>>> profile = {}
>>> base = {"type": "login", "user": "u1", "session": "s1", "ip": "10.0.0.1",
...         "device": "d1", "geo": {"country": "DE", "lat": 52.5, "lon": 13.4, "asn": 3320}}
>>> for i in range(20):   # twenty ordinary sessions from Berlin, one device
...     _ = fx.process(dict(base, session=f"s{i}", ts=1_700_000_000 + i * 86_400), profile)
>>> hijack = dict(base, type="activity", session="s19", ts=1_700_000_000 + 19 * 86_400 + 60,
...               ip="203.0.113.9", device="d9",
...               geo={"country": "BR", "lat": -23.5, "lon": -46.6, "asn": 28573})
>>> f = fx.compute(observe(hijack), profile)
>>> f["session_device_change"], f["session_country_change"], f["geo_kmh"] > 100_000
(1.0, 1.0, True)
>>> round(f["new_country"], 2)   # 19 sessions since the first, none new: -log((0 + 2 * 0.04) / (19 + 2))
5.57
>>> fx.compute(observe(dict(base, session="n", user="u2", ts=0)), {})["new_country"]   # a new user: cold start
0.0
"""

from __future__ import annotations

import math
import zlib
from datetime import datetime
from typing import Any

from models.population import Population
from streams.engine.events import parse_ts

__all__ = [
    "FEATURES",
    "Obs",
    "Ctx",
    "observe",
    "haversine_km",
    "ip_range",
    "Novelty",
    "GeoVelocity",
    "SessionDrift",
    "RequestRate",
    "PrivilegedRate",
    "BytesOut",
    "FailedLoginBurst",
    "HourOfDay",
    "Unattended",
    "FeatureExtractor",
]

_LN2 = math.log(2.0)
RECUR_S = 3600.0  # a held-back value that comes back in another session this much later is the user's
WARM = 5  # closed minutes / byte-carrying events a rate or volume baseline needs before it speaks
# The per-session record (``profile["s"][session]``) is a list, as the engine's per-user state
# stores it; these name its slots. A record written before a slot existed is shorter, so code
# that reads a later slot checks the length first.
S_IP, S_DEVICE, S_COUNTRY, S_ASN = 0, 1, 2, 3  # the session's context (the address as its range)
S_FIRST, S_ACTIVE, S_LAST = 4, 5, 6  # ts of its first event, of its last activity, of its last event
S_STEPPED_UP = 7  # 1 once the engine stepped the session up (a login inside it then confirms it)
S_NET, S_SWITCH_TS, S_LEFT_NET, S_NEW_NET = 8, 9, 10, 11  # its last network, when it last switched,
# the network it left then, whether it moved to a network new to the user (SessionDrift)
S_WEAK = 12  # the raw score of its first weak evidence (0.0: none yet)
S_MINUTE, S_MINUTE_N = 13, 14  # the minute of its last request and its requests in that minute
S_RANGE, S_RANGE_LEFT, S_RANGE_SW, S_RANGE_SW0 = 15, 16, 17, 18  # its last address range, the range it
# left at its last change of range, when that was and when the change before it was (SessionDrift)
_SESS_SLOT = {"ip": S_IP, "device": S_DEVICE, "country": S_COUNTRY, "asn": S_ASN}
IDENTITY = frozenset({"login", "refresh", "reauth", "logout", "login_failed"})


# ----------------------------------------------------------------------------------------------
# event access: works on the engine's Event (attributes) and on canonical dicts alike
# ----------------------------------------------------------------------------------------------
def _ts(value: Any) -> float:
    """Epoch seconds from a number, a datetime or an RFC 3339 string.

    >>> _ts(5), _ts("1970-01-01T00:01:00Z")
    (5.0, 60.0)
    """
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return parse_ts(value)  # the project's one RFC 3339 reader (a zone is required)
    raise TypeError(f"cannot read a timestamp from {value!r}")


class Obs:
    """The fields of one event that the features read (a flat, typed view).

    Built with :func:`observe`; the features never look at the event itself, so the engine's
    ``Event`` class and canonical dicts both work.
    """

    __slots__ = ("type", "ts", "user", "session", "ip", "device", "country", "lat", "lon", "asn",
                 "bytes", "privileged", "action", "channel", "ipr")

    def __init__(self, type: str, ts: float, user: str | None = None, session: str | None = None,
                 ip: str | None = None, device: str | None = None, country: str | None = None,
                 lat: float | None = None, lon: float | None = None, asn: Any = None,
                 bytes: float = 0.0, privileged: bool = False, action: str | None = None,
                 channel: str | None = None) -> None:
        self.type, self.ts, self.user, self.session = type, ts, user, session
        self.ip, self.device, self.country, self.lat, self.lon = ip, device, country, lat, lon
        # a network is a key here, never a number: one conversion instead of one per feature
        self.asn = asn if asn is None or isinstance(asn, str) else str(asn)
        self.bytes, self.privileged, self.action, self.channel = bytes, privileged, action, channel
        # the address's range (what novelty and drift compare)
        self.ipr = (_RANGES.get(ip) or _remember_range(ip)) if isinstance(ip, str) and ip else None


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def observe(event: Any) -> Obs:
    """Flatten an event (engine ``Event`` or canonical dict) into an :class:`Obs`.

    >>> o = observe({"type": "activity", "ts": 10, "user": "u", "session": "s", "bytes": 512,
    ...              "geo": {"country": "FR", "lat": 48.9, "lon": 2.35, "asn": 3215}})
    >>> (o.type, o.ts, o.country, o.asn, o.bytes, o.privileged)
    ('activity', 10.0, 'FR', '3215', 512.0, False)
    """
    if not isinstance(event, dict):
        ts = event.ts
        geo = event.geo
        if geo:
            country, lat, lon, asn = geo.get("country"), geo.get("lat"), geo.get("lon"), geo.get("asn")
        else:
            country = lat = lon = asn = None
        return Obs(event.type, ts if type(ts) is float else _ts(ts), event.user, event.session, event.ip,
                   event.device, country, lat, lon, asn, float(event.bytes or 0.0), bool(event.privileged),
                   event.action, event.channel)
    geo = _field(event, "geo")
    country = lat = lon = asn = None
    if geo is not None:
        country, lat, lon, asn = (_field(geo, "country"), _field(geo, "lat"), _field(geo, "lon"),
                                  _field(geo, "asn"))
    etype = _field(event, "type")
    if etype is None:
        etype = _field(event, "kind")
    return Obs(
        type=str(etype),
        ts=_ts(_field(event, "ts")),
        user=_field(event, "user"),
        session=_field(event, "session"),
        ip=_field(event, "ip"),
        device=_field(event, "device"),
        country=country,
        lat=lat,
        lon=lon,
        asn=asn,
        bytes=float(_field(event, "bytes") or 0.0),
        privileged=bool(_field(event, "privileged")),
        action=_field(event, "action"),
        channel=_field(event, "channel"),
    )


class Ctx:
    """One event in the light of its user's profile: the observation, the profile, the
    per-session record (``None`` for an event with no session or a session not seen before) and
    the organisation's :class:`~models.population.Population` priors (``None``: none)."""

    __slots__ = ("obs", "profile", "sess", "new_session", "pop", "moved_new", "steady", "cur")

    def __init__(self, obs: Obs, profile: dict, pop: Population | None = None) -> None:
        self.obs = obs
        self.profile = profile
        self.pop = pop
        session, sessions = obs.session, profile.get("s")
        self.sess = sess = sessions.get(session) if (sessions and session) else None
        self.new_session = session is not None and sess is None
        self.moved_new = False  # this event moves its session to a network the user has not used
        self.steady = False  # a request or refresh that repeats its live session's known context
        self.cur: tuple[float, float, float] | None = None  # the current minute (_Window.current)


def _sid(session: str | None) -> int:
    """A short, stable id of a session (what :meth:`FeatureExtractor.hold` remembers)."""
    if session is None:
        return -1
    return zlib.crc32(session.encode("utf-8", "surrogatepass")) & 0xFFFFFF


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km.

    >>> round(haversine_km(52.52, 13.40, 48.86, 2.35))   # Berlin - Paris
    877
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12742.0 * math.asin(min(1.0, math.sqrt(a)))


# ----------------------------------------------------------------------------------------------
# concepts
# ----------------------------------------------------------------------------------------------
def ip_range(ip: str) -> str:
    """The range an address is remembered by: its /24 (IPv4) or /64 (IPv6).

    NAT egress pools and carrier-grade NAT hand one user many addresses of one range, so a
    range, not an address, is what a user "has used".

    >>> ip_range("198.51.100.7"), ip_range("2001:db8:1:2:3::9")
    ('198.51.100', '2001:db8:1:2')
    """
    if ":" in ip:
        return ":".join(ip.split(":")[:4])
    return ip.rpartition(".")[0] or ip


# the ranges of recently seen addresses: every event carries one, and a user's addresses repeat.
# Bounded: emptied when full, so a flood of new addresses costs one ip_range each and no memory
_RANGES: dict[str, str] = {}
_RANGES_CAP = 4096


def _remember_range(ip: str) -> str:
    if len(_RANGES) >= _RANGES_CAP:
        _RANGES.clear()
    r = _RANGES[ip] = ip_range(ip)
    return r


class Novelty:
    """A value (IP range, ASN, country, device) this user has not used recently.

    Why it signals risk: stolen credentials and tokens are used from the attacker's network,
    country and machine. How *surprising* a new value is depends on the user and on the
    organisation:

    * **cold start**: a user's first value of an attribute is not evidence (there is nothing to
      compare it with); it becomes the user's first known value;
    * **the user's own rate**: ``p(new) = (k + a r) / (n + a)``, where ``n`` counts the user's
      trials (sessions, and changes inside one) since the first, ``k`` those that brought a value
      not in the remembered set, and ``r`` the organisation's novelty rate for users of the same
      tenure (:meth:`~models.population.Population.novelty_rate`; a Beta prior of strength
      ``a``). Someone on a mobile carrier gets a new address every day, someone at a desk almost
      never; a user on their second session is often on their second device;
    * **the organisation**: the surprisal ``-log p(new)`` is scaled by ``1 - familiarity`` of the
      value (a corporate egress or a big carrier shared by many users is little evidence).

    A known value scores 0, and so does a value held back in another session at least
    ``RECUR_S`` earlier (:meth:`FeatureExtractor.hold`: it came back, so it is the user's) and a
    new country on a network the organisation sees in several countries (a VPN exit's country is
    not somewhere the user went). IP addresses are compared by range (:func:`ip_range`).

    State: ``profile[key] = {"v": {value: last_ts}, "n": int, "k": int}``, at most ``cap`` values
    (least recently used evicted; an evicted value counts as new when it returns).

    Examples
    --------
    >>> nov, p = Novelty("ip", "ip", cap=2), {}
    >>> def ev(ip, s, t):
    ...     o = Obs("login", t, "u", s, ip=ip); return Ctx(o, p)
    >>> out = {}; nov.compute(ev("1.1.1.1", "s1", 0), out); out["new_ip"]   # first ever: no evidence
    0.0
    >>> for i in range(8): nov.learn(ev("1.1.1.1", f"s{i}", i))
    >>> nov.compute(ev("1.1.1.9", "s9", 9), out); out["new_ip"]          # same /24
    0.0
    >>> nov.compute(ev("9.9.9.9", "s9", 9), out); round(out["new_ip"], 3)  # -log((0 + 2 * 0.35) / (7 + 2))
    2.554
    >>> for ip in ("2.2.2.2", "3.3.3.3", "4.4.4.4"): nov.learn(ev(ip, ip, 10))
    >>> sorted(p["ip"]["v"])        # bounded: the two most recent
    ['3.3.3', '4.4.4']
    """

    R0 = {"ip": 0.35, "asn": 0.2, "country": 0.04, "device": 0.2}  # rates without a Population

    def __init__(self, attr: str, name: str, cap: int = 8, strength: float = 2.0) -> None:
        self.attr, self.key, self.name, self.cap, self.a = attr, name, "new_" + name, cap, strength
        self.field = "ipr" if attr == "ip" else attr  # addresses are compared by range
        self.r0 = self.R0.get(name, 0.2)

    def norm(self, value: Any) -> str:
        return ip_range(value) if self.attr == "ip" else str(value)

    def compute(self, ctx: Ctx, out: dict) -> None:
        value = getattr(ctx.obs, self.field)
        state = ctx.profile.get(self.key)
        if value is None or state is None:
            out[self.name] = 0.0
            return
        v = value if type(value) is str else str(value)
        if v in state["v"]:
            out[self.name] = 0.0
            return
        pend = ctx.profile.get("p")
        if pend:
            got = pend.get(self.key[0] + ":" + v)
            if got is not None and ctx.obs.ts - got[0] >= RECUR_S and got[1] != _sid(ctx.obs.session):
                out[self.name] = 0.0  # held back once, back in another session: the user's own
                return
        pop, n = ctx.pop, state["n"]
        if self.key == "country" and pop is not None and ctx.obs.asn is not None \
                and pop.multi_country(ctx.obs.asn):
            out[self.name] = 0.0  # a VPN exit's country is not a country the user went to
            return
        r = pop.novelty_rate(self.key, n) if pop is not None else self.r0
        s = -math.log(min(1.0, (state["k"] + self.a * r) / (n + self.a)))
        if pop is not None and s > 0.0:
            s *= 1.0 - pop.familiarity(self.key, v)
        out[self.name] = s

    def known(self, ctx: Ctx, value: Any) -> bool:
        state = ctx.profile.get(self.key)
        return state is not None and value is not None and self.norm(value) in state["v"]

    def learn(self, ctx: Ctx) -> None:
        value = getattr(ctx.obs, self.field)
        if value is None:
            return
        value = value if type(value) is str else str(value)
        state = ctx.profile.get(self.key)
        pop = ctx.pop
        if state is None:  # the first value: the baseline, not a trial
            ctx.profile[self.key] = {"v": {value: ctx.obs.ts}, "n": 0, "k": 0}
            if pop is not None:
                pop.adopt(self.key, value)
            return
        seen = state["v"]
        # count a trial once per session, and again whenever the value changes inside it
        last = ctx.sess[_SESS_SLOT[self.attr]] if ctx.sess is not None else None
        if last == value and value in seen:
            return  # same value as the session already had: nothing new to learn
        novel = value not in seen
        if pop is not None:
            pop.trial(self.key, state["n"], novel)
            if novel:
                pop.adopt(self.key, value)
        state["n"] += 1
        if novel:
            state["k"] += 1
        if state["n"] > 1000:  # keep the rate adaptive and the counts small
            state["n"] //= 2
            state["k"] = (state["k"] + 1) // 2
        seen.pop(value, None)
        seen[value] = ctx.obs.ts  # dict order = recency
        while len(seen) > self.cap:
            del seen[next(iter(seen))]


class GeoVelocity:
    """Speed (km/h) needed to get from the user's previous located event to this one.

    Why it signals risk: two places further apart than an airliner can fly in the elapsed time
    ("impossible travel") mean two different people hold the account or the session. What is
    *not* travel:

    * distances under ``min_km``, and moves inside one country (IP geolocation is city-level at
      best, and a mobile carrier's addresses are often placed at its hub city);
    * a move to a network (ASN) this user already uses: switching a VPN on and off, or roaming
      on the home carrier, jumps between places the user has both been seen at;
    * a move to a network many users share (a corporate VPN egress): the speed is scaled by
      ``1 - familiarity`` of the destination ASN (:class:`~models.population.Population`);
    * a far move of one device inside its own session (a VPN switched on or off; the session's
      network and country change say what there is to say);
    * a move to a network the organisation has seen geolocated in several countries (a VPN
      provider, a corporate VPN with regional concentrators, a cloud): its geolocation is where
      its exit is, not where the person is (:meth:`~models.population.Population.multi_country`).

    ``geo_uncertain`` (1.0): at least ``uncertain_from`` other users here use this network, so
    its address cannot say where the person is: a mobile carrier's addresses geolocate at its
    hub, at home also while its customer is abroad, and a corporate egress where its
    concentrator is. The speed then steps up and does not revoke on its own
    (:meth:`~models.detectors.UserBaseline.grade`): impossible travel is strong to a network
    nobody here uses. Two users are enough: an attacker's network is nobody's here, and a
    deployment's first hours have seen only a few of the colleagues behind each egress.

    The elapsed time is floored at ``min_dt_s`` so two near-simultaneous events do not divide by
    zero. State: ``profile["g"] = [ts, lat, lon, country]``.

    Examples
    --------
    >>> gv, p = GeoVelocity(), {}
    >>> gv.learn(Ctx(Obs("login", 0, lat=52.52, lon=13.40, country="DE"), p))           # Berlin
    >>> out = {}; gv.compute(Ctx(Obs("login", 3600, lat=48.86, lon=2.35, country="FR"), p), out)  # Paris, 1 h
    >>> round(out["geo_kmh"])
    877
    >>> gv.compute(Ctx(Obs("login", 3600, lat=52.50, lon=13.30, country="DE"), p), out)  # same city
    >>> out["geo_kmh"]
    0.0
    >>> gv.compute(Ctx(Obs("login", 3600, lat=48.14, lon=11.58, country="DE"), p), out)  # same country
    >>> out["geo_kmh"]
    0.0
    """

    def __init__(self, min_km: float = 300.0, min_dt_s: float = 60.0, asn_novelty: Novelty | None = None,
                 uncertain_from: int = 2) -> None:
        if uncertain_from < 1:
            raise ValueError(f"uncertain_from must be at least 1 user, got {uncertain_from!r}")
        self.min_km, self.min_dt_s = min_km, min_dt_s
        self.asn_novelty = asn_novelty
        self.uncertain_from = uncertain_from

    def compute(self, ctx: Ctx, out: dict) -> None:
        o, last = ctx.obs, ctx.profile.get("g")
        out["geo_uncertain"] = 0.0
        if last is None or o.lat is None or o.lon is None:
            out["geo_kmh"] = 0.0
            return
        sess = ctx.sess
        if sess is not None and o.device is not None and sess[S_DEVICE] == o.device:
            out["geo_kmh"] = 0.0  # one device inside its own session: a VPN switched on or off, not a journey
            return
        if abs(o.lat - last[1]) < 2.0 and abs(o.lon - last[2]) < 2.0:  # < ~250 km: skip the trigonometry
            out["geo_kmh"] = 0.0
            return
        if o.country is not None and len(last) > 3 and last[3] == o.country:
            out["geo_kmh"] = 0.0
            return
        nov = self.asn_novelty
        if nov is not None and o.asn is not None and nov.known(ctx, o.asn):
            out["geo_kmh"] = 0.0
            return
        km = haversine_km(last[1], last[2], o.lat, o.lon)
        if km < self.min_km:
            out["geo_kmh"] = 0.0
            return
        kmh = km / (max(abs(o.ts - last[0]), self.min_dt_s) / 3600.0)
        pop = ctx.pop
        if pop is not None:
            asn = o.asn
            if asn is not None:
                if pop.multi_country(asn):
                    out["geo_kmh"] = 0.0
                    return
                kmh *= 1.0 - pop.familiarity("asn", asn)
                if pop.sharers("asn", asn) >= self.uncertain_from:
                    out["geo_uncertain"] = 1.0  # a carrier's hub or a shared egress, not where the person is
        out["geo_kmh"] = kmh

    def learn(self, ctx: Ctx) -> None:
        o = ctx.obs
        if o.lat is not None and o.lon is not None:
            last = ctx.profile.get("g")
            if last is None or len(last) < 4:
                ctx.profile["g"] = [o.ts, o.lat, o.lon, o.country]
            elif o.ts >= last[0]:
                last[0], last[1], last[2], last[3] = o.ts, o.lat, o.lon, o.country


class SessionDrift:
    """The session's IP, device, country or network (ASN) changed while it was live.

    Why it signals risk: a session token is bound to one browser or app. The same token arriving
    from another device, country or network is the signature of a stolen cookie or token
    (session hijacking). A change of IP alone is common (mobile carriers, Wi-Fi to LTE), a change
    of device or country is not, so they are separate features.

    An IP address change inside one range (a NAT pool) is no change (:func:`ip_range`).

    ``session_alternation``: the session went from its network to another one and back (or on)
    within ``alt_s`` seconds, after it had been on a network (ASN) the user had not used. One
    person moves network once (a VPN switched on, Wi-Fi to cellular, a new carrier address inside
    one ASN, which is no network change at all); a token replayed elsewhere while its owner keeps
    working shows up as two networks interleaved, even when the replay copies the device id and
    comes from a residential address in the owner's country. ``session_new_network``: the same
    device moved, inside its session, to a network (ASN) the user has never used and that is not
    a VPN provider's (:meth:`~models.population.Population.multi_country`): what a replay of the
    token from a residential proxy looks like on its first request, before the owner's next
    request shows the interleaving; a carrier's new address stays inside its ASN and is no move.
    The mobile channel is left out of both: a
    phone at the edge of Wi-Fi coverage hands over between Wi-Fi and cellular and back, and its
    home Wi-Fi or carrier can well be new to the user.

    ``session_instant_move``: the session's next event comes from another address range or network
    (ASN), in a range no other user here uses, within ``instant_s`` seconds of its last one. A
    laptop that changes network drops its connections, joins the other network and only then
    sends again; a token replayed elsewhere while its owner is working arrives from the other
    place between two of the owner's requests, also when the replay copies the device id and comes
    from the owner's own ISP or another network the user knows (which ``session_alternation`` does
    not see, and ``session_interleaved`` only once the owner is back twice). Not a VPN provider's
    exit, nor a range other users share (a corporate egress or VPN concentrator joined
    mid-session, a NAT pool), nor one host's other address family, nor on the mobile channel (a
    phone flips between Wi-Fi and cellular without a pause), nor a login (a new authentication,
    which the other features judge), nor an event older than the session's last one (delivered
    late, it says nothing about the pace).

    ``session_interleaved``: the session's address range went back to the one it had just left,
    for the second time within ``alt_s`` (A, B, A, B), and at least one of the two ranges is used
    by no other user here. A browser or an API client holds one address at a time; one that
    moves (a lease renewed, a laptop carried home) does not keep coming back. Two holders of one
    token working at once do, also when the replay copies the device id and comes through a
    residential proxy on the owner's own ISP, where nothing but the address differs. A shared
    egress that balances its users over several ranges (a corporate proxy, a cloud NAT) is not
    it: both ranges are other users' too, and neither is one host's IPv4 and IPv6 on one network
    (a dual-stack browser alternates between them). Not on the mobile channel (a phone flapping
    between Wi-Fi and cellular is exactly this pattern).

    State: ``profile["s"] = {session: [ip, device, country, asn, first_ts, last_activity_ts,
    last_ts, stepped_up, last_event_asn, last_switch_ts, asn_left_then, new_network_seen,
    first_weak_raw, minute_of_last_request, requests_in_that_minute, last_event_range,
    range_left_then, last_range_switch_ts, range_switch_before_ts]}`` for the ``cap`` most
    recently used sessions (the last two kept by the minute window, for ``minute_share``).

    Examples
    --------
    >>> sd, p = SessionDrift(), {}
    >>> sd.learn(Ctx(Obs("login", 0, "u", "s1", ip="1.1.1.1", device="d1", country="DE"), p))
    >>> out = {}
    >>> sd.compute(Ctx(Obs("activity", 5, "u", "s1", ip="2.2.2.2", device="d1", country="DE"), p), out)
    >>> out["session_ip_change"], out["session_device_change"], out["session_country_change"]
    (1.0, 0.0, 0.0)
    >>> sd.compute(Ctx(Obs("activity", 5, "u", "s2", ip="9.9.9.9", device="d7", country="US"), p), out)
    >>> out["session_device_change"]   # a new session has nothing to drift from
    0.0
    >>> nov, p = Novelty("asn", "asn"), {}
    >>> sd = SessionDrift(asn_novelty=nov)
    >>> def step(t, asn):   # one device, in one country; network 3320 is the user's, 49505 is not
    ...     c = Ctx(Obs("activity", t, "u", "s1", ip=f"{asn % 250}.1.1.1", device="d1", country="DE", asn=asn), p)
    ...     o = {}; sd.compute(c, o); sd.track(c); sd.learn(c); return o["session_alternation"]
    >>> nov.learn(Ctx(Obs("login", 0, asn="3320"), p))
    >>> [step(t, a) for t, a in ((10, 3320), (20, 49505), (60, 3320), (90, 49505), (2000, 3320))]
    [0.0, 0.0, 1.0, 1.0, 0.0]
    >>> p = {}
    >>> def hop(t, ip):   # one token, two address ranges in turn
    ...     c = Ctx(Obs("activity", t, "u", "s1", ip=ip, device="d1", channel="web"), p)
    ...     o = {}; sd.compute(c, o); sd.track(c); sd.learn(c); return o["session_interleaved"]
    >>> [hop(t, ip) for t, ip in ((0, "1.1.1.5"), (10, "2.2.2.5"), (20, "1.1.1.6"), (30, "2.2.2.7"))]
    [0.0, 0.0, 0.0, 1.0]
    >>> p = {}
    >>> def move(t, asn, ip):   # another network: 2 s after the last request, then 60 s after
    ...     c = Ctx(Obs("activity", t, "u", "s1", ip=ip, device="d1", channel="web", asn=asn), p)
    ...     o = {}; sd.compute(c, o); sd.track(c); sd.learn(c); return o["session_instant_move"]
    >>> [move(t, a, ip) for t, a, ip in ((0, "3320", "1.1.1.5"), (2, "7922", "2.2.2.5"), (62, "3320", "1.1.1.5"))]
    [0.0, 1.0, 0.0]
    """

    NAMES = ("session_ip_change", "session_device_change", "session_country_change", "session_asn_change",
             "session_alternation", "session_new_network", "session_interleaved", "session_instant_move")

    def __init__(self, cap: int = 4, alt_s: float = 600.0, asn_novelty: Novelty | None = None,
                 instant_s: float = 5.0) -> None:
        if not 0.0 <= instant_s < alt_s:
            raise ValueError(f"instant_s must be in [0, alt_s), got {instant_s!r}")
        self.cap, self.alt_s, self.instant_s = cap, alt_s, instant_s
        self.asn_novelty = asn_novelty

    def compute(self, ctx: Ctx, out: dict) -> None:
        s, o = ctx.sess, ctx.obs
        if s is None:
            for n in self.NAMES:
                out[n] = 0.0
            return
        asn = o.asn
        vals = (o.ipr, o.device, o.country, asn)
        for i in range(4):
            v = vals[i]
            out[self.NAMES[i]] = 1.0 if (v is not None and s[i] is not None and s[i] != v) else 0.0
        if out["session_country_change"] and asn is not None and ctx.pop is not None and ctx.pop.multi_country(asn):
            out["session_country_change"] = 0.0  # a VPN switched on: the exit's country, not a journey
        out["session_alternation"] = out["session_new_network"] = out["session_interleaved"] = 0.0
        out["session_instant_move"] = 0.0
        ipr = o.ipr
        if (ipr is not None and len(s) > S_RANGE_SW0 and s[S_RANGE] is not None and ipr != s[S_RANGE]
                and ipr == s[S_RANGE_LEFT] and s[S_RANGE_SW0] is not None and o.ts - s[S_RANGE_SW0] <= self.alt_s
                and o.channel != "mobile" and self._private(ctx, ipr, s[S_RANGE])
                and not self._dual_stack(ipr, s[S_RANGE], asn, s[S_NET])):
            out["session_interleaved"] = 1.0  # back to the range it left, the second time in a few minutes
        if (ipr is not None and 0.0 <= o.ts - s[S_LAST] <= self.instant_s and len(s) > S_RANGE_SW0
                and o.channel != "mobile" and o.type != "login" and self._instant(ctx, ipr, asn, s)):
            out["session_instant_move"] = 1.0  # elsewhere, seconds after its last event
        if asn is None or len(s) <= S_NEW_NET or s[S_NET] is None or asn == s[S_NET] or o.channel == "mobile":
            return  # no network switch with this event, or a phone's handover
        nov = self.asn_novelty
        if nov is not None and not nov.known(ctx, asn):
            ctx.moved_new = True
            if o.device is not None and o.device == s[S_DEVICE] and (ctx.pop is None or not ctx.pop.multi_country(asn)):
                out["session_new_network"] = 1.0
        if ((s[S_NEW_NET] or ctx.moved_new) and s[S_SWITCH_TS] is not None and o.ts - s[S_SWITCH_TS] <= self.alt_s
                and asn == s[S_LEFT_NET]):
            out["session_alternation"] = 1.0  # back to the network it left moments ago

    @staticmethod
    def _instant(ctx: Ctx, ipr: str, asn: str | None, s: list) -> bool:
        """Whether an event that follows its session's last one within seconds comes from
        another address range or network, in a range no other user here uses and not from a VPN
        provider's exit nor the same host's other address family."""
        moved = (s[S_RANGE] is not None and ipr != s[S_RANGE]) or (asn is not None and s[S_NET] is not None
                                                                  and asn != s[S_NET])
        if not moved or SessionDrift._dual_stack(ipr, s[S_RANGE] or "", asn, s[S_NET]):
            return False
        pop = ctx.pop
        return pop is None or pop.sharers("ip", ipr) <= 1 and (asn is None or not pop.multi_country(asn))

    @staticmethod
    def _dual_stack(a: str, b: str, asn_a: str | None, asn_b: str | None) -> bool:
        """Whether two ranges are one host's IPv4 and IPv6 on one network: a dual-stack browser
        can alternate between its two addresses from one connection to the next."""
        return (":" in a) != (":" in b) and asn_a is not None and asn_a == asn_b

    @staticmethod
    def _private(ctx: Ctx, a: str, b: str) -> bool:
        """Whether at least one of two address ranges is used by no other user here."""
        pop = ctx.pop
        return pop is None or pop.sharers("ip", a) <= 1 or pop.sharers("ip", b) <= 1

    def track(self, ctx: Ctx) -> None:
        """Follow the session's address range and network event by event, flagged events
        included (they are what is happening, not what is normal)."""
        s, o = ctx.sess, ctx.obs
        if s is None:
            return
        ipr = o.ipr
        if ipr is not None and len(s) > S_RANGE_SW0:
            if s[S_RANGE] is not None and ipr != s[S_RANGE]:
                s[S_RANGE_SW0], s[S_RANGE_SW], s[S_RANGE_LEFT] = s[S_RANGE_SW], o.ts, s[S_RANGE]
            s[S_RANGE] = ipr
        if o.asn is None or len(s) <= S_NEW_NET:
            return
        asn = o.asn
        if s[S_NET] is not None and asn != s[S_NET]:
            s[S_SWITCH_TS], s[S_LEFT_NET] = o.ts, s[S_NET]
            if ctx.moved_new:
                s[S_NEW_NET] = 1
        s[S_NET] = asn

    def learn(self, ctx: Ctx) -> None:
        o = ctx.obs
        if o.session is None or o.type == "login_failed":
            return
        sessions = ctx.profile.setdefault("s", {})
        s = ctx.sess
        asn = o.asn
        if s is None:
            s = [o.ipr, o.device, o.country, asn, o.ts, o.ts, o.ts, 0, asn, None, None, 0, 0.0, -1, 0.0,
                 o.ipr, None, None, None]
            if o.type == "activity":  # the window counted this request before the record existed
                s[S_MINUTE], s[S_MINUTE_N] = int(o.ts // 60), 1.0
            ctx.sess = sessions[o.session] = s
        else:
            if o.ipr is not None:
                s[S_IP] = o.ipr
            if o.device is not None:
                s[S_DEVICE] = o.device
            if o.country is not None:
                s[S_COUNTRY] = o.country
            if asn is not None:
                s[S_ASN] = asn
            self.touch(ctx)
        if o.type == "logout":
            del sessions[o.session]
        while len(sessions) > self.cap:
            del sessions[next(iter(sessions))]

    @staticmethod
    def touch(ctx: Ctx) -> None:
        """A known session's recency and times move: it becomes the most recent (dict order), its
        last event is this one, and so is its last activity for a request, login or
        re-authentication (a refresh is no activity)."""
        o, s, sessions = ctx.obs, ctx.sess, ctx.profile["s"]
        if next(reversed(sessions)) != o.session:
            del sessions[o.session]  # re-insert: dict order = recency
            sessions[o.session] = s
        ts = o.ts
        if ts > s[S_LAST]:
            s[S_LAST] = ts
        if (o.type == "activity" or o.type == "login" or o.type == "reauth") and ts > s[S_ACTIVE]:
            s[S_ACTIVE] = ts


class _Window:
    """The user's current one-minute activity bucket and the EWMA baselines of past buckets.

    ``profile["m"] = [minute, count, privileged, bytes, flagged]``;
    ``profile["mb"] = [minutes, mean_count, var_count, mean_log_bytes, var_log_bytes, p_priv,
    mean_event_log_bytes, var_event_log_bytes, byte_events]``.
    """

    ALPHA = 0.05  # EWMA weight of one active minute (~20-minute memory of active time)

    @staticmethod
    def current(ctx: Ctx) -> tuple[float, float, float]:
        """(count, privileged, bytes) of the current minute, this event included (worked out
        once per event: rate, privileged and volume features all read it)."""
        cur = ctx.cur
        if cur is not None:
            return cur
        o, m = ctx.obs, ctx.profile.get("m")
        if m is None or m[0] != int(o.ts // 60):
            cur = ctx.cur = (1.0, 1.0 if o.privileged else 0.0, o.bytes)
        else:
            cur = ctx.cur = (m[1] + 1.0, m[2] + (1.0 if o.privileged else 0.0), m[3] + o.bytes)
        return cur

    @staticmethod
    def learn(ctx: Ctx, flagged: bool) -> None:
        o, prof = ctx.obs, ctx.profile
        minute = int(o.ts // 60)
        m = prof.get("m")
        if m is not None and minute < m[0]:
            return  # late event: do not reopen an old bucket
        mb = prof.get("mb")
        if mb is None:
            mb = prof["mb"] = [0, 1.0, 1.0, 0.0, 4.0, 0.02, 0.0, 4.0, 0]
        if m is None or m[0] != minute:
            if m is not None and not m[4]:  # close the previous bucket into the baselines
                log_bytes = math.log1p(m[3])
                if ctx.pop is not None:
                    ctx.pop.learn_minute(m[1], m[3], log_bytes)
                a = _Window.ALPHA if mb[0] > 20 else 1.0 / (mb[0] + 1.0)
                mb[0] += 1
                d = m[1] - mb[1]
                mb[1] += a * d
                mb[2] = (1 - a) * (mb[2] + a * d * d)
                d = log_bytes - mb[3]
                mb[3] += a * d
                mb[4] = (1 - a) * (mb[4] + a * d * d)
            m = prof["m"] = [minute, 0.0, 0.0, 0.0, False]
        priv = 1.0 if o.privileged else 0.0
        nbytes = o.bytes
        m[1], m[2], m[3] = _Window.current(ctx)  # the minute with this event in it (worked out once)
        s = ctx.sess
        if s is not None and len(s) > S_MINUTE_N:  # the session's part of the minute, flagged or not
            if s[S_MINUTE] != minute:
                s[S_MINUTE], s[S_MINUTE_N] = minute, 1.0
            else:
                s[S_MINUTE_N] += 1.0
        if flagged:
            m[4] = True
            return
        mb[5] += 0.02 * (priv - mb[5])
        if nbytes > 0:
            x = math.log1p(nbytes)
            if ctx.pop is not None:
                ctx.pop.learn_event_bytes(nbytes, x)
            n = mb[8] = mb[8] + 1
            a = 1.0 / n if n < 50 else 0.02
            d = x - mb[6]
            mb[6] += a * d
            mb[7] = (1 - a) * (mb[7] + a * d * d)


def _ready(pop: Population | None) -> Population | None:
    """The organisation's priors once they know its volumes, else ``None``."""
    return pop if pop is not None and pop.ready else None


def _minute_share(s: list | None, minute: int, count: float) -> float:
    """The share of the user's ``count`` requests in ``minute`` that session record ``s`` sent
    (this event included)."""
    if s is None:
        return 1.0 / count  # the session's first request
    if len(s) <= S_MINUTE_N:
        return 1.0  # a session record that does not keep its part of the minute
    if s[S_MINUTE] == minute:
        return (s[S_MINUTE_N] + 1.0) / count
    return 1.0 / count  # the session's first request in this minute


def _baseline(mb: list | None, n_slot: int, slot: int, org: float | None) -> float | None:
    """The user's baseline ``mb[slot]`` once it has ``WARM`` observations (``mb[n_slot]``); a thin
    history leans on the organisation's value ``org`` in proportion; ``None`` with neither."""
    n = mb[n_slot] if mb is not None else 0
    if n >= WARM:
        return mb[slot]
    if org is None:
        return None
    if mb is None:
        return org
    w = n / float(WARM)
    return w * mb[slot] + (1 - w) * org


def _rate_ratio(count: float, mb: list | None, prior: Population | None) -> float:
    """``log2`` of this minute's requests over the user's per-minute baseline, floored at 0; no
    baseline at all says nothing (0)."""
    if mb is not None and mb[0] >= WARM:  # what _baseline gives a warm user, without the call
        base = mb[1]
    else:
        base = _baseline(mb, 0, 1, prior.minute[0] if prior is not None else None)
    if base is None:
        return 0.0
    r = (count + 1.0) / (base + 1.0)
    return math.log2(r) if r > 1.0 else 0.0


def _privileged_surprise(count: float, mb: list | None) -> float:
    """``count`` privileged actions this minute, each as surprising as the user's share of them is low."""
    p = min(max(mb[5] if mb else 0.02, 1e-4), 0.999)
    return count * -math.log(p)


def _bytes(nbytes: float, minute_bytes: float, mb: list | None, prior: Population | None) -> tuple[float, float]:
    """(``bytes_z``, ``bytes_minute``): the z-score of ``log(1 + bytes)`` against the user's event
    sizes, and ``log2`` of this minute's bytes over the user's typical bytes per active minute,
    both floored at 0; no baseline at all says nothing (0)."""
    z = b = 0.0
    if mb is not None and mb[8] >= WARM:  # what _baseline gives a warm user, without the calls
        mean, var = mb[6], mb[7]
    else:
        org_mean, org_var = prior.event_bytes[:2] if prior is not None else (None, None)
        mean, var = _baseline(mb, 8, 6, org_mean), _baseline(mb, 8, 7, org_var)
    if mb is not None and mb[0] >= WARM:
        base = mb[3]
    else:
        base = _baseline(mb, 0, 3, prior.minute[1] if prior is not None else None)
    if mean is not None:
        z = (math.log1p(nbytes) - mean) / (math.sqrt(var) + 0.5)
        z = z if z > 0.0 else 0.0
    if base is not None:
        b = (math.log1p(minute_bytes) - base) / _LN2
        b = b if b > 0.0 else 0.0
    return z, b


def _hour_surprise(h: list | None, ts: float, min_events: int) -> float:
    """Surprisal of the hour of ``ts`` against the habit ``h`` over a uniform clock, floored at 0."""
    if h is None or h[24] < min_events:
        return 0.0  # a habit needs a history: shift and night work are habits too
    v = -math.log((h[int(ts // 3600) % 24] + 0.5) / (h[24] + 12.0) * 24.0)
    return v if v > 0.0 else 0.0


class RequestRate:
    """Events in the current minute against the user's own per-minute baseline (EWMA).

    Why it signals risk: scripted abuse (scraping, enumeration, exfiltration through an API with a
    stolen token) runs far faster than the person whose session it is. The feature is
    ``log2((count + 1) / (baseline + 1))``, floored at 0: 1.0 means twice the usual rate.
    ``minute_events`` is the count itself from 10 on (0 below): a person clicks a few times a
    minute, a script dozens of times, whatever the user's own baseline.

    ``minute_share`` is the share of the user's requests in the current minute that this event's
    session sent (this event included): the minute is the user's, but a burst belongs to the
    session that makes it. A token replayed while its owner keeps working bursts in the
    attacker's session; the owner's next click lands in the same minute with a share near 0.

    Examples
    --------
    >>> rr, p = RequestRate(), {}
    >>> for t in range(0, 1200, 30):          # 2 events a minute for 20 minutes
    ...     _Window.learn(Ctx(Obs("activity", t), p), flagged=False)
    >>> for t in range(1200, 1220):           # then 20 in one minute
    ...     _Window.learn(Ctx(Obs("activity", t), p), flagged=False)
    >>> out = {}; rr.compute(Ctx(Obs("activity", 1221), p), out); round(out["rate_ratio"], 1)
    2.9
    """

    def compute(self, ctx: Ctx, out: dict) -> None:
        if ctx.obs.type != "activity":
            out["rate_ratio"] = out["minute_events"] = out["minute_share"] = 0.0
            return
        count = _Window.current(ctx)[0]
        out["minute_share"] = _minute_share(ctx.sess, int(ctx.obs.ts // 60), count)
        out["minute_events"] = count if count >= 10.0 else 0.0  # below: a person's pace says nothing
        out["rate_ratio"] = _rate_ratio(count, ctx.profile.get("mb"), _ready(ctx.pop))

    def learn(self, ctx: Ctx) -> None:  # the shared window is learnt by FeatureExtractor
        pass


class PrivilegedRate:
    """Privileged actions against how often this user performs them.

    Why it signals risk: an attacker in a session goes for admin functions (create keys, change
    roles, export users) that the account's owner rarely uses. The feature is the surprisal of the
    privileged actions in the current minute: ``count * -log p_priv`` (0 for unprivileged events),
    where ``p_priv`` is the user's EWMA fraction of privileged events. An admin who does this all
    day gets a small value; a sales rep gets a large one.

    Examples
    --------
    >>> pr, p = PrivilegedRate(), {}
    >>> for t in range(300):
    ...     _Window.learn(Ctx(Obs("activity", t * 20, privileged=False), p), flagged=False)
    >>> out = {}; pr.compute(Ctx(Obs("activity", 7000, privileged=True), p), out)
    >>> out["privileged_surprise"] > 5
    True
    """

    def compute(self, ctx: Ctx, out: dict) -> None:
        o = ctx.obs
        if not o.privileged or o.type != "activity":
            out["privileged_surprise"] = 0.0
            return
        out["privileged_surprise"] = _privileged_surprise(_Window.current(ctx)[1], ctx.profile.get("mb"))

    def learn(self, ctx: Ctx) -> None:
        pass


class BytesOut:
    """Bytes sent to the client, per event and per minute, against the user's baseline.

    Why it signals risk: exfiltration moves much more data than the user's normal work. Two
    features: ``bytes_z`` is the z-score of ``log(1 + bytes)`` of this event against the user's
    EWMA mean and variance (one huge export); ``bytes_minute`` is
    ``log2(bytes this minute / typical bytes per active minute)`` (many ordinary-sized downloads in
    a burst). Both are floored at 0.

    Examples
    --------
    >>> bo, p = BytesOut(), {}
    >>> for t in range(200):
    ...     _Window.learn(Ctx(Obs("activity", t * 30, bytes=20_000), p), flagged=False)
    >>> out = {}; bo.compute(Ctx(Obs("activity", 6001, bytes=50_000_000), p), out)
    >>> out["bytes_z"] > 5, round(out["bytes_minute"], 1)
    (True, 10.3)
    """

    def compute(self, ctx: Ctx, out: dict) -> None:
        o = ctx.obs
        if o.bytes <= 0 or o.type != "activity":
            out["bytes_z"] = 0.0
            out["bytes_minute"] = 0.0
            return
        mb, prior = ctx.profile.get("mb"), _ready(ctx.pop)
        out["bytes_z"], out["bytes_minute"] = _bytes(o.bytes, _Window.current(ctx)[2], mb, prior)

    def learn(self, ctx: Ctx) -> None:
        pass


class FailedLoginBurst:
    """Failed logins in the minutes before a successful login.

    Why it signals risk: credential stuffing and password guessing leave a trail of failures, and
    the login that finally succeeds is the attacker's. The feature, on a ``login`` only, is
    ``log2(1 + f)`` where ``f`` is the failure count decayed with time constant ``tau_s``
    (a user's own typo or two gives ~1, a burst of 30 gives ~5). ``failed_own_device`` is 1.0
    when every one of those failures came from the device that now logs in: a client retrying a
    stale saved password, not a botnet trying credentials from everywhere.

    The first login after a burst consumes it, whether or not that login is flagged
    (:meth:`FeatureExtractor.learn_ctx`): when the guessing succeeds, the attacker's login carries
    the burst, and the owner's own login minutes later does not inherit it.

    State: ``profile["f"] = [decayed_count, ts, device of the failures or "" if several]``.

    Examples
    --------
    >>> fl, p = FailedLoginBurst(), {}
    >>> for t in range(30):
    ...     fl.learn(Ctx(Obs("login_failed", t * 5), p))
    >>> out = {}; fl.compute(Ctx(Obs("login", 160, session="s"), p), out); round(out["failed_logins"], 1)
    4.8
    >>> out["failed_own_device"]
    0.0
    >>> fl.compute(Ctx(Obs("login", 160 + 6 * 3600, session="s"), p), out); out["failed_logins"]
    0.0
    """

    def __init__(self, tau_s: float = 600.0) -> None:
        self.tau_s = tau_s

    def _count(self, ctx: Ctx) -> float:
        f = ctx.profile.get("f")
        if f is None:
            return 0.0
        c = f[0] * math.exp(-max(0.0, ctx.obs.ts - f[1]) / self.tau_s)
        return c if c > 0.05 else 0.0

    def compute(self, ctx: Ctx, out: dict) -> None:
        if ctx.obs.type != "login":
            out["failed_logins"] = out["failed_own_device"] = 0.0
            return
        c = self._count(ctx)
        out["failed_logins"] = math.log2(1.0 + c)
        f = ctx.profile.get("f")
        own = c > 0.0 and f is not None and len(f) > 2 and f[2] and f[2] == ctx.obs.device
        out["failed_own_device"] = 1.0 if own else 0.0

    def learn(self, ctx: Ctx) -> None:
        t = ctx.obs.type
        if t == "login_failed":
            c = self._count(ctx)
            f = ctx.profile.get("f")
            dev = ctx.obs.device or ""
            if c > 0.0 and f is not None and (len(f) < 3 or f[2] != dev):
                dev = ""  # failures from more than one device
            ctx.profile["f"] = [c + 1.0, ctx.obs.ts, dev]
        elif t == "login" and "f" in ctx.profile:
            del ctx.profile["f"]


class HourOfDay:
    """Hour of day (UTC; a user's zone is fixed, so their habit is too) against the user's habit.

    Why it signals risk: people work in a rhythm; activity at 03:00 from someone who never works
    at night is more likely someone else (or an unattended, hijacked session). The feature is the
    surprisal of the hour relative to a uniform clock: ``-log p(hour) - log 24`` with additive
    smoothing, floored at 0. Counts are halved when they pass 200, so the habit can drift and the
    state stays 24 small numbers.

    Examples
    --------
    >>> hd, p = HourOfDay(), {}
    >>> for day in range(30):
    ...     for h in range(9, 17):
    ...         hd.learn(Ctx(Obs("activity", day * 86400 + h * 3600), p))
    >>> out = {}; hd.compute(Ctx(Obs("activity", 40 * 86400 + 10 * 3600), p), out); out["hour_surprise"]
    0.0
    >>> hd.compute(Ctx(Obs("activity", 40 * 86400 + 3 * 3600), p), out); round(out["hour_surprise"], 2)
    2.51
    """

    def __init__(self, min_events: int = 50) -> None:
        self.min_events = min_events

    def compute(self, ctx: Ctx, out: dict) -> None:
        out["hour_surprise"] = _hour_surprise(ctx.profile.get("h"), ctx.obs.ts, self.min_events)

    def learn(self, ctx: Ctx) -> None:
        h = ctx.profile.get("h")
        if h is None:
            h = ctx.profile["h"] = [0] * 25  # 24 hour counts + their total
        hour = int(ctx.obs.ts // 3600) % 24
        h[hour] += 1
        h[24] += 1
        if h[24] > 200:
            for i in range(24):
                h[i] //= 2
            h[24] = sum(h[:24])


class Unattended:
    """Session kept alive by background refreshes long after its last human activity.

    Why it signals risk: a browser tab left open on an unlocked machine refreshes its token
    forever, so the idle timeout never fires although nobody is there. On a ``refresh`` the
    feature is ``log2(minutes since the session's last activity / grace_min)``, floored at 0.

    Examples
    --------
    >>> un, p = Unattended(), {}
    >>> SessionDrift().learn(Ctx(Obs("login", 0, "u", "s1"), p))
    >>> out = {}; un.compute(Ctx(Obs("refresh", 4 * 3600, "u", "s1"), p), out); out["unattended"]
    2.0
    """

    def __init__(self, grace_min: float = 60.0) -> None:
        self.grace_min = grace_min

    def compute(self, ctx: Ctx, out: dict) -> None:
        s = ctx.sess
        if s is None or ctx.obs.type != "refresh":
            out["unattended"] = 0.0
            return
        minutes = (ctx.obs.ts - s[S_ACTIVE]) / 60.0
        out["unattended"] = max(0.0, math.log2(max(minutes, 1e-9) / self.grace_min))

    def learn(self, ctx: Ctx) -> None:
        pass


# ----------------------------------------------------------------------------------------------
class FeatureExtractor:
    """All features for one event, computed against and then (optionally) learnt into a profile.

    ``compute(obs, profile) -> dict`` never mutates; ``learn(obs, profile, flagged)`` folds the
    event in (baselines are not updated from flagged events; the per-session record and the
    current minute still are, because they describe *what is happening*, not *what is normal*).
    ``confirmed`` (a successful re-authentication) learns the event whatever it scored.

    Parameters
    ----------
    population
        The organisation's priors (:class:`~models.population.Population`), shared by every
        user; ``None`` for features from the user's own history only.
    """

    def __init__(self, population: Population | None = None) -> None:
        self.pop = population
        self.novelty = [Novelty("ip", "ip", 8), Novelty("asn", "asn", 6), Novelty("country", "country", 6),
                        Novelty("device", "device", 6)]
        self.geo = GeoVelocity(asn_novelty=self.novelty[1])
        self.drift = SessionDrift(asn_novelty=self.novelty[1])
        self.concepts = [*self.novelty, self.geo, self.drift, RequestRate(), PrivilegedRate(), BytesOut(),
                         FailedLoginBurst(), HourOfDay(), Unattended()]
        self.hour = self.concepts[-2]
        self.unattended = self.concepts[-1]
        self.fail = self.concepts[-3]
        self._compute = [c.compute for c in self.concepts]
        self._novelty_learn = [c.learn for c in self.novelty]

    def compute(self, obs: Obs, profile: dict) -> dict[str, float]:
        return self.extract(obs, profile)[0]

    def extract(self, obs: Obs, profile: dict) -> tuple[dict[str, float], Ctx]:
        """Features and the context to hand to :meth:`learn_ctx` afterwards."""
        ctx = Ctx(obs, profile, self.pop)
        t = obs.type
        if (t == "activity" or t == "refresh") and ctx.sess is not None and self._steady(ctx):
            # Most events are a session's next request (or token refresh) from where it already
            # is: every novelty, travel and drift feature is 0 by definition (known values, one
            # device inside its own session, nothing changed), so only what the session does is
            # computed. Same features and the same profile as the full path (tested event by event).
            ctx.steady = True
            return (self._activity_features(ctx) if t == "activity" else self._refresh_features(ctx)), ctx
        out = {}
        for compute in self._compute:
            compute(ctx, out)
        return out, ctx

    def _activity_features(self, ctx: Ctx) -> dict[str, float]:
        """The features of a steady event: what :class:`RequestRate`, :class:`PrivilegedRate`,
        :class:`BytesOut` and :class:`HourOfDay` compute for an activity event, through the same
        formulas, with the profile's minute and baselines read once; 0 for every other feature.
        This runs for most events: one call here instead of four concept calls."""
        o, prof = ctx.obs, ctx.profile
        out = _QUIET.copy()
        ts, nbytes = o.ts, o.bytes
        count, mpriv, mbytes = _Window.current(ctx)
        out["minute_share"] = _minute_share(ctx.sess, int(ts // 60), count)
        if count >= 10.0:
            out["minute_events"] = count
        mb, prior = prof.get("mb"), _ready(ctx.pop)
        out["rate_ratio"] = _rate_ratio(count, mb, prior)
        if o.privileged:
            out["privileged_surprise"] = _privileged_surprise(mpriv, mb)
        if nbytes > 0:
            out["bytes_z"], out["bytes_minute"] = _bytes(nbytes, mbytes, mb, prior)
        out["hour_surprise"] = _hour_surprise(prof.get("h"), ts, self.hour.min_events)
        return out

    def _refresh_features(self, ctx: Ctx) -> dict[str, float]:
        """The features of a steady token refresh: what :class:`HourOfDay` and
        :class:`Unattended` compute for it; a refresh is no request, so every other feature is 0."""
        out = _QUIET.copy()
        self.hour.compute(ctx, out)
        self.unattended.compute(ctx, out)
        return out

    @staticmethod
    def _steady(ctx: Ctx) -> bool:
        """The event repeats its session's device, address range, country and network, all of
        them values the user is known to use, and its network and address range are the ones the
        session was last on; a value the event does not carry is not compared. Without a device,
        a located event needs its network: only the device or a known network says a place is
        not a journey (:class:`GeoVelocity`)."""
        o, s, prof = ctx.obs, ctx.sess, ctx.profile
        if len(s) <= S_NEW_NET:
            return False
        v = o.device
        if v is not None:
            if v != s[S_DEVICE]:
                return False
            d = prof.get("device")
            if d is None or v not in d["v"]:
                return False
        elif o.asn is None and o.lat is not None and o.lon is not None:
            return False
        v = o.ipr
        if v is not None:
            d = prof.get("ip")
            if v != s[S_IP] or d is None or v not in d["v"] or (len(s) > S_RANGE and v != s[S_RANGE]):
                return False
        v = o.country
        if v is not None:
            d = prof.get("country")
            if v != s[S_COUNTRY] or d is None or v not in d["v"]:
                return False
        v = o.asn
        if v is not None:
            d = prof.get("asn")
            if v != s[S_ASN] or v != s[S_NET] or d is None or v not in d["v"]:
                return False
        return True

    def learn(self, obs: Obs, profile: dict, flagged: bool = False) -> None:
        self.learn_ctx(Ctx(obs, profile, self.pop), flagged)

    def learn_ctx(self, ctx: Ctx, flagged: bool = False, confirmed: bool = False) -> None:
        if ctx.steady and not flagged and not confirmed:
            self._learn_steady(ctx)
            return
        obs, profile = ctx.obs, ctx.profile
        profile["n"] = profile.get("n", 0) + 1
        if obs.type == "login_failed":
            self.fail.learn(ctx)  # failures are evidence, never a baseline
            return
        if confirmed:
            flagged = False
            if ctx.sess is not None and len(ctx.sess) > S_STEPPED_UP:
                ctx.sess[S_STEPPED_UP] = 0
        if not flagged:
            for learn in self._novelty_learn:
                learn(ctx)
            if self.pop is not None and obs.asn is not None and obs.country is not None:
                self.pop.locate(obs.asn, obs.country)
            self.geo.learn(ctx)
            self.hour.learn(ctx)
        if obs.type == "login":
            # a login consumes the failures before it, flagged or not: the attacker's login that
            # ends a guessing burst carries that burst, and the owner's next login does not inherit it
            self.fail.learn(ctx)
        if obs.type == "activity":
            _Window.learn(ctx, flagged)
        if ctx.sess is not None:
            self.drift.track(ctx)
        if flagged and ctx.sess is not None:
            # keep the session record pinned to its pre-attack attributes, but note the time
            ctx.sess[S_LAST] = max(ctx.sess[S_LAST], obs.ts)
            return
        self.drift.learn(ctx)

    def _learn_steady(self, ctx: Ctx) -> None:
        """:meth:`learn_ctx` for a steady, unflagged event, straight through. Its values are the
        session's and known (no novelty to learn, no network move to track) and it is a request
        or a refresh (no failed logins); what moves is where the network geolocates, the last location
        (:class:`GeoVelocity`), the hour habit, a request's minute window and the session's recency and
        times (:meth:`SessionDrift.touch`, what :meth:`SessionDrift.learn` does when the session's
        values stand). The steady-path test compares the profiles and priors of this and the
        general path event by event.
        """
        o, prof = ctx.obs, ctx.profile
        prof["n"] = prof.get("n", 0) + 1
        if self.pop is not None and o.asn is not None and o.country is not None:
            self.pop.locate(o.asn, o.country)
        self.geo.learn(ctx)
        self.hour.learn(ctx)
        if o.type == "activity":  # a refresh is no request: the minute window does not count it
            _Window.learn(ctx, False)
        SessionDrift.touch(ctx)

    def hold(self, ctx: Ctx, x: dict[str, float], min_gap_s: float = RECUR_S, cap: int = 8) -> None:
        """A weakly flagged event (nothing but novelty or other weak evidence): remember its new
        values; one that comes back in *another* session at least ``min_gap_s`` later is the
        user's: :class:`Novelty` scores it as known there, and it is learnt. A user's new phone
        or a trip steps up in its first session only, without a confirmation; an attacker's
        one-off context is never learnt.

        State: ``profile["p"] = {"<attr>:<value>": [first_ts, session_crc]}``, at most ``cap``.
        """
        obs = ctx.obs
        if obs.session is None:
            return
        pend = ctx.profile.get("p")
        sid = _sid(obs.session)
        for nov in self.novelty:
            if not x[nov.name]:
                continue
            key = nov.key[0] + ":" + str(getattr(obs, nov.field))
            if pend is None:
                pend = ctx.profile["p"] = {}
            got = pend.get(key)
            if got is None:
                pend[key] = [obs.ts, sid]
                while len(pend) > cap:
                    del pend[next(iter(pend))]
            elif got[1] != sid and obs.ts - got[0] >= min_gap_s:
                del pend[key]
                nov.learn(ctx)

    def process(self, event: Any, profile: dict, flagged: bool = False) -> dict[str, float]:
        """Compute then learn; convenience for tests and notebooks."""
        obs = observe(event)
        out = self.compute(obs, profile)
        self.learn(obs, profile, flagged)
        return out


FEATURES: tuple[str, ...] = (
    "new_ip", "new_asn", "new_country", "new_device", "geo_uncertain", "geo_kmh",
    *SessionDrift.NAMES,
    "rate_ratio", "minute_events", "minute_share", "privileged_surprise", "bytes_z", "bytes_minute", "failed_logins",
    "failed_own_device", "hour_surprise", "unattended",
)
# the features of an event that shows nothing unusual
_QUIET: dict[str, float] = dict.fromkeys(FEATURES, 0.0)
