"""A seeded generator of realistic, labelled authentication traffic in the canonical event format.

Benign users differ by role (staff, engineer, admin, contractor, service), home country (and so
time zone, networks and geolocation), devices, channel mix (web, mobile, api), work-hour rhythm,
activity rate, typical download size and SSO apps. Benign traffic carries the noise a real model
meets:

* networks: an office NAT egress shared by everyone there, a full-tunnel corporate VPN that
  egresses at a regional hub (often in another country), mobile carriers with carrier-grade NAT
  (a new address every few requests, geolocated at the carrier's hub), phones flapping between
  home Wi-Fi and the carrier, home routers renewing their lease, commercial VPN users (exits in
  other countries on a provider's network, switched on before or during a session);
* devices: laptops, phones, tablets and home desktops, new laptops, browsers that lose their
  device id (cleared cookies);
* people: business trips (new country, hotel network, plausible travel time, phones roaming on
  the home carrier), shift and night workers, weekend work, users joining mid-stream;
* behaviour: typos at login, a stale saved password retried several times, occasional big
  downloads, batches of exports at human pace.

Labelled attacks (one label per attacked session):

``hijack``
    the victim's session token replayed mid-session from another device on a foreign network, or
    from a residential proxy in the victim's own country, with a new or a copied device id; the
    victim keeps working in parallel.
``impossible_travel``
    a new login for the user from a far country minutes after the user's last event.
``credential_stuffing``
    a burst of ``login_failed`` from rotating attacker IPs, then a successful login.
``exfiltration``
    inside the user's own session, a burst of large downloads/exports at machine speed.
``unattended``
    the user walks away; the open tab keeps refreshing its token (``automatic``) for hours.
``ids_flagged``
    the user's host gets a Suricata-style IDS ``alert`` on its IP while the session is live.

Everything is a pure function of ``seed``: users, days and attacks use their own
``random.Random(f"{seed}:...")`` streams, so the output is identical across runs and machines.

Examples
--------
>>> events, labels = simulate(users=20, hours=30, seed=7, attack_rate=0.5)
>>> events == simulate(users=20, hours=30, seed=7, attack_rate=0.5)[0]   # deterministic
True
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))        # ordered by time
True
>>> sessions = {e.get("session") for e in events}
>>> all(l["session"] in sessions for l in labels)                       # labels match events
True
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

__all__ = ["simulate", "iter_events", "iter_stream", "ATTACK_KINDS", "T0", "rfc3339"]

T0 = 1767571200.0  # 2026-01-05T00:00:00Z, a Monday
ATTACK_KINDS = ("hijack", "impossible_travel", "credential_stuffing", "exfiltration", "unattended",
                "ids_flagged")

# code: (lat, lon, utc offset h, ASNs of local ISPs / carriers)
COUNTRIES: dict[str, tuple[float, float, float, tuple[int, ...]]] = {
    "US": (39.8, -98.6, -5, (7922, 701, 7018, 20115, 22773)),
    "CA": (43.65, -79.38, -5, (812, 577, 6327)),
    "BR": (-23.55, -46.63, -3, (28573, 18881, 26599)),
    "GB": (51.51, -0.13, 0, (2856, 5089, 5607)),
    "IE": (53.35, -6.26, 0, (5466, 6830)),
    "FR": (48.86, 2.35, 1, (3215, 12322, 5410)),
    "DE": (52.52, 13.40, 1, (3320, 3209, 6805)),
    "NL": (52.37, 4.90, 1, (1136, 33915, 3265)),
    "ES": (40.42, -3.70, 1, (3352, 12479, 12430)),
    "PL": (52.23, 21.01, 1, (5617, 12741)),
    "IN": (19.07, 72.88, 5.5, (9829, 24560, 55836)),
    "SG": (1.35, 103.82, 8, (9506, 4773, 7473)),
    "JP": (35.68, 139.69, 9, (2516, 4713, 17676)),
    "AU": (-33.87, 151.21, 10, (1221, 4739, 7545)),
}
HOME_WEIGHTS = {"US": 30, "CA": 5, "BR": 4, "GB": 12, "IE": 3, "FR": 8, "DE": 12, "NL": 5, "ES": 4, "PL": 4,
                "IN": 8, "SG": 2, "JP": 2, "AU": 3}
ATTACKER_ORIGINS: dict[str, tuple[float, float, tuple[int, ...]]] = {
    "RU": (55.75, 37.62, (12389, 8359)), "CN": (39.90, 116.40, (4134, 4837)), "NG": (6.52, 3.38, (29465, 36873)),
    "VN": (21.03, 105.85, (7552, 45899)), "RO": (44.43, 26.10, (8708, 9050)), "ID": (-6.21, 106.85, (7713, 17974)),
}
ROLES = (("staff", 62), ("engineer", 16), ("admin", 6), ("contractor", 10), ("service", 6))
APPS = ("mail", "crm", "wiki", "git", "hr", "payroll", "erp", "bi", "ticketing", "drive")
ACTIONS = {
    "staff": ("read", "read", "read", "search", "update", "download", "upload"),
    "engineer": ("read", "read", "search", "deploy", "commit", "download", "query"),
    "admin": ("read", "search", "update", "grant", "create_user", "rotate_key", "download"),
    "contractor": ("read", "read", "search", "update", "download"),
    "service": ("read", "write", "query", "sync"),
}
PRIVILEGED_P = {"staff": 0.003, "engineer": 0.03, "admin": 0.25, "contractor": 0.005, "service": 0.0}
CORP_ASN = 64512
# full-tunnel corporate VPN concentrators: region -> (country, lat, lon); one ASN, few addresses
CORP_VPN_ASN = 64513
VPN_HUBS = {"amer": ("US", 38.9, -77.4), "emea": ("NL", 52.3, 4.8), "apac": ("SG", 1.3, 103.8)}
REGION = {"US": "amer", "CA": "amer", "BR": "amer", "IN": "apac", "SG": "apac", "JP": "apac", "AU": "apac"}
# commercial VPN providers: ASN -> exits (country, lat, lon); a provider egresses in many countries
VPN_PROVIDERS: dict[int, tuple[tuple[str, float, float], ...]] = {
    60068: (("GB", 51.5, -0.1), ("DE", 50.1, 8.7), ("US", 40.7, -74.0), ("SG", 1.3, 103.8)),
    212238: (("NL", 52.4, 4.9), ("FR", 48.9, 2.3), ("CA", 43.7, -79.4), ("JP", 35.7, 139.7)),
    20473: (("US", 34.0, -118.2), ("DE", 52.5, 13.4), ("AU", -33.9, 151.2), ("ES", 40.4, -3.7)),
}


def rfc3339(ts: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with milliseconds.

    >>> rfc3339(T0 + 0.25)
    '2026-01-05T00:00:00.250Z'
    """
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ip(asn: int, rng: random.Random, ranges: int = 256) -> str:
    """An address of ``asn``, in one of ``ranges`` /24s of its /16."""
    if asn == CORP_ASN:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"{(asn * 7) % 213 + 11}.{(asn * 13) % 256}.{rng.randrange(ranges)}.{rng.randrange(1, 255)}"


def _corp_vpn(u: "_User", rng: random.Random) -> tuple[str, dict]:
    """The corporate VPN egress of the user's region: a handful of addresses shared by everyone."""
    cc, lat, lon = VPN_HUBS[REGION.get(u.cc, "emea")]
    return f"192.0.{CORP_VPN_ASN % 7}.{rng.randrange(1, 4)}", _geo(cc, lat, lon, CORP_VPN_ASN)


def _vpn_exit(u: "_User", rng: random.Random) -> tuple[str, dict]:
    cc, lat, lon = rng.choice(VPN_PROVIDERS[u.vpn_provider])
    return _ip(u.vpn_provider, rng, 32), _geo(cc, lat, lon, u.vpn_provider)


def _carrier_geo(u: "_User", asn: int) -> dict:
    """Carrier addresses geolocate at the carrier's hub (the country's centre), not at the user."""
    clat, clon = COUNTRIES[u.cc][:2]
    return _geo(u.cc, clat, clon, asn)


def _geo(cc: str, lat: float, lon: float, asn: int) -> dict[str, Any]:
    return {"country": cc, "lat": round(lat, 3), "lon": round(lon, 3), "asn": asn}


def _hex(rng: random.Random, n: int = 10) -> str:
    return "%0*x" % (n, rng.getrandbits(4 * n))


class _User:
    """A benign user's stable traits, drawn from its own seeded stream."""

    def __init__(self, seed: int, idx: int) -> None:
        rng = random.Random(f"{seed}:user:{idx}")
        self.id = f"u{idx:05d}"
        self.role = rng.choices([r for r, _ in ROLES], [w for _, w in ROLES])[0]
        self.cc = rng.choices(list(HOME_WEIGHTS), list(HOME_WEIGHTS.values()))[0]
        clat, clon, self.tz, asns = COUNTRIES[self.cc]
        self.lat, self.lon = clat + rng.uniform(-1.5, 1.5), clon + rng.uniform(-1.5, 1.5)
        self.isp = rng.choice(asns)
        self.carrier = rng.choice(asns)
        self.home_ip = _ip(self.isp, rng)
        self.office = rng.random() < 0.6
        self.office_ip = _ip(CORP_ASN, rng)
        self.laptop = "dev-" + _hex(rng)
        self.phone = "dev-" + _hex(rng) if rng.random() < 0.7 else None
        self.start_h = rng.uniform(7.0, 10.0)
        self.length_h = rng.uniform(7.0, 10.0)
        self.weekend = rng.random() < 0.1
        self.rate = math.exp(rng.gauss(math.log(0.5), 0.5))          # events per active minute
        if self.role == "service":
            self.rate *= 3
        self.bytes_mu = rng.gauss(math.log(20_000), 0.8)
        self.apps = rng.sample(APPS, rng.randint(2, 5))
        self.roles = [self.role] + (["finance"] if rng.random() < 0.1 else [])
        self.sessions_per_day = rng.uniform(1.0, 3.0)
        # more benign diversity, drawn from the user's own stream after the traits above
        self.tablet = "dev-" + _hex(rng) if rng.random() < 0.25 else None
        self.desktop = "dev-" + _hex(rng) if rng.random() < 0.25 else None
        self.join = rng.random() if rng.random() < 0.2 else None      # share of the run before joining
        self.corp_vpn = not self.office and rng.random() < 0.3          # full tunnel from home
        self.vpn = rng.random() < 0.06                                   # a commercial VPN
        self.vpn_provider = rng.choice(list(VPN_PROVIDERS))
        self.cookie_loss = rng.random() < 0.05                           # the browser forgets its id
        r = rng.random()
        self.shift = "rotating" if r < 0.07 else "night" if r < 0.12 else None
        if self.role == "service":
            self.tablet = self.desktop = None
            self.corp_vpn = self.vpn = self.cookie_loss = False
            self.shift = None


class _Day:
    """Collects one user-day's events; ``ev`` builds canonical dicts with a tiebreak sequence."""

    def __init__(self, out: list, seq: list) -> None:
        self.out, self.seq = out, seq

    def ev(self, ts: float, **fields: Any) -> dict[str, Any]:
        d = {"type": fields.pop("type"), "ts": ts}
        d.update({k: v for k, v in fields.items() if v is not None})
        self.seq[0] += 1
        self.out.append((ts, self.seq[0], d))
        return d


def _session(day: _Day, rng: random.Random, u: _User, start: float, minutes: float, *, ip: str, device: str,
             channel: str, geo: dict, sid: str, sso: str | None, app: str, carrier_churn: bool,
             logout: bool = True, flap: tuple[str, dict] | None = None, vpn_at: float | None = None) -> list[float]:
    """One benign session; returns the times of its activity events.

    ``carrier_churn``: carrier-grade NAT hands out a new address every few requests; ``flap``:
    (address, geo) of the home Wi-Fi a phone keeps switching to and from; ``vpn_at``: share of
    the session after which the user switches their commercial VPN on."""
    r = rng.random()
    if r < 0.05:  # a typo or two first
        for k in range(rng.randint(1, 2)):
            day.ev(start - 30 + k * 8, type="login_failed", user=u.id, ip=ip, device=device, app=app,
                   channel=channel, geo=geo)
    elif r < 0.065 and u.role != "service":  # a stale saved password, retried until the user types it
        for k in range(rng.randint(4, 9)):
            day.ev(start - 60 + k * 5, type="login_failed", user=u.id, ip=ip, device=device, app=app,
                   channel=channel, geo=geo)
    day.ev(start, type="login", user=u.id, session=sid, sso_session=sso, app=app, channel=channel, ip=ip,
           device=device, roles=u.roles, aal=2 if u.role == "admin" else 1, geo=geo)
    t, end, times = start, start + minutes * 60, []
    next_refresh = start + 15 * 60
    actions = ACTIONS[u.role]
    export_at = start + rng.uniform(0.2, 0.8) * minutes * 60 if (u.role != "service" and rng.random() < 0.03) else None
    vpn_t = start + vpn_at * minutes * 60 if vpn_at is not None else None
    cell = (ip, geo)
    while True:
        gap = rng.expovariate(u.rate / 60.0)
        if rng.random() < 0.04:  # a coffee break or a meeting
            gap += rng.uniform(5, 25) * 60
        t += gap
        if t > end:
            break
        while next_refresh < t:
            day.ev(next_refresh, type="refresh", user=u.id, session=sid, app=app, channel=channel, ip=ip,
                   device=device, geo=geo)
            next_refresh += 15 * 60
        if vpn_t is not None and t >= vpn_t:
            vpn_t = None
            ip, geo = _vpn_exit(u, rng)
        if flap is not None and rng.random() < 0.04:  # Wi-Fi <-> cellular at the edge of coverage
            if ip == flap[0]:
                ip, geo = cell
            else:
                cell = (ip, geo)
                ip, geo = flap
        elif carrier_churn and rng.random() < 0.06 and ip != (flap or ("",))[0]:
            ip = _ip(u.carrier, rng, 16)
        if export_at is not None and t >= export_at:  # a batch of reports exported one by one
            export_at = None
            for _ in range(rng.randint(5, 30)):
                t += rng.uniform(5, 40)
                day.ev(t, type="activity", user=u.id, session=sid, channel=channel, ip=ip, device=device,
                       action="download", resource=f"/{app}/reports/{rng.randrange(5000)}",
                       bytes=int(rng.uniform(3, 25) * 1_000_000), status=200, geo=geo)
                times.append(t)
            continue
        action = rng.choice(actions)
        size = int(math.exp(rng.gauss(u.bytes_mu, 1.0)))
        if action == "download" and rng.random() < 0.05:
            size *= rng.randint(20, 200)  # a legitimately big file now and then
        day.ev(t, type="activity", user=u.id, session=sid, channel=channel, ip=ip, device=device, action=action,
               resource=f"/{app}/{rng.randrange(500)}", bytes=size, status=200 if rng.random() < 0.97 else 403,
               privileged=rng.random() < PRIVILEGED_P[u.role], geo=geo)
        times.append(t)
    if logout:
        day.ev(min(t, end) + 5, type="logout", user=u.id, session=sid, ip=ip, device=device, channel=channel)
    return times


def _attacker(rng: random.Random, home: str) -> tuple[str, dict, str]:
    """An origin far from ``home``: (ip, geo, device)."""
    cc = rng.choice([c for c in ATTACKER_ORIGINS if c != home])
    lat, lon, asns = ATTACKER_ORIGINS[cc]
    asn = rng.choice(asns)
    return _ip(asn, rng), _geo(cc, lat + rng.uniform(-1, 1), lon + rng.uniform(-1, 1), asn), "dev-" + _hex(rng)


def _user_day(seed: int, u: _User, d: int, hours: float, attack_rate: float, attack_after: float,
              out: list, seq: list, labels: list) -> None:
    rng = random.Random(f"{seed}:day:{u.id}:{d}")
    day = _Day(out, seq)
    day_start = T0 + d * 86400
    weekday = (d % 7) < 5
    if not weekday and not u.weekend:
        return
    # work window in UTC: local start hour minus the zone offset
    start_h = u.start_h
    if u.shift == "rotating":  # early, late and night shifts, two days each
        start_h = (7.0, 15.0, 23.0)[(d // 2 + int(u.id[1:])) % 3]
    elif u.shift == "night":
        start_h = 21.0 + (int(u.id[1:]) % 3)
    w0 = day_start + (start_h - u.tz) * 3600
    w1 = w0 + u.length_h * 3600
    travel = rng.random() < 0.01 and u.role != "service"
    if travel:
        trip = rng.choice([c for c in COUNTRIES if c != u.cc])
        tlat, tlon, _, tasns = COUNTRIES[trip]
        tasn = rng.choice(tasns)
        hotel_ip, tgeo = _ip(tasn, rng), _geo(trip, tlat + rng.uniform(-1, 1), tlon + rng.uniform(-1, 1), tasn)
        w0 += 6 * 3600  # arrives later that day: a plausible flight plus a few hours
    if rng.random() < 0.01:
        u.laptop = "dev-" + _hex(rng)  # a new laptop from today on
    if rng.random() < 0.02:
        u.home_ip = _ip(u.isp, rng)  # the home router got a new lease
    n = max(1, int(rng.random() + u.sessions_per_day))
    if rng.random() < 0.05:
        n += 1  # an evening check from home
    starts = sorted(rng.uniform(w0, max(w0 + 600, w1 - 1800)) for _ in range(n))
    sso = "sso-" + _hex(rng, 12) if u.role != "service" else None
    horizon = T0 + hours * 3600
    joined = T0 + u.join * 0.8 * hours * 3600 if u.join is not None else -math.inf
    candidates = []
    for i, st in enumerate(starts):
        if st >= horizon or st < joined:
            continue
        flap = vpn_at = None
        r = rng.random()
        if u.role == "service":
            channel, device, ip, asn = "api", u.laptop, u.office_ip, CORP_ASN
        elif (u.phone and r < 0.3) or (u.tablet and 0.3 <= r < 0.45):
            channel, device, asn = "mobile", (u.phone if r < 0.3 else u.tablet), u.carrier
            ip = _ip(asn, rng, 16)
        else:
            channel, device = "web", u.laptop
            if u.cookie_loss and rng.random() < 0.1:
                u.laptop = device = "dev-" + _hex(rng)  # cleared cookies: the browser has a new id
            at_office = u.office and rng.random() < 0.7
            if u.desktop and not at_office and rng.random() < 0.5:
                device = u.desktop
            asn = CORP_ASN if at_office else u.isp
            ip = u.office_ip if at_office else u.home_ip
        glat, glon, cc = u.lat, u.lon, u.cc
        roaming = travel and channel == "mobile" and rng.random() < 0.6  # egress at the home carrier
        if travel and not roaming:
            ip, asn, glat, glon, cc = hotel_ip, tgeo["asn"], tgeo["lat"], tgeo["lon"], trip
        geo = _geo(cc, glat + rng.uniform(-0.05, 0.05), glon + rng.uniform(-0.05, 0.05), asn)
        if channel == "mobile" and asn == u.carrier:
            geo = _carrier_geo(u, asn)
            if not travel and rng.random() < 0.3:
                flap = (u.home_ip, _geo(u.cc, u.lat, u.lon, u.isp))
        elif channel == "web" and asn == u.isp and not travel:
            if u.corp_vpn and rng.random() < 0.6:
                ip, geo = _corp_vpn(u, rng)
            elif u.vpn:
                q = rng.random()
                if q < 0.4:
                    ip, geo = _vpn_exit(u, rng)
                elif q < 0.65:
                    vpn_at = rng.uniform(0.1, 0.8)
        sid = "s-" + _hex(rng, 14)
        app = rng.choice(u.apps)
        minutes = rng.uniform(10, 120)
        ctx = dict(ip=ip, device=device, channel=channel, geo=geo, sid=sid, sso=sso, app=app)
        candidates.append((st, minutes, ctx, flap, vpn_at))
    attack = None
    if candidates and rng.random() < attack_rate and candidates[0][0] >= T0 + attack_after:
        attack = rng.choice(ATTACK_KINDS)
    for i, (st, minutes, ctx, flap, vpn_at) in enumerate(candidates):
        target = attack is not None and i == 0
        if target and attack == "unattended":
            _unattended(day, rng, u, st, minutes, ctx, labels)
            continue
        times = _session(day, rng, u, st, minutes, carrier_churn=ctx["channel"] == "mobile",
                         logout=rng.random() < 0.7, flap=flap, vpn_at=vpn_at, **ctx)
        if target and len(times) >= 6:
            t_att = times[len(times) // 3]
            if attack == "hijack":
                _hijack(day, rng, u, t_att, ctx, labels)
            elif attack == "impossible_travel":
                _impossible_travel(day, rng, u, t_att, ctx, labels)
            elif attack == "credential_stuffing":
                _stuffing(day, rng, u, t_att + rng.uniform(600, 3600), ctx, labels)
            elif attack == "exfiltration":
                _exfiltration(day, rng, u, t_att, ctx, labels)
            elif attack == "ids_flagged":
                _ids(day, rng, u, t_att, ctx, labels)


def _label(labels: list, kind: str, u: _User, session: str, start: float, **detail: Any) -> None:
    start = math.floor(start * 1000) / 1000  # the events carry millisecond timestamps
    labels.append({"kind": kind, "user": u.id, "session": session, "start": rfc3339(start), "start_ts": start,
                   "detail": detail})


def _hijack(day: _Day, rng: random.Random, u: _User, t: float, ctx: dict, labels: list) -> None:
    ip, geo, device = _attacker(rng, u.cc)
    r = rng.random()
    if r < 0.4:
        # a residential proxy in the victim's own country (what infostealer buyers rent to stay
        # clear of travel checks), half of the time with the stolen browser's device id as well
        clat, clon, _, asns = COUNTRIES[u.cc]
        asn = rng.choice(asns)
        ip, geo = _ip(asn, rng), _geo(u.cc, clat + rng.uniform(-2, 2), clon + rng.uniform(-2, 2), asn)
        if r < 0.2:
            device = ctx["device"]
    _label(labels, "hijack", u, ctx["sid"], t, ip=ip, country=geo["country"], device=device)
    for _ in range(rng.randint(5, 40)):
        day.ev(t, type="activity", user=u.id, session=ctx["sid"], channel=ctx["channel"], ip=ip, device=device,
               action=rng.choice(("read", "search", "download", "update")), resource=f"/{ctx['app']}/{rng.randrange(500)}",
               bytes=int(math.exp(rng.gauss(u.bytes_mu, 1.0))), status=200, privileged=rng.random() < 0.1, geo=geo)
        t += rng.expovariate(1 / 20.0)


def _impossible_travel(day: _Day, rng: random.Random, u: _User, t: float, ctx: dict, labels: list) -> None:
    ip, geo, device = _attacker(rng, u.cc)
    if rng.random() < 0.3:
        device = ctx["device"]  # a copied user agent / device id
    t += rng.uniform(5, 60) * 60
    sid = "s-" + _hex(rng, 14)
    _label(labels, "impossible_travel", u, sid, t, ip=ip, country=geo["country"])
    day.ev(t, type="login", user=u.id, session=sid, app=ctx["app"], channel="web", ip=ip, device=device,
           roles=u.roles, aal=1, geo=geo)
    for _ in range(rng.randint(3, 30)):
        t += rng.expovariate(1 / 30.0)
        day.ev(t, type="activity", user=u.id, session=sid, channel="web", ip=ip, device=device,
               action=rng.choice(("read", "search", "download")), resource=f"/{ctx['app']}/{rng.randrange(500)}",
               bytes=int(math.exp(rng.gauss(u.bytes_mu, 1.0))), status=200, geo=geo)


def _stuffing(day: _Day, rng: random.Random, u: _User, t: float, ctx: dict, labels: list) -> None:
    origin = rng.choice(list(ATTACKER_ORIGINS))
    lat, lon, asns = ATTACKER_ORIGINS[origin]
    for _ in range(rng.randint(8, 40)):
        asn = rng.choice(asns)
        day.ev(t, type="login_failed", user=u.id, app=ctx["app"], channel="web", ip=_ip(asn, rng),
               device="dev-" + _hex(rng), geo=_geo(origin, lat, lon, asn))
        t += rng.expovariate(1 / 6.0)
    asn = rng.choice(asns)
    ip, geo, device = _ip(asn, rng), _geo(origin, lat, lon, asn), "dev-" + _hex(rng)
    sid = "s-" + _hex(rng, 14)
    _label(labels, "credential_stuffing", u, sid, t, ip=ip, country=origin)
    day.ev(t, type="login", user=u.id, session=sid, app=ctx["app"], channel="web", ip=ip, device=device,
           roles=u.roles, aal=1, geo=geo)
    for _ in range(rng.randint(3, 25)):
        t += rng.expovariate(1 / 15.0)
        day.ev(t, type="activity", user=u.id, session=sid, channel="web", ip=ip, device=device,
               action=rng.choice(("read", "search", "download", "update")), resource=f"/{ctx['app']}/{rng.randrange(500)}",
               bytes=int(math.exp(rng.gauss(u.bytes_mu, 1.0))), status=200, geo=geo)


def _exfiltration(day: _Day, rng: random.Random, u: _User, t: float, ctx: dict, labels: list) -> None:
    _label(labels, "exfiltration", u, ctx["sid"], t)
    for _ in range(rng.randint(30, 150)):
        day.ev(t, type="activity", user=u.id, session=ctx["sid"], channel=ctx["channel"], ip=ctx["ip"],
               device=ctx["device"], action=rng.choice(("download", "export")),
               resource=f"/{ctx['app']}/export/{rng.randrange(10_000)}",
               bytes=int(rng.uniform(1, 50) * 1_000_000), status=200, privileged=rng.random() < 0.2, geo=ctx["geo"])
        t += rng.expovariate(1 / 1.5)


def _unattended(day: _Day, rng: random.Random, u: _User, st: float, minutes: float, ctx: dict, labels: list) -> None:
    times = _session(day, rng, u, st, min(minutes, 45), carrier_churn=False, logout=False, **ctx)
    left = (times[-1] if times else st) + 1
    _label(labels, "unattended", u, ctx["sid"], left)
    t = left
    for _ in range(int(rng.uniform(2, 6) * 12)):  # 2-6 hours of background refreshes every 5 min
        t += 300
        day.ev(t, type="refresh", user=u.id, session=ctx["sid"], app=ctx["app"], channel=ctx["channel"],
               ip=ctx["ip"], device=ctx["device"], automatic=True, geo=ctx["geo"])


def _ids(day: _Day, rng: random.Random, u: _User, t: float, ctx: dict, labels: list) -> None:
    _label(labels, "ids_flagged", u, ctx["sid"], t, ip=ctx["ip"])
    sig = rng.choice(("ET MALWARE Cobalt Strike Beacon Observed", "ET TROJAN Possible Emotet C2 Activity",
                      "ET POLICY Outbound SSH on non-standard port"))
    day.ev(t, type="alert", severity=rng.choice((1, 1, 2)), signature=sig, src_ip=ctx["ip"],
           dest_ip=f"198.51.100.{rng.randrange(1, 255)}")


def iter_stream(users: int = 1000, hours: float = 48.0, seed: int = 0, attack_rate: float = 0.03,
                attack_after: float | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("event", dict)`` in time order, and ``("label", dict)`` as soon as an attack is
    planned (before its events). Memory stays bounded by about two simulated days.

    ``attack_after`` (seconds from the start, default: half the run, at most 24 h) keeps
    the beginning attack-free, so profiles and calibration have history to compare against.
    """
    if attack_after is None:
        attack_after = min(hours * 3600 / 2, 86400.0)
    people = [_User(seed, i) for i in range(users)]
    heap: list = []
    seq = [0]
    days = int(math.ceil(hours / 24.0)) + 1
    for d in range(-1, days):
        out: list = []
        labels: list = []
        for u in people:
            _user_day(seed, u, d, hours, attack_rate, attack_after, out, seq, labels)
        for lab in labels:
            yield "label", lab
        for item in out:
            if item[0] >= T0 - 0.0:
                heapq.heappush(heap, item)
        # sessions generated for day d start inside day d (UTC, after shifting the work window), and
        # none of the later days reaches back before (d + 1) * 86400 - 4 h (zones up to UTC+10)
        flush_to = T0 + (d + 1) * 86400 - 4 * 3600 if d < days - 1 else math.inf
        while heap and heap[0][0] < flush_to:
            ts, _, ev = heapq.heappop(heap)
            ev["ts"] = rfc3339(ts)
            yield "event", ev


def iter_events(users: int = 1000, hours: float = 48.0, seed: int = 0, attack_rate: float = 0.03,
                attack_after: float | None = None) -> Iterator[dict[str, Any]]:
    """Canonical events only, in time order (for producing to Kafka at a rate)."""
    for kind, item in iter_stream(users, hours, seed, attack_rate, attack_after):
        if kind == "event":
            yield item


def simulate(users: int = 1000, hours: float = 48.0, seed: int = 0, attack_rate: float = 0.03,
             attack_after: float | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All events (time-ordered) and labels of one run."""
    events: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for kind, item in iter_stream(users, hours, seed, attack_rate, attack_after):
        (events if kind == "event" else labels).append(item)
    return events, labels
