"""A second, independent traffic generator, for held-out checks of the adaptive model.

It shares nothing with :mod:`models.simulate` but the canonical event format and the label
format (``kind, user, session, start, start_ts, detail``). Its distributions are other ones on
purpose, so a model tuned on the first generator meets traffic it has not seen:

* **a deployment with no history**: the stream starts cold and attacks begin after a few hours,
  not after a day; some attacked users are on their very first day;
* **users joining mid-stream** (new employees), whose first session is any time in the run;
* **shared corporate egress**: office sites behind a few NAT addresses shared by everyone there,
  and a full-tunnel corporate VPN that egresses at a site of the user's region (often another
  country than the user's home);
* **mobile carriers with rotating IPs** (carrier-grade NAT: a new address every few minutes,
  coarse geolocation at the carrier's hub city);
* **several devices per user** (one to four), device replacements, and privacy browsers whose
  device id changes often;
* **travellers** (real flight times, hotel networks or roaming on the home carrier),
  **commercial VPN users** (exits in other countries, switched on and off inside a session),
  **shift and night workers**, weekend and flexible workers, service accounts running 24/7,
  analysts whose legitimate bulk exports look like exfiltration;
* attacks: ``hijack`` (token replayed from a foreign host, or from a residential proxy in the
  victim's country, sometimes with a copied device id), ``impossible_travel`` (a login far away
  minutes after the user's last event), ``credential_stuffing`` (slow or fast failures from a
  botnet, then a login), ``exfiltration`` (machine-speed exports, a scripted crawl of
  medium-sized files, or a few huge archives), ``ids_flagged`` (an IDS alert on the host's
  address while the session is live).

Everything is a pure function of the arguments (per-user ``random.Random`` streams seeded by
strings), so a run is identical on every machine.

Examples
--------
>>> events, labels = simulate_heldout(users=40, days=1, seed=3, attack_rate=0.3)
>>> events == simulate_heldout(users=40, days=1, seed=3, attack_rate=0.3)[0]
True
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
True
>>> sessions = {e.get("session") for e in events}
>>> all(lab["session"] in sessions for lab in labels)
True
>>> sorted(labels[0])
['detail', 'kind', 'session', 'start', 'start_ts', 'user']
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone
from typing import Any

__all__ = ["simulate_heldout", "HELDOUT_KINDS", "H0"]

H0 = 1775433600.0  # 2026-04-06T00:00:00Z, a Monday
HELDOUT_KINDS = ("hijack", "impossible_travel", "credential_stuffing", "exfiltration", "ids_flagged")

# city: (country, lat, lon, utc offset in hours)
CITIES: dict[str, tuple[str, float, float, float]] = {
    "new_york": ("US", 40.71, -74.01, -4), "chicago": ("US", 41.88, -87.63, -5),
    "san_francisco": ("US", 37.77, -122.42, -7), "mexico_city": ("MX", 19.43, -99.13, -6),
    "buenos_aires": ("AR", -34.60, -58.38, -3), "london": ("GB", 51.51, -0.13, 1),
    "manchester": ("GB", 53.48, -2.24, 1), "munich": ("DE", 48.14, 11.58, 2),
    "hamburg": ("DE", 53.55, 9.99, 2), "prague": ("CZ", 50.08, 14.44, 2), "stockholm": ("SE", 59.33, 18.07, 2),
    "milan": ("IT", 45.46, 9.19, 2), "johannesburg": ("ZA", -26.20, 28.05, 2), "dubai": ("AE", 25.20, 55.27, 4),
    "manila": ("PH", 14.60, 120.98, 8), "seoul": ("KR", 37.57, 126.98, 9), "auckland": ("NZ", -36.85, 174.76, 12),
}
HOME_CITY_WEIGHTS = {"new_york": 14, "chicago": 8, "san_francisco": 8, "mexico_city": 6, "buenos_aires": 3,
                     "london": 12, "manchester": 4, "munich": 9, "hamburg": 4, "prague": 4, "stockholm": 3,
                     "milan": 4, "johannesburg": 2, "dubai": 2, "manila": 10, "seoul": 4, "auckland": 3}
# per country: (home ISP ASNs, mobile carrier ASNs); hub city of the carriers' geolocation
NETWORKS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "US": ((10796, 11427, 20001, 33363), (21928, 22394, 20057)), "MX": ((8151, 28548), (28403, 32098)),
    "AR": ((10318, 7303), (22927, 27747)), "GB": ((2856, 5378, 13285), (12576, 25135)),
    "DE": ((3320, 31334, 8881), (3209, 6805)), "CZ": ((5610, 16019), (44489,)), "SE": ((3301, 1257), (8473, 44034)),
    "IT": ((3269, 12874), (30722, 24608)), "ZA": ((5713, 37457), (36874, 16637)), "AE": ((5384,), (15802,)),
    "PH": ((9299, 4775), (132199, 10139)), "KR": ((4766, 9318), (17858, 9644)), "NZ": ((9500, 4771), (4648,)),
    "NL": ((1136,), (50266,)), "CH": ((3303,), (6730,)), "JP": ((2516,), (17676,)), "SG": ((9506,), (4773,)),
    "FR": ((3215,), (15557,)), "ES": ((3352,), (12430,)), "CA": ((812,), (577,)), "AU": ((1221,), (4804,)),
}
CARRIER_HUB = {"US": "chicago", "GB": "london", "DE": "hamburg"}
# corporate sites: city -> (corporate ASN, NAT egress addresses shared by everyone at the site)
SITES: dict[str, tuple[int, tuple[str, ...]]] = {
    "new_york": (396_100, ("198.18.10.1", "198.18.10.2", "198.18.10.3")),
    "london": (396_101, ("198.18.20.1", "198.18.20.2")),
    "munich": (396_102, ("198.18.30.1", "198.18.30.2")),
    "manila": (396_103, ("198.18.40.1", "198.18.40.2", "198.18.40.3")),
}
SITE_OF_REGION = {"US": "new_york", "MX": "new_york", "AR": "new_york", "GB": "london", "ZA": "london",
                  "AE": "london", "DE": "munich", "CZ": "munich", "SE": "munich", "IT": "munich",
                  "PH": "manila", "KR": "manila", "NZ": "manila"}
# commercial VPN exits: (country, lat, lon, ASN)
VPN_EXITS = (("NL", 52.37, 4.90, 9009), ("CH", 47.37, 8.54, 51852), ("SE", 59.33, 18.07, 39351),
             ("US", 40.71, -74.01, 9009), ("SG", 1.35, 103.82, 136787), ("JP", 35.68, 139.69, 9009))
HOSTING = (("RU", 55.75, 37.62, 49505), ("UA", 50.45, 30.52, 15497), ("BG", 42.70, 23.32, 34224),
           ("TR", 41.01, 28.98, 9121), ("BR", -23.55, -46.63, 262287), ("KP", 39.03, 125.75, 131279),
           ("IR", 35.69, 51.39, 58224), ("HK", 22.32, 114.17, 133752), ("US", 39.04, -77.49, 14061),
           ("DE", 50.11, 8.68, 24940), ("NL", 52.37, 4.90, 60781))
APPS = ("portal", "docs", "tickets", "finance", "source", "chat", "analytics", "hrm", "crm", "storage", "wiki")
ROLES = (("office", 55), ("developer", 14), ("support", 10), ("analyst", 7), ("ops", 5), ("admin", 4),
         ("service", 5))
ACTIONS = {
    "office": ("view", "view", "list", "search", "edit", "download", "comment"),
    "developer": ("view", "list", "push", "pull", "search", "build", "download"),
    "support": ("view", "view", "search", "reply", "edit", "list"),
    "analyst": ("view", "query", "query", "search", "download", "export"),
    "ops": ("view", "list", "restart", "deploy", "config", "search"),
    "admin": ("view", "list", "search", "grant", "invite", "config", "audit"),
    "service": ("get", "put", "list", "sync"),
}
PRIVILEGED_P = {"office": 0.002, "developer": 0.02, "support": 0.01, "analyst": 0.004, "ops": 0.08,
                "admin": 0.3, "service": 0.0}


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _pub_ip(asn: int, rng: random.Random, pool: int = 256) -> str:
    """An address in a /16 that belongs to ``asn``; ``pool`` bounds how many /24s it spreads over."""
    a = 20 + (asn * 31) % 180
    b = (asn * 17) % 256
    return f"{a}.{b}.{rng.randrange(pool) % 256}.{rng.randrange(2, 254)}"


def _fp(rng: random.Random) -> str:
    return "fp-" + "%012x" % rng.getrandbits(48)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 12742.0 * math.asin(min(1.0, math.sqrt(a)))


class _Net:
    """Where a request comes from: address, ASN, geolocation; ``rotate`` for carrier-grade NAT."""

    __slots__ = ("ip", "asn", "country", "lat", "lon", "kind", "rotate")

    def __init__(self, ip: str, asn: int, country: str, lat: float, lon: float, kind: str,
                 rotate: float = 0.0) -> None:
        self.ip, self.asn, self.country, self.lat, self.lon = ip, asn, country, lat, lon
        self.kind, self.rotate = kind, rotate

    def geo(self, rng: random.Random) -> dict[str, Any]:
        j = 0.3 if self.kind in ("mobile", "roaming") else 0.05
        return {"country": self.country, "lat": round(self.lat + rng.uniform(-j, j), 3),
                "lon": round(self.lon + rng.uniform(-j, j), 3), "asn": self.asn}


class _Person:
    """A user's stable traits, drawn from their own seeded stream."""

    def __init__(self, seed: int, idx: int, days: int) -> None:
        rng = self.rng = random.Random(f"heldout:{seed}:person:{idx}")
        self.id = f"h{idx:05d}"
        self.role = rng.choices([r for r, _ in ROLES], [w for _, w in ROLES])[0]
        self.city = rng.choices(list(HOME_CITY_WEIGHTS), list(HOME_CITY_WEIGHTS.values()))[0]
        self.cc, self.lat, self.lon, self.tz = CITIES[self.city]
        self.lat += rng.uniform(-0.3, 0.3)
        self.lon += rng.uniform(-0.3, 0.3)
        isps, carriers = NETWORKS[self.cc]
        self.isp = rng.choice(isps)
        self.carrier = rng.choice(carriers)
        self.home_ip = _pub_ip(self.isp, rng)
        self.site = self.city if self.city in SITES and rng.random() < 0.7 else None
        self.vpn_site = SITE_OF_REGION.get(self.cc, "new_york")
        self.corp_vpn = self.site is None and rng.random() < 0.35      # full-tunnel VPN from home
        self.privacy_vpn = rng.random() < 0.06
        self.privacy_browser = rng.random() < 0.03                     # device id changes often
        n_dev = rng.choices((1, 2, 3, 4), (30, 40, 20, 10))[0] if self.role != "service" else 1
        kinds = ["laptop", "phone", "desktop", "tablet"][:n_dev]
        if n_dev >= 2 and rng.random() < 0.3:
            kinds[0] = "desktop"
        self.devices = [(k, _fp(rng)) for k in kinds]
        self.dev_w = [rng.uniform(0.5, 3.0) if k != "phone" else rng.uniform(0.3, 1.5) for k in kinds]
        r = rng.random()
        self.schedule = ("service" if self.role == "service" else
                         "day" if r < 0.68 else "shift" if r < 0.80 else "night" if r < 0.88 else "flex")
        self.start_h = rng.uniform(6.5, 10.5)
        self.length_h = rng.uniform(6.0, 10.5)
        self.shift0 = rng.randrange(3)
        self.weekend = rng.random() < 0.15
        self.rate = rng.gammavariate(2.0, 0.35) + 0.05                 # requests per active minute
        if self.role == "service":
            self.rate = rng.uniform(0.5, 3.0)
        self.bytes_mu = rng.gauss(math.log(30_000), 1.0)
        self.bytes_sd = rng.uniform(0.6, 1.4)
        self.apps = rng.sample(APPS, rng.randint(2, 6))
        self.roles = [self.role] + (["finance"] if rng.random() < 0.08 else [])
        self.sessions_per_day = rng.uniform(0.8, 3.5)
        self.join = 0.0 if rng.random() >= 0.22 else rng.uniform(0.0, max(0.0, days - 0.3)) * 86400
        self.trip: tuple[float, float, str] | None = None
        if self.role != "service" and rng.random() < 0.05 and days >= 2:
            dest = rng.choice([c for c in CITIES if CITIES[c][0] != self.cc])
            dep = rng.uniform(0.2, days - 0.8) * 86400
            self.trip = (dep, dep + rng.uniform(1.0, 3.0) * 86400, dest)
        if self.role == "service":
            asn = rng.choice((16509, 15169, 8075))
            self.service_net = _Net(_pub_ip(asn, rng, 8), asn, self.cc, self.lat, self.lon, "dc")


class _Out:
    def __init__(self) -> None:
        self.items: list[tuple[float, int, dict]] = []
        self.seq = 0

    def ev(self, ts: float, **f: Any) -> None:
        d = {"type": f.pop("type"), "ts": ts}
        d.update({k: v for k, v in f.items() if v is not None})
        self.seq += 1
        self.items.append((ts, self.seq, d))


class _Gen:
    def __init__(self, users: int, days: int, seed: int, attack_rate: float, attack_after_h: float) -> None:
        self.days, self.seed, self.attack_rate = days, seed, attack_rate
        self.attack_after = H0 + attack_after_h * 3600
        self.end = H0 + days * 86400
        self.people = [_Person(seed, i, days) for i in range(users)]
        self.out = _Out()
        self.labels: list[dict] = []

    # -- networks ------------------------------------------------------------------------------
    def _net(self, p: _Person, rng: random.Random, device_kind: str, t: float, away: str | None) -> _Net:
        if p.role == "service":
            return p.service_net
        if away is not None:
            cc, lat, lon, _ = CITIES[away]
            if device_kind == "phone" and rng.random() < 0.6:  # roaming: egress at the home carrier
                hub = CITIES[CARRIER_HUB.get(p.cc, p.city)]
                return _Net(_pub_ip(p.carrier, rng), p.carrier, p.cc, hub[1], hub[2], "roaming", 1 / 400)
            asn = rng.choice(NETWORKS[cc][0])
            if not hasattr(p, "_hotel") or p._hotel[0] != away:
                p._hotel = (away, _pub_ip(asn, rng, 4), asn)
            return _Net(p._hotel[1], p._hotel[2], cc, lat, lon, "hotel")
        if device_kind in ("phone", "tablet") and rng.random() < 0.75:
            hub = CITIES[CARRIER_HUB.get(p.cc, p.city)]
            return _Net(_pub_ip(p.carrier, rng), p.carrier, p.cc, hub[1], hub[2], "mobile", 1 / 300)
        local_h = ((t - H0) / 3600 + p.tz) % 24
        weekday = int(((t - H0) / 86400 + p.tz / 24) % 7) < 5
        if p.site is not None and weekday and 7 <= local_h <= 19 and rng.random() < 0.75:
            asn, egress = SITES[p.site]
            c = CITIES[p.site]
            return _Net(rng.choice(egress), asn, c[0], c[1], c[2], "office")
        if p.corp_vpn and rng.random() < 0.7:
            asn, egress = SITES[p.vpn_site]
            c = CITIES[p.vpn_site]
            return _Net(rng.choice(egress), asn, c[0], c[1], c[2], "corp_vpn")
        if p.privacy_vpn and rng.random() < 0.5:
            return self._vpn_exit(rng)
        if rng.random() < 0.02:  # the home router got a new lease
            p.home_ip = _pub_ip(p.isp, rng)
        return _Net(p.home_ip, p.isp, p.cc, p.lat, p.lon, "home")

    @staticmethod
    def _vpn_exit(rng: random.Random) -> _Net:
        cc, lat, lon, asn = rng.choice(VPN_EXITS)
        return _Net(_pub_ip(asn, rng, 16), asn, cc, lat, lon, "vpn")

    # -- one benign session ----------------------------------------------------------------------
    def _session(self, p: _Person, rng: random.Random, start: float, minutes: float, device: tuple[str, str],
                 net: _Net, sid: str, sso: str | None, app: str) -> dict[str, Any]:
        o = self.out
        dkind, dev = device
        channel = "api" if p.role == "service" else ("mobile" if dkind in ("phone", "tablet") else "web")
        if p.role != "service" and rng.random() < 0.04:
            for k in range(rng.choice((1, 1, 2, 3)) if rng.random() > 0.05 else rng.randint(4, 7)):
                o.ev(start - 40 + 7 * k, type="login_failed", user=p.id, ip=net.ip, device=dev, app=app,
                     channel=channel, geo=net.geo(rng))
        o.ev(start, type="login", user=p.id, session=sid, sso_session=sso, app=app, channel=channel, ip=net.ip,
             device=dev, roles=p.roles, aal=2 if p.role in ("admin", "ops") else rng.choice((1, 2)), geo=net.geo(rng))
        t, end = start, start + minutes * 60
        times: list[float] = []
        refresh_every = 600 if channel == "web" else 300
        next_refresh = start + refresh_every
        toggle = None
        if net.kind == "home" and p.privacy_vpn and rng.random() < 0.3:
            toggle = start + rng.uniform(0.1, 0.8) * minutes * 60  # the VPN switched on mid-session
        elif net.kind == "home" and p.corp_vpn and rng.random() < 0.2:
            toggle = start + rng.uniform(0.1, 0.8) * minutes * 60
        actions = ACTIONS[p.role]
        burst_left = 0
        while True:
            if burst_left > 0:
                gap = rng.uniform(0.5, 6.0)
                burst_left -= 1
            else:
                gap = rng.gammavariate(1.5, 60.0 / (1.5 * p.rate))
                if rng.random() < 0.03:
                    gap += rng.uniform(3, 40) * 60     # away from the desk
                if rng.random() < 0.05:
                    burst_left = rng.randint(3, 15)    # a flurry of clicks
            t += gap
            if t > end or t >= self.end:
                break
            while next_refresh < t:
                o.ev(next_refresh, type="refresh", user=p.id, session=sid, app=app, channel=channel, ip=net.ip,
                     device=dev, geo=net.geo(rng), automatic=True)
                next_refresh += refresh_every
            if toggle is not None and t >= toggle:
                toggle = None
                if p.privacy_vpn:
                    net = self._vpn_exit(rng)
                else:
                    asn, egress = SITES[p.vpn_site]
                    c = CITIES[p.vpn_site]
                    net = _Net(rng.choice(egress), asn, c[0], c[1], c[2], "corp_vpn")
            if net.rotate and rng.random() < gap * net.rotate:
                net = _Net(_pub_ip(net.asn, rng), net.asn, net.country, net.lat, net.lon, net.kind, net.rotate)
            action = rng.choice(actions)
            size = int(math.exp(rng.gauss(p.bytes_mu, p.bytes_sd)))
            if action in ("download", "export") and rng.random() < 0.04:
                size *= rng.randint(10, 300)
            o.ev(t, type="activity", user=p.id, session=sid, channel=channel, ip=net.ip, device=dev, action=action,
                 resource=f"/{app}/{rng.randrange(2000)}", bytes=size, status=200 if rng.random() < 0.96 else 404,
                 privileged=rng.random() < PRIVILEGED_P[p.role], geo=net.geo(rng))
            times.append(t)
        if p.role == "analyst" and times and rng.random() < 0.06:   # a legitimate bulk export
            t2 = times[len(times) // 2]
            for _ in range(rng.randint(8, 40)):
                t2 += rng.uniform(4, 30)
                o.ev(t2, type="activity", user=p.id, session=sid, channel=channel, ip=net.ip, device=dev,
                     action="export", resource=f"/{app}/reports/{rng.randrange(10_000)}",
                     bytes=int(rng.uniform(2, 25) * 1_000_000), status=200, geo=net.geo(rng))
        if rng.random() < 0.6 and t < self.end:
            o.ev(min(t, end) + 3, type="logout", user=p.id, session=sid, ip=net.ip, device=dev, channel=channel)
        return {"times": times, "net": net, "device": dev, "channel": channel, "app": app, "sid": sid}

    # -- a user's day ------------------------------------------------------------------------------
    def _windows(self, p: _Person, rng: random.Random, d: int) -> list[tuple[float, float]]:
        """Working windows (UTC start, hours) of day ``d`` in the user's local time."""
        day0 = H0 + d * 86400 - p.tz * 3600
        dow = d % 7
        if p.schedule == "service":
            return [(H0 + d * 86400 + h * 3600 + rng.uniform(0, 300), 0.9) for h in range(0, 24, 2)]
        if p.schedule == "shift":
            k = (p.shift0 + d // 2) % 3
            return [] if dow == (p.shift0 * 2) % 7 else [(day0 + (6 + 8 * k + rng.uniform(-0.5, 0.5)) * 3600, 8.0)]
        if p.schedule == "night":
            return [] if dow in (5, 6) else [(day0 + (21 + rng.uniform(-1, 1)) * 3600, rng.uniform(6, 8.5))]
        if p.schedule == "flex":
            return [(day0 + rng.uniform(8, 22) * 3600, rng.uniform(1, 4)) for _ in range(rng.randint(1, 3))]
        if dow >= 5 and not p.weekend:
            return [(day0 + rng.uniform(10, 20) * 3600, 0.6)] if rng.random() < 0.1 else []
        return [(day0 + (p.start_h + rng.uniform(-0.7, 0.7)) * 3600, p.length_h * rng.uniform(0.85, 1.1))]

    def _day(self, p: _Person, d: int) -> None:
        rng = random.Random(f"heldout:{self.seed}:day:{p.id}:{d}")
        if rng.random() < 0.01 and p.role != "service":   # a replaced laptop or phone
            i = rng.randrange(len(p.devices))
            p.devices[i] = (p.devices[i][0], _fp(rng))
        plans = []
        for w0, hours in self._windows(p, rng, d):
            n = 1 if p.schedule == "service" else max(1, int(rng.random() + p.sessions_per_day * hours / 8.0))
            for _ in range(n):
                st = w0 + rng.uniform(0, max(600.0, hours * 3600 - 1200))
                minutes = 50.0 if p.schedule == "service" else min(hours * 60, rng.lognormvariate(math.log(35), 0.8))
                plans.append((st, minutes))
        plans.sort()
        sso = None if p.role == "service" else "sso-%016x" % rng.getrandbits(64)
        attacked = False
        for st, minutes in plans:
            if st < H0 + p.join or st < H0 or st >= self.end:
                continue
            away = None
            if p.trip is not None:
                dep, ret, dest = p.trip
                c0, c1 = CITIES[p.city], CITIES[dest]
                flight = (_km(c0[1], c0[2], c1[1], c1[2]) / 800.0 + 2.0) * 3600
                if dep <= st < dep + flight or ret <= st < ret + flight:
                    continue  # in the air
                if dep + flight <= st < ret:
                    away = dest
            if p.role != "service" and p.privacy_browser and rng.random() < 0.5:
                k = 0
                p.devices[k] = (p.devices[k][0], _fp(rng))
            device = rng.choices(p.devices, p.dev_w)[0]
            net = self._net(p, rng, device[0], st, away)
            sid = "hs-%016x" % rng.getrandbits(64)
            info = self._session(p, rng, st, minutes, device, net, sid, sso, rng.choice(p.apps))
            if (not attacked and len(info["times"]) >= 6 and info["times"][0] >= self.attack_after
                    and rng.random() < self.attack_rate):
                attacked = True
                self._attack(p, rng, info)

    # -- attacks -------------------------------------------------------------------------------
    def _label(self, kind: str, p: _Person, session: str, start: float, **detail: Any) -> None:
        start = math.floor(start * 1000) / 1000
        self.labels.append({"kind": kind, "user": p.id, "session": session, "start": _rfc3339(start),
                            "start_ts": start, "detail": detail})

    def _attacker_net(self, rng: random.Random, p: _Person, far_km: float = 0.0) -> _Net:
        choices = [h for h in HOSTING if h[0] != p.cc and _km(p.lat, p.lon, h[1], h[2]) >= far_km]
        cc, lat, lon, asn = rng.choice(choices)
        return _Net(_pub_ip(asn, rng, 64), asn, cc, lat + rng.uniform(-0.5, 0.5), lon + rng.uniform(-0.5, 0.5), "attacker")

    def _proxy_net(self, rng: random.Random, p: _Person) -> _Net:
        """A residential proxy in the victim's own country (another ISP than theirs when there is one)."""
        isps = [a for a in NETWORKS[p.cc][0] if a != p.isp] or list(NETWORKS[p.cc][0])
        asn = rng.choice(isps)
        city = rng.choice([c for c, v in CITIES.items() if v[0] == p.cc])
        c = CITIES[city]
        return _Net(_pub_ip(asn, rng), asn, p.cc, c[1], c[2], "proxy")

    def _attack(self, p: _Person, rng: random.Random, info: dict) -> None:
        kinds = list(HELDOUT_KINDS)
        if info["net"].kind not in ("home", "hotel", "dc"):
            kinds.remove("ids_flagged")  # an IDS sees a host, not a NAT shared by a whole office
        kind = rng.choice(kinds)
        times = info["times"]
        t = times[rng.randrange(len(times) // 4, max(len(times) // 4 + 1, 3 * len(times) // 4))]
        getattr(self, "_" + kind)(p, rng, t, info)

    def _requests(self, p: _Person, rng: random.Random, t: float, sid: str, net: _Net, dev: str, channel: str,
                  app: str, n: int, mean_gap: float, priv: float = 0.05) -> None:
        for _ in range(n):
            self.out.ev(t, type="activity", user=p.id, session=sid, channel=channel, ip=net.ip, device=dev,
                        action=rng.choice(("view", "list", "search", "download")),
                        resource=f"/{app}/{rng.randrange(2000)}", bytes=int(math.exp(rng.gauss(p.bytes_mu, 1.0))),
                        status=200, privileged=rng.random() < priv, geo=net.geo(rng))
            t += rng.expovariate(1.0 / mean_gap)

    def _hijack(self, p: _Person, rng: random.Random, t: float, info: dict) -> None:
        r = rng.random()
        net = self._attacker_net(rng, p) if r < 0.55 else self._proxy_net(rng, p)
        dev = info["device"] if r >= 0.85 else _fp(rng)   # some replay the victim's device id too
        self._label("hijack", p, info["sid"], t, ip=net.ip, country=net.country, device=dev,
                    variant="foreign" if r < 0.55 else "proxy" if r < 0.85 else "proxy_copied_device")
        self._requests(p, rng, t, info["sid"], net, dev, info["channel"], info["app"], rng.randint(4, 50),
                       rng.uniform(4.0, 30.0), priv=0.15)

    def _impossible_travel(self, p: _Person, rng: random.Random, t: float, info: dict) -> None:
        net = self._attacker_net(rng, p, far_km=2500.0)
        dev = info["device"] if rng.random() < 0.25 else _fp(rng)
        t += rng.uniform(2, 40) * 60
        sid = "hs-%016x" % rng.getrandbits(64)
        self._label("impossible_travel", p, sid, t, ip=net.ip, country=net.country)
        self.out.ev(t, type="login", user=p.id, session=sid, app=info["app"], channel="web", ip=net.ip, device=dev,
                    roles=p.roles, aal=1, geo=net.geo(rng))
        self._requests(p, rng, t + rng.uniform(1, 20), sid, net, dev, "web", info["app"], rng.randint(2, 30),
                       rng.uniform(5.0, 40.0))

    def _credential_stuffing(self, p: _Person, rng: random.Random, t: float, info: dict) -> None:
        t += rng.uniform(5, 90) * 60
        slow = rng.random() < 0.4
        for _ in range(rng.randint(10, 60)):
            net = self._attacker_net(rng, p) if rng.random() < 0.6 else self._proxy_net(rng, p)
            self.out.ev(t, type="login_failed", user=p.id, app=info["app"], channel="web", ip=net.ip, device=_fp(rng),
                        geo=net.geo(rng))
            t += rng.expovariate(1 / (25.0 if slow else 3.0))
        net = self._attacker_net(rng, p) if rng.random() < 0.6 else self._proxy_net(rng, p)
        sid = "hs-%016x" % rng.getrandbits(64)
        self._label("credential_stuffing", p, sid, t, ip=net.ip, country=net.country)
        dev = _fp(rng)
        self.out.ev(t, type="login", user=p.id, session=sid, app=info["app"], channel="web", ip=net.ip, device=dev,
                    roles=p.roles, aal=1, geo=net.geo(rng))
        self._requests(p, rng, t + rng.uniform(1, 10), sid, net, dev, "web", info["app"], rng.randint(3, 30),
                       rng.uniform(3.0, 25.0))

    def _exfiltration(self, p: _Person, rng: random.Random, t: float, info: dict) -> None:
        net, dev, sid = info["net"], info["device"], info["sid"]
        variant = rng.choice(("machine_speed", "crawl", "archives"))
        self._label("exfiltration", p, sid, t, variant=variant)
        if variant == "machine_speed":
            n, gap, lo, hi = rng.randint(25, 120), 1.2, 1_000_000, 40_000_000
        elif variant == "crawl":
            n, gap, lo, hi = rng.randint(80, 300), 0.6, 200_000, 2_000_000
        else:
            n, gap, lo, hi = rng.randint(3, 8), 20.0, 200_000_000, 2_000_000_000
        for _ in range(n):
            self.out.ev(t, type="activity", user=p.id, session=sid, channel=info["channel"], ip=net.ip, device=dev,
                        action=rng.choice(("download", "export", "view")),
                        resource=f"/{info['app']}/{rng.randrange(100_000)}", bytes=int(rng.uniform(lo, hi)),
                        status=200, privileged=rng.random() < 0.1, geo=net.geo(rng))
            t += rng.expovariate(1 / gap)

    def _ids_flagged(self, p: _Person, rng: random.Random, t: float, info: dict) -> None:
        self._label("ids_flagged", p, info["sid"], t, ip=info["net"].ip)
        self.out.ev(t, type="alert", severity=rng.choice((1, 1, 2)), src_ip=info["net"].ip,
                    signature=rng.choice(("ET MALWARE QakBot CnC Beacon", "ET TROJAN AsyncRAT Checkin",
                                          "ET EXPLOIT Possible Log4j RCE Attempt Outbound")),
                    dest_ip=f"203.0.113.{rng.randrange(1, 255)}")

    def run(self) -> tuple[list[dict], list[dict]]:
        for d in range(-1, self.days):
            for p in self.people:
                self._day(p, d)
        items = sorted(self.out.items, key=lambda x: (x[0], x[1]))
        events = []
        for ts, _, ev in items:
            if H0 <= ts < self.end + 3600:
                ev["ts"] = _rfc3339(ts)
                events.append(ev)
        return events, sorted(self.labels, key=lambda lab: lab["start_ts"])


def simulate_heldout(users: int = 1000, days: int = 3, seed: int = 0, attack_rate: float = 0.05,
                     attack_after_h: float = 3.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Events (time-ordered canonical dicts) and labels of one held-out run.

    ``attack_rate`` is the chance that a user-day with a long enough session carries one attack;
    no attack starts before ``attack_after_h`` hours into the stream.
    """
    return _Gen(users, days, seed, attack_rate, attack_after_h).run()
