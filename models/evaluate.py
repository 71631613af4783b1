"""Replay a labelled stream through the engine with the adaptive scorer and measure it.

Per attack kind: the share acted on (the attacked session revoked or stepped up at or after the
attack's start, for any reason, or already revoked when it began: ``revoked_before``), the shares
acted on within 60 s and within two minutes, the median time to act, and the ROC AUC of the raw
score (session level: the highest raw score a session reached, after the attack's start for
attacked sessions, against the same for every benign session). Over benign sessions: model
revocations and step-ups (reason ``anomaly``) per 1,000 sessions, overall and split by user
tenure (sessions that began on the user's first day in the stream, against later ones).

The engine path (:func:`replay_engine`) is what ``lapse evaluate`` runs. :func:`replay_model`
applies the thresholds directly to the scorer's values, without the engine; it is quicker and is
what the detector comparison and the tuning notebook use for sweeps.

Examples
--------
>>> from models.simulate import simulate
>>> events, labels = simulate(users=60, hours=30, seed=3, attack_rate=0.4)
>>> run = replay_model(events, AdaptiveScorer(warmup=500), step_up_at=0.6, revoke_at=0.8)
>>> rep = report(run, labels)
>>> rep["kinds"]["hijack"]["detected"] >= 0.9
True
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from typing import Any

from models.features import _ts
from models.scorer import AdaptiveScorer

__all__ = ["Recorder", "Run", "replay_engine", "run_from_decisions", "replay_model", "report", "roc_auc", "format_report", "adaptive_policy", "session_max_values", "choose_thresholds", "widen_revoke_at",
           "compare_detectors"]


class Recorder:
    """Wraps a scorer and remembers, per session, every (ts, raw, value) it returned."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        #: per session: (ts, raw, value, revocable) of every score
        self.scores: dict[str, list[tuple[float, float, float, bool]]] = defaultdict(list)
        self.events = 0
        self.seconds = 0.0

    def process(self, event: Any, profile: dict, session_state: Any = None) -> Any:
        t = time.perf_counter()
        s = self.scorer.process(event, profile, session_state)
        self.seconds += time.perf_counter() - t
        self.events += 1
        if s is not None:
            sid = event.get("session") if isinstance(event, dict) else getattr(event, "session", None)
            ts = event.get("ts") if isinstance(event, dict) else getattr(event, "ts", None)
            self.scores[sid].append((_ts(ts), s.raw, s.value, getattr(s, "revocable", True)))
        return s

    def __getattr__(self, name: str) -> Any:  # snapshot/restore and anything else the engine calls
        return getattr(self.scorer, name)


class Run:
    """What a replay produced: decisions (dicts with ``at`` as epoch seconds), scores, sessions,
    and each session's user and first event time (for the split by user tenure)."""

    def __init__(self) -> None:
        self.decisions: list[dict[str, Any]] = []
        self.sessions: set[str] = set()
        self.session_start: dict[str, tuple[str, float]] = {}
        self.user_first: dict[str, float] = {}
        self.recorder: Recorder | None = None
        self.events = 0
        self.seconds = 0.0
        self.mode = ""

    def note(self, user: str | None, session: str | None, ts: float) -> None:
        if user is not None and user not in self.user_first:
            self.user_first[user] = ts
        if session:
            self.sessions.add(session)
            if session not in self.session_start and user is not None:
                self.session_start[session] = (user, ts)

    def first_day(self, session: str) -> bool:
        """Whether the session began within 24 h of its user's first event in the stream."""
        got = self.session_start.get(session)
        return got is not None and got[1] - self.user_first[got[0]] < 86400.0


def replay_model(events: list[dict], scorer: Any, step_up_at: float = 0.9, revoke_at: float = 0.99) -> Run:
    """Model-only replay, graded as the engine does: ``value >= revoke_at`` with revocable
    (strong or combined) evidence revokes (ending the session), ``>= step_up_at`` steps up once
    per session (and tells the scorer). No policy timeouts, per-user warm-up or IDS handling."""
    run, rec = Run(), Recorder(scorer)
    run.recorder, run.mode = rec, "model"
    profiles: dict[str, dict] = defaultdict(dict)
    ended: set[str] = set()
    stepped: set[str] = set()
    told = getattr(scorer, "stepped_up", None)
    t0 = time.perf_counter()
    for ev in events:
        sid = ev.get("session")
        user = ev.get("user")
        at = _ts(ev["ts"])
        run.note(user, sid, at)
        if user is None:
            continue
        s = rec.process(ev, profiles[user], None)
        run.events += 1
        if sid is not None and ev.get("type") == "reauth":
            stepped.discard(sid)
        if s is None or sid is None or sid in ended:
            continue
        if s.value >= revoke_at and getattr(s, "revocable", True):
            ended.add(sid)
            run.decisions.append({"action": "revoke", "reason": "anomaly", "session": sid, "at": at,
                                  "score": s.value, "evidence": s.evidence})
        elif s.value >= step_up_at and sid not in stepped:
            stepped.add(sid)
            run.decisions.append({"action": "step_up", "reason": "anomaly", "session": sid, "at": at,
                                  "score": s.value, "evidence": s.evidence})
            if told is not None:
                told(ev, profiles[user], None)
    run.seconds = time.perf_counter() - t0
    return run


def replay_engine(events: list[dict], policy: Any, scorer: Any, drain: bool = True) -> Run:
    """Replay through the engine's ``Replay`` (event time, policy, IDS alerts, adaptive section)."""
    from streams.engine import Replay, parse_event  # imported here: the engine is another package

    if policy.adaptive.enabled and scorer is None:
        raise ValueError("[adaptive] enabled = true needs a scorer (models.scorer.scorer_for(policy))")
    run, rec = Run(), Recorder(scorer)
    run.recorder, run.mode = rec, "engine"
    replay = Replay(policy, scorer=rec if scorer is not None else None)
    t0 = time.perf_counter()
    outs: list = []
    for raw in events:
        ev = parse_event(raw)
        run.note(ev.user, ev.session, ev.ts)
        outs.extend(replay.feed(ev))
        run.events += 1
    if drain:
        outs.extend(replay.drain())
    run.seconds = time.perf_counter() - t0
    for o in outs:
        if o.kind == "decision":
            d = dict(o.value)
            d["at"] = _ts(d["at"])
            run.decisions.append(d)
    return run


def run_from_decisions(events: list[dict], decisions: list[dict]) -> Run:
    """A :class:`Run` from the decisions ``lapse replay`` wrote (JSON objects), so that
    :func:`report` measures exactly what the command line decided (no scores: AUC is ``None``)."""
    run = Run()
    run.mode = "lapse replay"
    for ev in events:
        run.note(ev.get("user"), ev.get("session"), _ts(ev["ts"]))
        run.events += 1
    for d in decisions:
        d = dict(d)
        d["at"] = _ts(d["at"])
        run.decisions.append(d)
    return run


def roc_auc(pos: list[float], neg: list[float]) -> float | None:
    """Probability that a random positive outranks a random negative (ties count half).

    >>> roc_auc([3, 4], [1, 2]), roc_auc([1], [1]), roc_auc([], [1])
    (1.0, 0.5, None)
    """
    if not pos or not neg:
        return None
    allv = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    rank_sum, i = 0.0, 0
    while i < len(allv):
        j = i
        while j < len(allv) and allv[j][0] == allv[i][0]:
            j += 1
        avg_rank = (i + j + 1) / 2.0
        rank_sum += avg_rank * sum(1 for k in range(i, j) if allv[k][1] == 1)
        i = j
    n_pos, n_neg = len(pos), len(neg)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def report(run: Run, labels: list[dict], within_s: float = 120.0, fast_s: float = 60.0) -> dict[str, Any]:
    """Per-kind detection figures and benign false-positive rates of one replay."""
    by_session: dict[str, list[dict]] = defaultdict(list)
    for d in run.decisions:
        by_session[d["session"]].append(d)
    attacked = {lab["session"] for lab in labels}
    benign = run.sessions - attacked
    scores = run.recorder.scores if run.recorder else {}

    def max_raw(sid: str, since: float = -math.inf) -> float:
        return max((r for ts, r, _, _ in scores.get(sid, ()) if ts >= since - 0.002), default=0.0)

    neg = [max_raw(s) for s in benign]
    kinds: dict[str, Any] = {}
    grouped: dict[str, list[dict]] = defaultdict(list)
    for lab in labels:
        grouped[lab["kind"]].append(lab)
    for kind in sorted(grouped):
        labs = grouped[kind]
        ttd: list[float] = []
        reasons: dict[str, int] = defaultdict(int)
        prevented: set[str] = set()
        for lab in labs:
            start = _ts(lab.get("start_ts") or lab["start"])
            hits = [d for d in by_session.get(lab["session"], ()) if d["at"] >= start - 1.0]
            before = [d for d in by_session.get(lab["session"], ()) if d["at"] < start - 1.0 and d["action"] == "revoke"]
            if before:  # already revoked when the attack began: its traffic is refused from the first request
                ttd.append(0.0)
                reasons["revoked_before"] += 1
                prevented.add(lab["session"])
            elif hits:
                first = min(hits, key=lambda d: d["at"])
                ttd.append(max(0.0, first["at"] - start))
                reasons[first["reason"]] += 1
        # sessions revoked before their attack gave the model no attacked traffic to score
        pos = [max_raw(lab["session"], _ts(lab.get("start_ts") or lab["start"])) for lab in labs
               if lab["session"] not in prevented]
        n = len(labs)
        kinds[kind] = {
            "sessions": n,
            "detected": len(ttd) / n if n else None,
            "within_60s": sum(1 for t in ttd if t <= fast_s) / n if n else None,
            "within_2m": sum(1 for t in ttd if t <= within_s) / n if n else None,
            "acted_within_2m": sum(1 for t in ttd if t <= within_s),
            "median_ttd_s": statistics.median(ttd) if ttd else None,
            "auc": roc_auc(pos, neg) if run.recorder is not None else None,
            "first_reason": dict(reasons),
        }
    fr = fs = 0
    tenure = {"first_day": [0, 0, 0], "later": [0, 0, 0]}  # sessions, revoked, stepped up
    for s in benign:
        ds = by_session.get(s, ())
        t = tenure["first_day" if run.first_day(s) else "later"]
        t[0] += 1
        if any(d["action"] == "revoke" and d["reason"] == "anomaly" for d in ds):
            fr += 1
            t[1] += 1
        if any(d["action"] == "step_up" and d["reason"] == "anomaly" for d in ds):
            fs += 1
            t[2] += 1
    nb = len(benign)
    rec = run.recorder
    return {
        "mode": run.mode,
        "events": run.events,
        "benign_sessions": nb,
        "false_revocations_per_1000": 1000.0 * fr / nb if nb else None,
        "false_step_ups_per_1000": 1000.0 * fs / nb if nb else None,
        "benign_revoked_pct": 100.0 * fr / nb if nb else None,
        "by_tenure": {k: {"sessions": v[0], "revoked": v[1], "stepped_up": v[2],
                          "false_revocations_per_1000": 1000.0 * v[1] / v[0] if v[0] else None,
                          "false_step_ups_per_1000": 1000.0 * v[2] / v[0] if v[0] else None}
                      for k, v in tenure.items()},
        "kinds": kinds,
        "us_per_event_scorer": (1e6 * rec.seconds / rec.events) if rec and rec.events else None,
        "us_per_event_total": 1e6 * run.seconds / run.events if run.events else None,
    }


def _fmt(v: Any, pct: bool = False, nd: int = 1) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.{nd}f}%" if pct else f"{v:.{nd}f}"


def format_report(rep: dict[str, Any]) -> str:
    """A plain-text table of :func:`report`."""
    lines = [f"{'attack kind':<22}{'n':>5}{'acted on':>10}{'<=60 s':>9}{'<=2 min':>9}{'median TTD':>12}{'AUC':>7}"
             "  first reason"]
    for kind, k in rep["kinds"].items():
        ttd = "-" if k["median_ttd_s"] is None else f"{k['median_ttd_s']:.0f} s"
        reasons = ", ".join(f"{r}:{c}" for r, c in sorted(k["first_reason"].items()))
        lines.append(f"{kind:<22}{k['sessions']:>5}{_fmt(k['detected'], True):>10}{_fmt(k.get('within_60s'), True):>9}"
                     f"{_fmt(k['within_2m'], True):>9}{ttd:>12}{_fmt(k['auc'], nd=3):>7}  {reasons}")
    lines.append("")
    lines.append(f"{'benign sessions':<22}{'n':>7}{'model revocations':>19}{'model step-ups':>16}   (per 1,000)")
    rows = [("all", rep["benign_sessions"], rep["false_revocations_per_1000"], rep["false_step_ups_per_1000"])]
    for name, label in (("first_day", "user's first day"), ("later", "later")):
        t = (rep.get("by_tenure") or {}).get(name)
        if t is not None:
            rows.append((label, t["sessions"], t["false_revocations_per_1000"], t["false_step_ups_per_1000"]))
    for label, n, r, su in rows:
        lines.append(f"{label:<22}{n:>7}{_fmt(r, nd=2):>19}{_fmt(su, nd=2):>16}")
    if rep["us_per_event_scorer"] is not None:
        lines.append(f"events: {rep['events']}   replay ({rep['mode']}): {_fmt(rep['us_per_event_total'])} us/event, "
                     f"of which scorer {_fmt(rep['us_per_event_scorer'])} us/event")
    else:
        lines.append(f"events: {rep['events']}   decisions from {rep['mode']}")
    return "\n".join(lines)


def compare_detectors(events: list[dict], labels: list[dict], names: tuple[str, ...] = ("baseline", "hst", "hst_limits", "loda", "sad"),
                      warmup: int = 1000, lof_sample: int = 0) -> dict[str, dict[str, Any]]:
    """Run each detector *alone* on the same per-user features and compare session-level AUC per
    kind and cost per event. Global detectors are protected (they do not learn what they flag).
    """
    from models.calibration import TailCalibrator
    from models.detectors import Protected, make_detector
    from models.features import FeatureExtractor, observe

    fx = FeatureExtractor()
    feats: list[tuple[str | None, float, dict]] = []
    profiles: dict[str, dict] = defaultdict(dict)
    t0 = time.perf_counter()
    for ev in events:
        user = ev.get("user")
        if user is None or ev["type"] == "alert":
            continue
        obs = observe(ev)
        x = fx.compute(obs, profiles[user])
        fx.learn(obs, profiles[user])
        feats.append((ev.get("session"), obs.ts, x))
    fx_us = 1e6 * (time.perf_counter() - t0) / max(1, len(feats))
    attacked = {lab["session"]: lab for lab in labels}
    out: dict[str, dict[str, Any]] = {"features": {"us_per_event": fx_us}}
    for name in names:
        det = Protected(make_detector(name), TailCalibrator(warmup=warmup), protect_at=0.5)
        rows = feats if name != "lof" or not lof_sample else feats[:lof_sample]
        best: dict[str, float] = defaultdict(float)
        t0 = time.perf_counter()
        for sid, ts, x in rows:
            raw, _ = det.process_one(x)
            if sid is None:
                continue
            lab = attacked.get(sid)
            if lab is not None and ts < lab["start_ts"] - 0.002:
                continue
            if raw > best[sid]:
                best[sid] = raw
        us = 1e6 * (time.perf_counter() - t0) / max(1, len(rows))
        sessions = {sid for sid, _, _ in rows if sid}
        neg = [best[s] for s in sessions if s not in attacked]
        res: dict[str, Any] = {"us_per_event": us, "events": len(rows)}
        for kind in sorted({lab["kind"] for lab in labels}):
            pos = [best[lab["session"]] for lab in labels if lab["kind"] == kind and lab["session"] in sessions]
            res[kind] = roc_auc(pos, neg)
        out[name] = res
    return out


def adaptive_policy(path: str | None = None, **adaptive: Any) -> Any:
    """Load a policy TOML (``None``: the shipped default) with ``[adaptive] enabled = true`` and
    any of ``step_up_at``, ``revoke_at``, ``warmup``, ``idle_factor`` overridden."""
    import tomllib
    from importlib import resources

    from streams.engine import load_policy, policy_from_dict

    # a file that cannot be read, is not TOML or is not a valid policy: PolicyError naming it
    source = load_policy(path).source
    if path is None:
        text = resources.files("streams").joinpath("policy.default.toml").read_text(encoding="utf-8")
    else:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    data = tomllib.loads(text)
    ad = dict(data.get("adaptive") or {})
    ad["enabled"] = True
    ad.update({k: v for k, v in adaptive.items() if v is not None})
    if "step_up_at" in ad:  # keep the engine's ordering invariant elevated_at <= step_up_at
        ad["elevated_at"] = min(float(ad.get("elevated_at", 0.7)), float(ad["step_up_at"]))
    data["adaptive"] = ad
    return policy_from_dict(data, source)


def session_max_values(run: Run, labels: list[dict], revocable: bool = False
                       ) -> tuple[list[float], dict[str, list[float]]]:
    """Highest calibrated value per benign session, and per attack kind after the attack's start.
    ``revocable``: only values whose evidence could revoke (strong or combined)."""
    scores = run.recorder.scores if run.recorder else {}
    attacked = {lab["session"] for lab in labels}

    def top(sid: str, since: float = -math.inf) -> float:
        return max((v for ts, _, v, rv in scores.get(sid, ()) if ts >= since and (rv or not revocable)),
                   default=0.0)

    benign = [top(s) for s in run.sessions - attacked]
    kinds: dict[str, list[float]] = defaultdict(list)
    for lab in labels:
        kinds[lab["kind"]].append(top(lab["session"], lab["start_ts"] - 0.002))
    return benign, dict(kinds)


def choose_thresholds(benign_max: list[float], revoke_rate: float = 0.002, step_up_rate: float = 0.02) -> tuple[float, float]:
    """The lowest thresholds whose share of benign sessions reaching them stays within the targets
    (fractions of sessions), rounded up to 0.01; returns ``(step_up_at, revoke_at)``.

    >>> choose_thresholds([0.0] * 980 + [0.5] * 15 + [0.9] * 5, revoke_rate=0.004, step_up_rate=0.01)
    (0.51, 0.91)
    """
    vals = sorted(benign_max, reverse=True)
    n = len(vals)

    def at(rate: float) -> float:
        k = int(rate * n)  # this many benign sessions may reach the threshold
        thr = vals[k] if k < n else 0.0
        return min(1.0, math.floor(thr * 100 + 1e-9) / 100 + 0.01)

    revoke_at = at(revoke_rate)
    return min(at(step_up_rate), revoke_at), revoke_at


def widen_revoke_at(revoke_at: float, attack_revocable: list[float]) -> float:
    """Raise ``revoke_at`` as far as it goes without letting go of any attack session it revokes.

    The lowest threshold that meets the benign target is the one with no margin: on traffic
    with other distributions, benign evidence shifts up and crosses it first. Between it and the
    weakest revoked attack there is room that costs no detection on the tuning stream; the
    threshold goes to the top of that room (rounded down to 0.01, never below ``revoke_at``).
    ``attack_revocable``: each attack session's highest revocable value.

    >>> widen_revoke_at(0.35, [0.0, 0.2, 0.58, 0.61, 0.9])    # 0.2 was not revoked anyway
    0.58
    >>> widen_revoke_at(0.35, [0.0, 0.1])                      # nothing revoked: nothing to keep
    0.35
    """
    kept = [v for v in attack_revocable if v >= revoke_at]
    if not kept:
        return revoke_at
    return max(revoke_at, math.floor(min(kept) * 100 + 1e-9) / 100)
