"""``AdaptiveScorer``: the engine's scorer protocol on top of features, detectors and calibration.

``scorer.process(event, profile, session_state) -> Score | None``

* ``profile`` is the per-user dict stored in the engine's per-user state (changelog-backed): the
  scorer owns it and keeps it small (see :mod:`models.features`).
* The global part (calibrators, the organisation's :class:`~models.population.Population`
  priors, optional River model, counters) lives in the scorer itself and is saved with
  :meth:`AdaptiveScorer.snapshot` / :meth:`AdaptiveScorer.restore` (pickle; river is pinned
  exactly because pickled River models do not survive its native changes).
* :func:`scorer_for` builds the scorer a policy asks for: every entry point (``lapse replay``,
  ``lapse evaluate``, the worker, the notebooks) uses it, so they all score alike.

Scoring is a cascade, to stay inside the per-event budget:

1. the per-user :class:`~models.detectors.UserBaseline` on every event (a few microseconds);
2. optionally (``detector="baseline+hst"``), a global River model (``MinMaxScaler |
   HalfSpaceTrees``) only on events the baseline already finds unusual
   (value >= ``gate``), and it learns on one in ``learn_every`` unflagged events.

The reported value is the larger of the two calibrated values; for weak evidence it is the value
on the weak-evidence scale (``weak_cal``: the first weak score of every session that carried weak
evidence, flagged or not), so everyday novelty is rated against how common it is. The
:class:`Score` also says how
strong the evidence is (``grade``; ``revocable`` is false for weak evidence, so the engine steps
up instead of revoking) and why, in words (``evidence["why"]``). No score (``None``) before the
calibrator's warm-up, for identity events without a session, and for IDS alerts (the policy
handles those).

Learning is protected: an event at or above ``protect_at`` is not learnt. A successful
re-authentication confirms the session's context and is always learnt: a ``reauth``, or a
``login`` inside a session the engine stepped up (the engine reports its step-ups through
:meth:`AdaptiveScorer.stepped_up`). So a user is never locked out by their own new context.

Examples
--------
>>> sc = AdaptiveScorer(warmup=50)
>>> profile = {}
>>> ev = {"type": "activity", "user": "u1", "session": "s1", "ip": "10.0.0.1", "device": "d1",
...       "geo": {"country": "DE", "lat": 52.5, "lon": 13.4, "asn": 3320}, "bytes": 2000}
>>> sc.process(dict(ev, ts=0), profile, None) is None       # warm-up: no decision
True
>>> for i in range(1, 400):
...     _ = sc.process(dict(ev, ts=i * 30, session=f"s{i // 40}"), profile, None)
>>> quiet = sc.process(dict(ev, ts=12_000, session="s9"), profile, None)
>>> hijack = sc.process(dict(ev, ts=12_030, session="s9", ip="203.0.113.5", device="d66",
...     geo={"country": "BR", "lat": -23.5, "lon": -46.6, "asn": 28573}), profile, None)
>>> quiet.value, hijack.value > 0.5, hijack.grade, hijack.revocable
(0.0, True, 'strong', True)
>>> print(hijack.evidence["why"].replace("; ", "\\n"))
impossible travel: 614,681 km/h from the last location
a country this user has not used
the session's token is used from another device
the session moved to another country
>>> import copy
>>> restored = AdaptiveScorer.from_snapshot(sc.snapshot())
>>> restored.process(dict(ev, ts=12_060, session="s9"), copy.deepcopy(profile), None).value == \\
...     sc.process(dict(ev, ts=12_060, session="s9"), copy.deepcopy(profile), None).value
True
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

import river

from models.calibration import TailCalibrator
from models.detectors import UserBaseline, make_detector
from models.features import (S_ASN, S_COUNTRY, S_DEVICE, S_IP, S_STEPPED_UP, S_WEAK, FeatureExtractor,
                             observe)
from models.population import Population


@dataclass(frozen=True, slots=True)
class Score:
    """The engine's ``ScoreLike`` (``value``, ``evidence``, ``revocable``) plus the uncalibrated
    ``raw`` score and the evidence's ``grade`` (``"strong"``, ``"combined"``, ``"weak"`` or ``""``
    when nothing is unusual)."""

    value: float
    raw: float
    evidence: dict[str, Any] = field(default_factory=dict)
    revocable: bool = True
    grade: str = ""


__all__ = ["AdaptiveScorer", "Score", "SNAPSHOT_VERSION", "scorer_for"]

# a new version whenever the features or their grading change: a global model or scale fit on
# another feature vector is not restored (the worker starts a new warm-up instead)
SNAPSHOT_VERSION = 7
_EVIDENCE_FROM = 0.3
_SKIP = frozenset({"alert", "user_disabled", "credential_change", "role_change"})
_NO_SCORE = frozenset({"login_failed", "logout"})
_ZERO = Score(0.0, 0.0)


class AdaptiveScorer:
    """Per-user features + per-user baseline (+ optional global River model), calibrated.

    Parameters
    ----------
    detector
        ``"baseline"`` (per-user only) or ``"baseline+<name>"`` with a name from
        :data:`models.detectors.DETECTORS` (e.g. ``"baseline+hst"``).
    warmup
        Events the calibrator must see before any score is returned.
    protect_at
        Calibrated value at and above which an event is not learnt (neither the profile's
        baselines nor the global model, calibrators and population priors), unless it is a
        confirmed re-authentication.
    gate
        Calibrated baseline value from which the global model is consulted.
    learn_every
        The global model learns one in this many unflagged events.
    evidence_top
        How many contributing features are named in ``Score.evidence``.
    population
        The organisation's priors (a fresh :class:`~models.population.Population` by default).
    """

    def __init__(self, detector: str = "baseline", warmup: int = 1000, protect_at: float = 0.5,
                 gate: float = 0.5, learn_every: int = 8, evidence_top: int = 4, decades: float = 6.0,
                 seed: int = 42, population: Population | None = None) -> None:
        self.detector = detector
        self.warmup, self.protect_at, self.gate = warmup, protect_at, gate
        self.learn_every, self.evidence_top = learn_every, evidence_top
        self.population = population if population is not None else Population()
        self.fx = FeatureExtractor(self.population)
        self.baseline = UserBaseline()
        self.cal = TailCalibrator(warmup=warmup, decades=decades)
        # one score per session, not per event: a few hundred sessions show the shape of it
        self.weak_cal = TailCalibrator(warmup=max(50, warmup // 5), decades=decades)
        name = detector.partition("+")[2]
        self.global_model = make_detector(name, seed=seed) if name else None
        self.global_cal = TailCalibrator(warmup=max(warmup // learn_every, 50), decades=decades) if name else None
        self.n = 0
        self.flagged = 0
        self.confirmed = 0

    # -- protocol ------------------------------------------------------------------------------
    def process(self, event: Any, profile: dict, session_state: Any = None) -> Score | None:
        obs = observe(event)
        if obs.user is None or obs.type in _SKIP:
            return None
        fx = self.fx
        confirm = False
        if obs.type == "reauth" or obs.type == "login":
            sess = profile.get("s")
            rec = sess.get(obs.session) if (sess and obs.session) else None
            # a re-authentication, or a login inside a session that was stepped up, confirms
            # the session's context: what the event does not say is taken from the session
            if rec is not None and (obs.type == "reauth" or (len(rec) > S_STEPPED_UP and rec[S_STEPPED_UP])):
                confirm = True
                if obs.ip is None and rec[S_IP] is not None:
                    obs.ipr = rec[S_IP]
                if obs.device is None:
                    obs.device = rec[S_DEVICE]
                if obs.country is None:
                    obs.country = rec[S_COUNTRY]
                if obs.asn is None:
                    obs.asn = rec[S_ASN]
            elif obs.type == "reauth":
                confirm = True
        x, ctx = fx.extract(obs, profile)
        contrib = self.baseline.contributions(x, ctx.steady)
        if not contrib and ctx.steady and self.global_model is None and self.protect_at > 0.0:
            # most events: a session's next request from where it already is, showing nothing
            # unusual. What the general path below does for one (a 0 is never flagged, as
            # protect_at > 0; no global model to consult), without its branches
            cal = self.cal
            ready = cal.n >= self.warmup
            fx.learn_ctx(ctx)
            self.n += 1
            cal.learn_one(0.0)
            return _ZERO if ready else None
        if contrib:
            raw = sum(contrib.values(), 0.0)
            value = self.cal.value(raw)
        else:  # the common case: nothing unusual at all
            raw = 0.0
            value = 0.0 if self.cal.n >= self.warmup else None
        g_value = None
        gm = self.global_model
        if gm is not None:
            if value is not None and value >= self.gate:
                g_value = self.global_cal.value(gm.score_one(x))
                if g_value is not None and g_value > value:
                    value = g_value
        flagged = value is not None and value >= self.protect_at and not confirm
        fx.learn_ctx(ctx, flagged, confirm)
        self.n += 1
        if confirm:
            self.confirmed += 1
        if flagged:
            self.flagged += 1
        else:
            self.cal.learn_one(raw)
            if gm is not None and self.n % self.learn_every == 0:
                self.global_cal.learn_one(gm.score_one(x))
                gm.learn_one(x)
        if value is None or obs.session is None or obs.type in _NO_SCORE:
            return None
        if not contrib and g_value is None:
            return _ZERO
        in_session = ctx.sess is not None and not ctx.new_session
        grade = self.baseline.grade(x, contrib, in_session)
        if grade == "weak":
            # weak evidence is what users do every day (a new phone, a trip, a VPN, one big file);
            # it is rated against the weak evidence sessions carry, flagged or not, so the scale
            # knows how common it is instead of reading every one as rarer than it is. A session
            # counts once, with its first weak evidence: one that keeps showing its new phone is
            # one session with a new phone, not a hundred
            wc = self.weak_cal
            wv = wc.value(raw)
            rec = ctx.sess
            if rec is not None and len(rec) > S_WEAK and not rec[S_WEAK]:
                rec[S_WEAK] = raw
                wc.learn_one(raw)
            if wv is not None and self.baseline.everyday(x, contrib, in_session):
                value = wv
        if flagged and grade == "weak":
            fx.hold(ctx, x)  # a weak context that recurs in another session is the user's
            if obs.asn is not None and obs.country is not None:
                # where a network geolocates is a fact about the network: a VPN exit learnt from
                # a weakly flagged event cannot hide an attacker's login, which still steps up
                self.population.locate(obs.asn, obs.country)
        evidence: dict[str, Any] = {}
        if value >= _EVIDENCE_FROM:  # only decisions show evidence; skip the sort otherwise
            why = self.baseline.explain(x, contrib, self.evidence_top)
            evidence = {"grade": grade, "why": "; ".join(why)}
            top = sorted(contrib.items(), key=lambda kv: kv[1], reverse=True)[: self.evidence_top]
            for k, _ in top:
                evidence[k] = round(x[k], 3)
            if g_value is not None:
                evidence["global"] = round(g_value, 3)
        return Score(value, raw, evidence, grade != "weak", grade)

    def stepped_up(self, event: Any, profile: dict, session_state: Any = None) -> None:
        """The engine stepped the event's session up: a later ``login`` inside it confirms it."""
        sid = event.get("session") if isinstance(event, dict) else getattr(event, "session", None)
        sess = profile.get("s")
        rec = sess.get(sid) if (sess and sid) else None
        if rec is not None:
            if len(rec) <= S_STEPPED_UP:
                rec.append(0)
            rec[S_STEPPED_UP] = 1

    # -- model state ---------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The global model state as bytes (the per-user state is in the engine's tables)."""
        state = {"version": SNAPSHOT_VERSION, "river": river.__version__, "detector": self.detector,
                 "params": (self.warmup, self.protect_at, self.gate, self.learn_every, self.evidence_top),
                 "cal": self.cal, "weak_cal": self.weak_cal, "global_model": self.global_model, "global_cal": self.global_cal,
                 "population": self.population, "n": self.n, "flagged": self.flagged,
                 "confirmed": self.confirmed}
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, blob: bytes) -> None:
        """Replace the global state with a snapshot; refuses one from another river version."""
        state = pickle.loads(blob)
        if state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {state.get('version')!r} != {SNAPSHOT_VERSION}")
        if state.get("river") != river.__version__:
            raise ValueError(f"snapshot made with river {state.get('river')}, running {river.__version__}")
        self.detector = state["detector"]
        self.warmup, self.protect_at, self.gate, self.learn_every, self.evidence_top = state["params"]
        self.cal, self.global_model, self.global_cal = state["cal"], state["global_model"], state["global_cal"]
        self.weak_cal = state["weak_cal"]
        self.population = state["population"]
        self.fx = FeatureExtractor(self.population)
        self.n, self.flagged, self.confirmed = state["n"], state["flagged"], state["confirmed"]

    @classmethod
    def from_snapshot(cls, blob: bytes) -> AdaptiveScorer:
        sc = cls()
        sc.restore(blob)
        return sc


def scorer_for(policy: Any, **overrides: Any) -> AdaptiveScorer | None:
    """The scorer a policy asks for: ``None`` unless ``[adaptive] enabled = true``.

    The one factory every entry point uses (``lapse replay``, ``lapse evaluate``, the worker,
    the notebooks), so they all score alike. ``overrides`` are :class:`AdaptiveScorer`
    parameters (e.g. ``detector``, ``warmup`` for experiments).

    >>> from streams.engine import loads_policy
    >>> scorer_for(loads_policy("")) is None
    True
    >>> type(scorer_for(loads_policy("[adaptive]\\nenabled = true"))).__name__
    'AdaptiveScorer'
    """
    ad = getattr(policy, "adaptive", None)
    if ad is None or not ad.enabled:
        return None
    return AdaptiveScorer(**overrides)
