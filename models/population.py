"""Organisation-wide priors for users with little or no history of their own.

A user's own history says how surprising a new country, network or device is *for them*; a new
or thin-history user has no such history. :class:`Population` learns, from every user's
unflagged traffic, what the organisation looks like:

* **how often users bring a new value**, per attribute (IP range, ASN, country, device) and per
  *tenure* (a user's 2nd session is far more often on a new device than their 40th). The
  per-user novelty rate is shrunk towards this rate (a Beta prior), so one new value on day one
  is ordinary and the same on day forty is not;
* **how many users share a value**: a corporate NAT egress, a corporate VPN concentrator or a
  mobile carrier's address range is used by many people, an attacker's hosting network by none.
  ``familiarity(attr, value) = u / (u + shared_at)`` for ``u`` users seen adopting it; a value
  new to a user but familiar to the organisation is weak evidence;
* **typical volumes**: the log bytes per event and per active minute, and the events per active
  minute, so rate and volume features have a baseline before the user has one of their own;
* **networks that geolocate to several countries**: a commercial VPN provider, a corporate VPN
  with concentrators in several regions, an anycast or cloud network. Their geolocation says
  where the exit is, not where the person is (:meth:`Population.multi_country`).

The state is bounded (``cap`` values per attribute; the least shared are dropped first) and is
part of the scorer's global snapshot. Only unflagged events are learnt, so an attack does not
make its own network familiar.

Examples
--------
>>> pop = Population(shared_at=3.0)
>>> for u in range(40):                       # forty users behind one corporate egress
...     pop.adopt("asn", "64500")
>>> pop.adopt("asn", "49505")                 # one user on some other network
>>> round(pop.familiarity("asn", "64500"), 2), round(pop.familiarity("asn", "49505"), 2)
(0.93, 0.25)
>>> pop.sharers("asn", "64500"), pop.sharers("asn", "49505"), pop.sharers("device", "d1")
(40, 1, 0)
>>> pop.familiarity("asn", "never-seen")
0.0
>>> for _ in range(500):                      # second sessions: half on a new device
...     pop.trial("device", 1, novel=_ % 2 == 0)
>>> for _ in range(500):                      # established users: rarely
...     pop.trial("device", 40, novel=_ % 50 == 0)
>>> round(pop.novelty_rate("device", 1), 2), round(pop.novelty_rate("device", 40), 2)
(0.49, 0.03)
>>> pop.locate("9009", "NL"); pop.locate("9009", "NL"); pop.multi_country("9009")
False
>>> pop.locate("9009", "JP"); pop.multi_country("9009"), pop.multi_country("3320")
(True, False)
"""

from __future__ import annotations

import math

__all__ = ["Population", "ATTRS"]

ATTRS = ("ip", "asn", "country", "device")
# starting rates before the organisation has shown its own (pseudo-counts below)
_R0 = {"ip": 0.35, "asn": 0.2, "country": 0.04, "device": 0.2}
_BUCKETS = 7
_SPREAD = 4


def _bucket(n: int) -> int:
    """Tenure bucket of a user's ``n``-th trial: 0, 1, 2-3, 4-7, 8-15, 16-31, 32+.

    >>> [_bucket(n) for n in (0, 1, 2, 3, 4, 8, 31, 32, 500)]
    [0, 1, 2, 2, 3, 4, 5, 6, 6]
    """
    return 0 if n <= 0 else min(_BUCKETS - 1, n.bit_length())


class Population:
    """Novelty rates by tenure, shared values and typical volumes, learnt across users.

    Parameters
    ----------
    cap
        Values remembered per attribute (the least shared are forgotten first).
    shared_at
        Users sharing a value at which its familiarity is 0.5.
    prior_trials
        Pseudo-count of the starting novelty rates (how fast the organisation's own rates take over).
    """

    def __init__(self, cap: int = 20_000, shared_at: float = 3.0, prior_trials: float = 20.0) -> None:
        self.cap, self.shared_at = cap, shared_at
        self.trials = {a: [prior_trials] * _BUCKETS for a in ATTRS}
        self.novel = {a: [prior_trials * _R0[a]] * _BUCKETS for a in ATTRS}
        self.users: dict[str, dict[str, int]] = {a: {} for a in ATTRS if a != "device"}
        # log1p(bytes) per byte-carrying event: [mean, var, n]
        self.event_bytes = [math.log1p(20_000), 2.0, 0]
        # per closed active minute: [mean events, mean log1p(bytes), n]
        self.minute = [1.0, math.log1p(20_000), 0]
        # ASN -> the countries its addresses were geolocated in (at most _SPREAD of them)
        self.spread: dict[str, list[str]] = {}

    # -- novelty -------------------------------------------------------------------------------
    def novelty_rate(self, attr: str, n: int) -> float:
        """Share of users' ``n``-th trials (sessions, or changes inside one) that brought a new value."""
        b = _bucket(n)
        return self.novel[attr][b] / self.trials[attr][b]

    def trial(self, attr: str, n: int, novel: bool) -> None:
        b = _bucket(n)
        t, k = self.trials[attr], self.novel[attr]
        t[b] += 1.0
        if novel:
            k[b] += 1.0
        if t[b] > 50_000:  # stay adaptive, keep the numbers small
            t[b] /= 2.0
            k[b] /= 2.0

    # -- shared values -------------------------------------------------------------------------
    def adopt(self, attr: str, value: str) -> None:
        """One more user started using ``value``."""
        d = self.users.get(attr)
        if d is None:
            return
        d[value] = d.get(value, 0) + 1
        if len(d) > self.cap:
            keep = sorted(d.items(), key=lambda kv: kv[1], reverse=True)[: self.cap // 2]
            d.clear()
            d.update(keep)

    def sharers(self, attr: str, value: str) -> int:
        """How many users were seen adopting ``value`` (0 for an attribute not counted)."""
        d = self.users.get(attr)
        return d.get(value, 0) if d is not None else 0

    def familiarity(self, attr: str, value: str) -> float:
        """0 for a value nobody uses, towards 1 for one shared by many users."""
        d = self.users.get(attr)
        u = d.get(value, 0) if d is not None else 0
        return u / (u + self.shared_at) if u else 0.0

    # -- where networks geolocate ------------------------------------------------------------
    def locate(self, asn: str, country: str) -> None:
        """An event from ``asn`` geolocated in ``country``."""
        got = self.spread.get(asn)
        if got is None:
            if len(self.spread) >= self.cap:
                self.spread = {k: v for k, v in self.spread.items() if len(v) > 1}  # keep the informative ones
                if len(self.spread) >= self.cap:
                    return
            self.spread[asn] = [country]
        elif country not in got and len(got) < _SPREAD:
            got.append(country)

    def multi_country(self, asn: str) -> bool:
        """Whether the organisation saw ``asn`` in two or more countries (VPN, cloud, anycast)."""
        got = self.spread.get(asn)
        return got is not None and len(got) > 1

    # -- volumes -------------------------------------------------------------------------------
    def learn_event_bytes(self, nbytes: float, log1p_bytes: float | None = None) -> None:
        s = self.event_bytes
        n = s[2] = s[2] + 1
        a = 1.0 / n if n < 1000 else 0.001
        x = math.log1p(nbytes) if log1p_bytes is None else log1p_bytes
        d = x - s[0]
        s[0] += a * d
        s[1] = (1 - a) * (s[1] + a * d * d)

    def learn_minute(self, count: float, nbytes: float, log1p_bytes: float | None = None) -> None:
        m = self.minute
        m[2] += 1
        a = max(1.0 / m[2], 0.001)
        m[0] += a * (count - m[0])
        m[1] += a * ((math.log1p(nbytes) if log1p_bytes is None else log1p_bytes) - m[1])

    @property
    def ready(self) -> bool:
        """Volumes are known once a few hundred events and minutes were seen."""
        return self.event_bytes[2] >= 200 and self.minute[2] >= 50
