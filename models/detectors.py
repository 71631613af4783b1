"""Anomaly detectors over the feature dicts of :mod:`models.features`.

All detectors share River's verbs: ``learn_one(x)`` and ``score_one(x) -> float`` (higher is more
anomalous, scale specific to the detector; :mod:`models.calibration` puts them on one scale).

* :class:`UserBaseline`: the per-user detector. The features already compare the event with *this
  user's* history (surprisal of a new device, rate against the user's EWMA, ...); the detector adds
  up documented, capped contributions. It needs no global training, explains itself
  (:meth:`UserBaseline.contributions`) and costs a few microseconds.
* :class:`RiverDetector`: a River anomaly detector on the same features after a log squash:
  ``preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(...)`` (the starting point),
  ``anomaly.LODA``, ``anomaly.LocalOutlierFactor``. These are *global*: they learn what is rare
  across everybody.
* :class:`PerFeatureSAD`: river's ``StandardAbsoluteDeviation`` per feature, summed.
* :class:`Protected`: River's ``protect_anomaly_detector`` idea for any of the above plus a
  calibrator: score, calibrate, and learn only from events that were not flagged.

Examples
--------
>>> from models.calibration import TailCalibrator
>>> det = Protected(UserBaseline(), TailCalibrator(warmup=10, refit_every=10), protect_at=0.5)
>>> quiet = dict.fromkeys(FEATURES, 0.0)
>>> for _ in range(200):
...     _ = det.process_one(dict(quiet, new_ip=0.3 * (_ % 3)))
>>> n = det.calibrator.n
>>> raw, value = det.process_one(dict(quiet, session_device_change=1.0, new_country=3.0))
>>> value > 0.5, det.calibrator.n == n      # flagged, so not learnt
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

from river import anomaly, preprocessing, stats

from models.features import FEATURES

__all__ = [
    "FEATURES",
    "UserBaseline",
    "RiverDetector",
    "PerFeatureSAD",
    "Protected",
    "STRONG",
    "FAMILY",
    "make_detector",
    "DETECTORS",
]


class UserBaseline:
    """Sum of per-feature risk contributions, each a documented transform of a per-user feature.

    ======================  ===================================================================
    contribution            transform (feature -> risk points)
    ======================  ===================================================================
    new_ip                  0.4 x surprisal (IPs churn; weak alone)
    new_asn                 0.8 x surprisal
    new_country             1.2 x surprisal
    new_device              1.0 x surprisal
    geo_kmh                 0 below 900 km/h, else 4 + log2(kmh / 900) (faster than an airliner)
    session_ip_change       1 (mobile networks do this)
    session_asn_change      2
    session_device_change   5 (a token moved to another machine)
    session_country_change  4
    session_alternation     5 (two networks interleaved on one token, one new to the user)
    session_new_network     3 (one device moved to a network the user never used, not a VPN's)
    session_interleaved     5 (two address ranges in turn on one token, one of them nobody else's)
    session_instant_move    6 (another range or network seconds after the last request, nobody else's)
    rate_ratio              1.5 x (r - 1.5), r = log2 of rate over baseline, if r > 1.5
    privileged_surprise     0.5 x (s - 3) if s > 3
    bytes_z                 0.5 x (z - 3) if z > 3 (one big file is normal now and then)
    bytes_minute            (b - 6) if b > 6 (64x the usual bytes per minute)
    failed_logins           2 x (f - 2) if f > 2 (more than ~3 recent failures)
    hour_surprise           0.7 x (h - 1) if h > 1
    unattended              2 x u
    ======================  ===================================================================

    Examples
    --------
    >>> ub = UserBaseline()
    >>> x = dict.fromkeys(FEATURES, 0.0)
    >>> ub.score_one(x)
    0.0
    >>> x.update(session_device_change=1.0, geo_kmh=9000.0)
    >>> round(ub.score_one(x), 2)
    12.32
    >>> {k: round(v, 2) for k, v in ub.contributions(x).items()}
    {'geo_kmh': 7.32, 'session_device_change': 5.0}
    """

    def learn_one(self, x: dict) -> None:
        return None  # the per-user state lives in the profile, learnt by the FeatureExtractor

    @staticmethod
    def contributions(x: dict, activity_only: bool = False) -> dict[str, float]:
        """Each feature's contribution (only those above 0). ``activity_only``: the event is known
        to show nothing but what the session does (rate, volume, privileged actions, hours, idling),
        so the other features are not looked at (``FeatureExtractor``'s steady-session shortcut)."""
        c: dict[str, float] = {}
        if not activity_only:
            UserBaseline._context(x, c)
        for k, at, w in _ACTIVITY_HINGES if activity_only else _HINGES:  # weight x (value - threshold) above it
            v = x[k]
            if v > at:
                c[k] = w * (v - at)
        v = x["unattended"]  # a steady refresh shows what the session does too: how long it idled
        if v:
            c["unattended"] = 2.0 * v
        return c

    @staticmethod
    def _context(x: dict, c: dict[str, float]) -> None:
        """Contributions of where the event comes from and how it logs in."""
        v = x["new_ip"]
        if v:
            c["new_ip"] = 0.4 * v
        v = x["new_asn"]
        if v:
            c["new_asn"] = 0.8 * v
        v = x["new_country"]
        if v:
            c["new_country"] = 1.2 * v
        v = x["new_device"]
        if v:
            c["new_device"] = 1.0 * v
        v = x["geo_kmh"]
        if v > 900.0:
            c["geo_kmh"] = 4.0 + math.log2(v / 900.0)
        if x["session_ip_change"]:
            c["session_ip_change"] = 1.0
        if x["session_asn_change"]:
            c["session_asn_change"] = 2.0
        if x["session_device_change"]:
            c["session_device_change"] = 5.0
        if x["session_country_change"]:
            c["session_country_change"] = 4.0
        if x["session_alternation"]:
            c["session_alternation"] = 5.0
        if x["session_new_network"]:
            c["session_new_network"] = 3.0
        if x["session_interleaved"]:
            c["session_interleaved"] = 5.0
        if x["session_instant_move"]:
            c["session_instant_move"] = 6.0

    def score_one(self, x: dict) -> float:
        return sum(self.contributions(x).values(), 0.0)

    @staticmethod
    def grade(x: dict, contrib: dict[str, float], in_session: bool = False) -> str:
        """How strong the evidence is: ``"strong"``, ``"combined"`` or ``"weak"``.

        * **strong**: one signal that on its own means someone else holds the session or the
          account (see :data:`STRONG`): the token on another device, or on two networks or two
          address ranges in turn, impossible travel to a network nobody here uses, a burst of
          failed logins before this login, a volume or rate far beyond the user's;
        * **combined**: two independent kinds of observed behaviour (:data:`FAMILY`) at once,
          e.g. a country change inside the session with a volume burst, or failed logins with a
          country change. Rate, volume and privileged actions are one kind (what the session
          does: a busy minute has more of each). Values that are merely new (:data:`NOVELTY`), network moves
          (addresses and ASNs change legitimately, a VPN switched on changes both) and habits
          (hours drift, shifts rotate) never make evidence combined;
        * **weak**: anything else, e.g. a new device, a trip (new country, network and
          address), one big download: worth a step-up, never a revocation.

        A volume burst is strong only with a request burst (``rate_ratio >= STRONG_BURST``) at
        machine pace (``minute_events >= MACHINE_PACE``): one big file is not exfiltration, and a
        person exporting reports one by one clicks a few times a minute, a script dozens of times;
        a request burst alone is strong only at machine pace too. A burst of failed logins is
        strong only when they did not all come from the device that then logs in (a client
        retrying a stale saved password) and the login comes from an address range new to the
        user (from the owner's own network it is the owner, on a new laptop as much as on the old
        one, while someone else guesses elsewhere). Impossible travel is strong on a new login from a device the
        user has not used, or with another device inside the session; not when one device moves
        network inside its own session (``in_session``: the event belongs to a session already
        seen), which is what switching a VPN on looks like, nor on a new login from a device the
        user already uses (a VPN or a trip more often than a second person: it steps up).

        >>> x = dict(dict.fromkeys(FEATURES, 0.0), minute_share=1.0)   # the session made its minute
        >>> UserBaseline.grade(dict(x, new_device=2.0), {"new_device": 2.0})
        'weak'
        >>> UserBaseline.grade(dict(x, session_device_change=1.0), {"session_device_change": 5.0})
        'strong'
        >>> UserBaseline.grade(dict(x, bytes_minute=8.0, session_country_change=1.0),
        ...                    {"bytes_minute": 2.0, "session_country_change": 4.0})
        'combined'
        >>> UserBaseline.grade(dict(x, bytes_minute=8.0, privileged_surprise=6.0),
        ...                    {"bytes_minute": 2.0, "privileged_surprise": 1.5})
        'weak'
        >>> far = dict(x, geo_kmh=5e4, new_device=1.5)
        >>> UserBaseline.grade(far, {"geo_kmh": 9.8}), UserBaseline.grade(far, {"geo_kmh": 9.8}, in_session=True)
        ('strong', 'weak')
        >>> UserBaseline.grade(dict(x, geo_kmh=5e4), {"geo_kmh": 9.8})   # from the user's own device
        'weak'
        >>> UserBaseline.grade(dict(x, bytes_minute=12.0), {"bytes_minute": 6.0})   # one big file
        'weak'
        >>> burst = dict(x, bytes_minute=12.0, rate_ratio=3.0)
        >>> UserBaseline.grade(dict(burst, minute_events=6.0), {"bytes_minute": 6.0, "rate_ratio": 2.25}), \\
        ...     UserBaseline.grade(dict(burst, minute_events=40.0), {"bytes_minute": 6.0, "rate_ratio": 2.25})
        ('weak', 'strong')
        >>> UserBaseline.grade(dict(burst, minute_events=40.0, minute_share=0.1),   # another session's burst
        ...                    {"bytes_minute": 6.0, "rate_ratio": 2.25})
        'weak'
        >>> UserBaseline.grade(dict(x, failed_logins=3.2, failed_own_device=1.0), {"failed_logins": 2.4})
        'weak'
        >>> UserBaseline.grade(dict(x, failed_logins=3.2), {"failed_logins": 2.4}), \\
        ...     UserBaseline.grade(dict(x, failed_logins=3.2, new_device=2.0), {"failed_logins": 2.4}), \\
        ...     UserBaseline.grade(dict(x, failed_logins=3.2, new_ip=2.0), {"failed_logins": 2.4})
        ('weak', 'weak', 'strong')
        >>> UserBaseline.grade(dict(x, geo_kmh=5e4, failed_logins=3.2, failed_own_device=1.0),
        ...                    {"geo_kmh": 9.8, "failed_logins": 2.4})   # one phone, far away, retrying
        'weak'
        >>> UserBaseline.grade(dict(x, session_asn_change=1.0, session_country_change=1.0),
        ...                    {"session_asn_change": 2.0, "session_country_change": 4.0})   # a VPN
        'weak'
        """
        for k, at in STRONG.items():
            if x[k] >= at and k in contrib:
                if k == "bytes_minute" and (x["rate_ratio"] < STRONG_BURST or x["minute_events"] < MACHINE_PACE):
                    continue  # one big file, or a person's batch of exports
                if k == "rate_ratio" and x["minute_events"] < MACHINE_PACE:
                    continue  # a slow user working briskly
                if k == "failed_logins" and not x["new_ip"]:
                    # the owner logging in from their own network (a new device there is still
                    # theirs) while someone else guesses elsewhere
                    continue
                if _explained(k, x, in_session):
                    continue
                return "strong"
        observed: set[str] = set()
        for k, c in contrib.items():
            if c >= 1.0 and k not in NOVELTY and not _explained(k, x, in_session):
                observed.add(FAMILY[k])
        if len(observed - _NOT_COMBINED) >= 2:
            return "combined"
        return "weak"

    @staticmethod
    def everyday(x: dict, contrib: dict[str, float], in_session: bool = False) -> bool:
        """Whether weak evidence is of a kind users show every day (a new phone, a trip, a VPN,
        one big file), to be rated against how common it is among sessions.

        Impossible travel is not: a new login from the user's own device, faster than an airliner
        from the last location, to a network nobody here uses. It is weak (the device may be the
        user's behind a VPN nobody here uses yet, or a copied device id; the person proves which
        at the step-up), but no everyday habit explains it, so it is rated on the per-event scale
        and steps up even when many sessions carry novelty. A device that moved network inside its
        own session (a VPN switched on) and a shared network's geolocation (``geo_uncertain``)
        stay everyday.

        Nor is a token used from another address seconds after the session's last request, in a
        range nobody else here uses, off the mobile channel (``session_instant_move``): a laptop
        takes longer than that to change network, a person's VPN exit or office egress is shared,
        and a phone is left out; what is left is a second holder working at the same time, or a
        VPN switched on in the middle of a page load, which the step-up tells apart.

        >>> x = dict(dict.fromkeys(FEATURES, 0.0), minute_share=1.0)
        >>> far = dict(x, geo_kmh=5e4, new_country=2.0)
        >>> c = {"geo_kmh": 9.8, "new_country": 2.4}
        >>> UserBaseline.everyday(far, c), UserBaseline.everyday(far, c, in_session=True)
        (False, True)
        >>> UserBaseline.everyday(dict(far, geo_uncertain=1.0), c), UserBaseline.everyday(x, {"new_device": 2.0})
        (True, True)
        >>> UserBaseline.everyday(dict(x, session_instant_move=1.0), {"session_instant_move": 6.0}, in_session=True)
        False
        """
        if "session_instant_move" in contrib:
            return False
        return "geo_kmh" not in contrib or x["geo_kmh"] < STRONG["geo_kmh"] or bool(x["geo_uncertain"]) or in_session

    @staticmethod
    def explain(x: dict, contrib: dict[str, float], top: int = 4) -> list[str]:
        """The top contributions in words an operator reads.

        >>> x = dict(dict.fromkeys(FEATURES, 0.0), geo_kmh=9000.0, session_device_change=1.0)
        >>> UserBaseline.explain(x, UserBaseline.contributions(x))
        ['impossible travel: 9,000 km/h from the last location', "the session's token is used from another device"]
        """
        ranked = sorted(contrib.items(), key=lambda kv: kv[1], reverse=True)[:top]
        return [_words(k, x[k]) for k, c in ranked if c >= 0.3]


def _explained(k: str, x: dict, in_session: bool) -> bool:
    """Whether something other than a second person explains signal ``k`` (the user's own device,
    or another of the user's sessions), so it is neither strong nor one of the kinds that make
    evidence combined.

    * travel: the same device in the same session moved network (a VPN, not two people), or a
      new login far away comes from a device the user already uses (a VPN or a trip more often
      than a second person: it steps up, the person proves it), or the address cannot say where
      the person is (``geo_uncertain``: a network other users here use);
    * failed logins: every one came from the device that then logs in (a client retrying a
      stale saved password);
    * a volume or request burst this event's session did not make (``minute_share`` < 0.5): the
      user's minute is busy because of another of their sessions, and that session carries the
      evidence.
    """
    if k == "geo_kmh":
        return bool(x["geo_uncertain"]) or not x["session_device_change"] and (in_session or not x["new_device"])
    if k == "failed_logins":
        return bool(x["failed_own_device"])
    if k in _BURST:
        return x["minute_share"] < 0.5
    return False


_BURST = frozenset({"rate_ratio", "bytes_minute"})


#: (feature, threshold, weight) of the contributions that start above a threshold (table above)
_HINGES = (("rate_ratio", 1.5, 1.5), ("privileged_surprise", 3.0, 0.5), ("bytes_z", 3.0, 0.5),
           ("bytes_minute", 6.0, 1.0), ("failed_logins", 2.0, 2.0), ("hour_surprise", 1.0, 0.7))
#: the hinges of what a session does (a failed login is no request)
_ACTIVITY_HINGES = tuple(h for h in _HINGES if h[0] != "failed_logins")

#: a feature value at or above which one signal alone is strong evidence
STRONG: dict[str, float] = {
    "session_device_change": 1.0,   # the token moved to another machine
    "session_alternation": 1.0,     # the token is used from two networks at once
    "session_interleaved": 1.0,     # the token is used from two address ranges in turn
    "geo_kmh": 900.0,               # faster than an airliner, to a network not shared here
    "failed_logins": 3.0,           # ~7 or more recent failures before this login
    "bytes_minute": 10.0,           # 1,024x the user's usual volume per minute
    "rate_ratio": 5.0,              # 32x the user's usual request rate
}
#: ``rate_ratio`` (log2 of the request rate over the user's) a volume burst needs to be strong
STRONG_BURST = 2.0
#: requests in one minute from which a burst is machine pace (one every 3 s, a minute long)
MACHINE_PACE = 20.0
_NOT_COMBINED = frozenset({"network", "habit"})
#: which kind of evidence each feature is (``grade`` counts kinds, not features)
FAMILY: dict[str, str] = {
    "new_ip": "network", "new_asn": "network", "session_ip_change": "network", "session_asn_change": "network",
    "new_country": "location", "session_country_change": "location", "geo_kmh": "location",
    "new_device": "device", "session_device_change": "device", "session_alternation": "holder",
    "session_new_network": "network", "session_interleaved": "holder", "session_instant_move": "network",
    "failed_logins": "auth", "bytes_z": "activity", "bytes_minute": "activity", "rate_ratio": "activity",
    "privileged_surprise": "activity", "hour_surprise": "habit", "unattended": "habit",
}
#: features that only say a value is new (not that something happened)
NOVELTY = frozenset({"new_ip", "new_asn", "new_country", "new_device"})


def _words(k: str, v: float) -> str:
    """One feature's evidence as an operator reads it.

    >>> _words("failed_logins", 4.0), _words("bytes_minute", 12.0)
    ('15 failed logins just before this login', "4,096x the user's usual data volume per minute")
    """
    if k == "geo_kmh":
        return f"impossible travel: {v:,.0f} km/h from the last location"
    if k == "failed_logins":
        return f"{2 ** v - 1:,.0f} failed logins just before this login"
    if k == "bytes_minute":
        return f"{2 ** v:,.0f}x the user's usual data volume per minute"
    if k == "rate_ratio":
        return f"{2 ** v:,.0f}x the user's usual request rate"
    return _PHRASES[k]


_PHRASES = {
    "new_ip": "an address range this user has not used",
    "new_asn": "a network (ASN) this user has not used",
    "new_country": "a country this user has not used",
    "new_device": "a device this user has not used",
    "session_ip_change": "the session's address range changed",
    "session_asn_change": "the session moved to another network (ASN)",
    "session_device_change": "the session's token is used from another device",
    "session_country_change": "the session moved to another country",
    "session_alternation": "the session's token is used from two networks at once",
    "session_new_network": "the session moved to a network this user has never used",
    "session_interleaved": "the session's token is used from two address ranges in turn",
    "session_instant_move": "the session's token is used from another address seconds after its last request",
    "privileged_surprise": "privileged actions this user rarely performs",
    "bytes_z": "a download far larger than the user's usual",
    "hour_surprise": "an hour this user rarely works",
    "unattended": "background refreshes long after the last activity",
}


# heavy-tailed features are squashed before a global model sees them
_SQUASH = frozenset({"geo_kmh", "bytes_z", "bytes_minute", "privileged_surprise", "rate_ratio", "minute_events"})


def squash(x: dict) -> dict:
    """``log1p`` of the heavy-tailed features, so one 400,000 km/h outlier does not flatten the
    scale of a global model for everybody else.

    >>> squash({"geo_kmh": math.e - 1, "new_ip": 2.0})
    {'geo_kmh': 1.0, 'new_ip': 2.0}
    """
    return {k: (math.log1p(v) if k in _SQUASH else v) for k, v in x.items()}


class RiverDetector:
    """A River anomaly detector on squashed features (global: one model for all users).

    Examples
    --------
    >>> import random
    >>> rng, det = random.Random(0), make_detector("hst", seed=1)
    >>> normal = lambda: {"new_ip": rng.random(), "rate_ratio": rng.random()}
    >>> for _ in range(600):
    ...     det.learn_one(normal())
    >>> odd = dict(normal(), new_ip=4.0, rate_ratio=30.0)
    >>> det.score_one(normal()) < det.score_one(odd)
    True
    """

    def __init__(self, model: Any, name: str = "") -> None:
        self.model, self.name = model, name

    def learn_one(self, x: dict) -> None:
        self.model.learn_one(squash(x))

    def score_one(self, x: dict) -> float:
        return float(self.model.score_one(squash(x)))


class PerFeatureSAD:
    """River's univariate ``StandardAbsoluteDeviation`` on each feature; the score is the sum of
    positive deviations (a global "z-score per feature" baseline).

    >>> det = PerFeatureSAD()
    >>> for i in range(100):
    ...     det.learn_one({"a": float(i % 2)})
    >>> det.score_one({"a": 10.0}) > det.score_one({"a": 1.0})
    True
    """

    def __init__(self) -> None:
        self.sads: dict[str, anomaly.StandardAbsoluteDeviation] = {}

    def learn_one(self, x: dict) -> None:
        for k, v in squash(x).items():
            sad = self.sads.get(k)
            if sad is None:
                sad = self.sads[k] = anomaly.StandardAbsoluteDeviation(sub_stat=stats.Mean())
            sad.learn_one(None, v)

    def score_one(self, x: dict) -> float:
        total = 0.0
        for k, v in squash(x).items():
            sad = self.sads.get(k)
            if sad is not None and v > 0:
                total += min(sad.score_one(None, v), 50.0)
        return total


class Protected:
    """Score, calibrate, and learn only when the calibrated value stays below ``protect_at``.

    River's ``anomaly.QuantileFilter(protect_anomaly_detector=True)`` applied to any detector with
    a :class:`~models.calibration.TailCalibrator`: if the model learnt what it flags, it would
    slowly accept the attack as normal. During warm-up (value ``None``) everything is learnt.
    """

    def __init__(self, detector: Any, calibrator: Any, protect_at: float = 0.9) -> None:
        self.detector, self.calibrator, self.protect_at = detector, calibrator, protect_at

    def process_one(self, x: dict) -> tuple[float, float | None]:
        raw = self.detector.score_one(x)
        value = self.calibrator.value(raw)
        if value is None or value < self.protect_at:
            self.detector.learn_one(x)
            self.calibrator.learn_one(raw)
        return raw, value


def make_detector(name: str, seed: int = 42) -> Any:
    """Build a detector by name: ``baseline``, ``hst``, ``hst_limits``, ``loda``, ``lof``, ``sad``."""
    if name == "baseline":
        return UserBaseline()
    if name == "hst":
        return RiverDetector(preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            n_trees=10, height=6, window_size=250, seed=seed), "hst")
    if name == "hst_limits":
        # fixed feature ranges instead of a running min/max: a single extreme value cannot
        # rescale the trees for everyone
        limits = {k: (0.0, 8.0) for k in FEATURES}
        for k in _SQUASH:
            limits[k] = (0.0, 14.0)
        return RiverDetector(anomaly.HalfSpaceTrees(n_trees=10, height=6, window_size=250,
                                                    limits=limits, seed=seed), "hst_limits")
    if name == "loda":
        return RiverDetector(anomaly.LODA(n_bins=10, n_random_cuts=20, seed=seed), "loda")
    if name == "lof":
        return RiverDetector(anomaly.LocalOutlierFactor(n_neighbors=10), "lof")
    if name == "sad":
        return PerFeatureSAD()
    raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")


DETECTORS = ("baseline", "hst", "hst_limits", "loda", "lof", "sad")
