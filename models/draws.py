"""Several draws of both generators, each replayed as ``lapse replay --drain`` replays it, and
pooled: the held-out check in one command (``lapse check-adaptive``).

One draw of a generator holds 40 to 80 attacks of a kind, so its detection share moves by a few
points from seed to seed; a goal is judged on the pooled figures, and each figure carries its
95 % interval (Wilson) so that a draw under a goal by one session reads as what it is.

Each draw: the generator's events as JSON lines, through :func:`streams.engine.replay.run_replay`
with a :class:`~streams.engine.Replay` and the scorer :func:`models.scorer.scorer_for` builds
(what ``lapse replay --policy P --drain`` does), then :func:`models.evaluate.report` on the
decisions it wrote (what ``lapse evaluate --decisions`` does).

Examples
--------
>>> figures = replay_draw(Draw("heldout", seed=3, users=40, hours=24, attack_rate=0.3))
>>> figures["draw"]["generator"], figures["benign_sessions"] > 0
('heldout', True)
>>> pooled = pool([figures, figures])
>>> pooled["kinds"]["hijack"]["sessions"] == 2 * figures["kinds"]["hijack"]["sessions"]
True
"""

from __future__ import annotations

import io
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import orjson

__all__ = ["Draw", "GOALS", "DETECTION_KINDS", "heldout_stream", "replay_draw", "run_draws", "pool", "wilson", "goals_met",
           "format_draws"]

#: attack kinds the detection goal is about (share acted on within 2 min)
DETECTION_KINDS = ("hijack", "impossible_travel", "exfiltration")
#: the held-out goals: detection share within 2 min at least, model actions per 1,000 benign
#: sessions at most (overall and on the users' first day)
GOALS = {"within_2m": 0.95, "revocations_per_1000": 2.0, "step_ups_per_1000": 30.0}


@dataclass(frozen=True)
class Draw:
    """One generated stream: ``generator`` is ``"simulate"`` (tuning) or ``"heldout"``.
    ``attack_after_h``: hours before the first attack (``None``: the generator's default)."""

    generator: str
    seed: int
    users: int = 1000
    hours: float = 72.0
    attack_rate: float = 0.05
    attack_after_h: float | None = None

    def __post_init__(self) -> None:
        if self.generator not in ("simulate", "heldout"):
            raise ValueError(f"generator must be 'simulate' or 'heldout', got {self.generator!r}")
        if self.users < 1 or self.hours <= 0 or not 0.0 <= self.attack_rate <= 1.0:
            raise ValueError(f"a draw needs users >= 1, hours > 0 and an attack rate in [0, 1]: {self!r}")

    def generate(self) -> tuple[list[dict], list[dict]]:
        """The draw's events (ordered by time) and labels, as ``lapse simulate`` writes them."""
        if self.generator == "heldout":
            return heldout_stream(self.users, self.hours, self.seed, self.attack_rate, self.attack_after_h)
        from models.simulate import simulate

        after = None if self.attack_after_h is None else self.attack_after_h * 3600.0
        return simulate(users=self.users, hours=self.hours, seed=self.seed, attack_rate=self.attack_rate,
                        attack_after=after)


def heldout_stream(users: int, hours: float, seed: int, attack_rate: float,
                   attack_after_h: float | None = None) -> tuple[list[dict], list[dict]]:
    """The held-out generator for ``hours`` (whole days, at least one; attacks from hour 3 unless
    ``attack_after_h`` says otherwise): what ``lapse simulate --generator heldout`` writes."""
    from models.simulate_heldout import simulate_heldout

    return simulate_heldout(users=users, days=max(1, math.ceil(hours / 24.0)), seed=seed, attack_rate=attack_rate,
                            attack_after_h=3.0 if attack_after_h is None else attack_after_h)


def replay_draw(draw: Draw, policy_file: str | None = None) -> dict[str, Any]:
    """One draw through ``lapse replay --drain`` with the policy's ``[adaptive]`` section switched
    on (the shipped defaults unless ``policy_file`` says otherwise), measured by
    :func:`models.evaluate.report`; the draw itself under ``"draw"``."""
    from models.evaluate import adaptive_policy, report, run_from_decisions
    from models.scorer import scorer_for
    from streams.engine import Replay
    from streams.engine.replay import run_replay

    events, labels = draw.generate()
    policy = adaptive_policy(policy_file)
    stream = io.BytesIO(b"\n".join(orjson.dumps(e) for e in events))
    out, err = io.BytesIO(), io.BytesIO()
    counts = run_replay(stream, Replay(policy, scorer=scorer_for(policy)), out, err, drain=True)
    if counts["invalid"] or counts["faults"]:
        raise RuntimeError(f"draw {draw}: the replay refused {counts['invalid']} events and failed on "
                           f"{counts['faults']}: {err.getvalue()[:500].decode(errors='replace')}")
    decisions = [orjson.loads(line) for line in out.getvalue().splitlines() if line]
    rep = report(run_from_decisions(events, decisions), labels)
    rep["draw"] = asdict(draw)
    rep["policy"] = {"source": policy.source, "step_up_at": policy.adaptive.step_up_at,
                     "revoke_at": policy.adaptive.revoke_at, "warmup": policy.adaptive.warmup}
    return rep


def run_draws(draws: list[Draw], policy_file: str | None = None, jobs: int = 1) -> list[dict[str, Any]]:
    """:func:`replay_draw` for every draw, ``jobs`` at a time (separate processes), in order."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs!r}")
    if jobs == 1 or len(draws) == 1:
        return [replay_draw(d, policy_file) for d in draws]
    with ProcessPoolExecutor(max_workers=min(jobs, len(draws), os.cpu_count() or 1)) as ex:
        return list(ex.map(replay_draw, draws, [policy_file] * len(draws)))


def pool(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The draws' figures added up: sessions, attacks acted on within 2 min, and benign sessions
    revoked or stepped up by the model, overall and by user tenure.

    >>> r = {"kinds": {"hijack": {"sessions": 50, "acted_within_2m": 48}},
    ...      "by_tenure": {"first_day": {"sessions": 900, "revoked": 2, "stepped_up": 20},
    ...                    "later": {"sessions": 1100, "revoked": 1, "stepped_up": 10}}}
    >>> p = pool([r, r])
    >>> p["kinds"]["hijack"], p["benign"]["all"]
    ({'sessions': 100, 'acted_within_2m': 96}, {'sessions': 4000, 'revoked': 6, 'stepped_up': 60})
    """
    kinds: dict[str, dict[str, int]] = {}
    benign = {t: {"sessions": 0, "revoked": 0, "stepped_up": 0} for t in ("all", "first_day", "later")}
    for rep in reports:
        for kind, k in rep["kinds"].items():
            got = kinds.setdefault(kind, {"sessions": 0, "acted_within_2m": 0})
            got["sessions"] += k["sessions"]
            got["acted_within_2m"] += k["acted_within_2m"]
        for tenure, t in rep["by_tenure"].items():
            for key in ("sessions", "revoked", "stepped_up"):
                benign[tenure][key] += t[key]
                benign["all"][key] += t[key]
    return {"kinds": dict(sorted(kinds.items())), "benign": benign}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``k / n`` (95 % for the default ``z``).

    >>> [round(v, 3) for v in wilson(48, 50)]
    [0.865, 0.989]
    >>> wilson(0, 0)
    (0.0, 1.0)
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    d = 1.0 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, mid - half), min(1.0, mid + half)


def _counts(fig: dict[str, Any]) -> dict[str, Any]:
    """One draw's report, or :func:`pool`'s output, as :func:`pool`'s counts."""
    return fig if "benign" in fig else pool([fig])


def goals_met(fig: dict[str, Any]) -> dict[str, bool]:
    """Each held-out goal, met or not, on one draw's report or on :func:`pool`'s figures."""
    c = _counts(fig)
    out = {}
    for kind in DETECTION_KINDS:
        k = c["kinds"].get(kind)
        if k is not None and k["sessions"]:
            out[f"{kind} within 2 min"] = k["acted_within_2m"] / k["sessions"] >= GOALS["within_2m"]
    for tenure in ("all", "first_day"):
        b = c["benign"][tenure]
        if b["sessions"]:
            out[f"revocations ({tenure})"] = 1000.0 * b["revoked"] / b["sessions"] <= GOALS["revocations_per_1000"]
            out[f"step-ups ({tenure})"] = 1000.0 * b["stepped_up"] / b["sessions"] <= GOALS["step_ups_per_1000"]
    return out


def _share(k: int, n: int) -> str:
    return f"{k} / {n} ({100.0 * k / n:.1f} %)" if n else "-"


def _per_1000(k: int, n: int) -> str:
    return f"{1000.0 * k / n:.1f}" if n else "-"


def format_draws(title: str, reports: list[dict[str, Any]]) -> str:
    """A table: one row per draw, then the pooled figures with 95 % intervals and each goal."""
    head = (f"{'draw':<10}" + "".join(f"{k.replace('_', ' ') + ' <=2 min':>30}" for k in DETECTION_KINDS)
            + f"{'revocations/1000 (first day)':>31}{'step-ups/1000 (first day)':>28}")
    lines = [title, head]

    def row(label: str, fig: dict[str, Any]) -> str:
        c = _counts(fig)
        cells = []
        for kind in DETECTION_KINDS:
            k = c["kinds"].get(kind, {"sessions": 0, "acted_within_2m": 0})
            cells.append(f"{_share(k['acted_within_2m'], k['sessions']):>30}")
        b, f = c["benign"]["all"], c["benign"]["first_day"]
        rev = f"{_per_1000(b['revoked'], b['sessions'])} ({_per_1000(f['revoked'], f['sessions'])})"
        sup = f"{_per_1000(b['stepped_up'], b['sessions'])} ({_per_1000(f['stepped_up'], f['sessions'])})"
        return f"{label:<10}" + "".join(cells) + f"{rev:>31}{sup:>28}"

    for rep in reports:
        lines.append(row(f"seed {rep['draw']['seed']}", rep))
    pooled = pool(reports)
    lines.append(row("pooled", pooled))
    ci = []
    for kind in DETECTION_KINDS:
        k = pooled["kinds"].get(kind)
        if k and k["sessions"]:
            lo, hi = wilson(k["acted_within_2m"], k["sessions"])
            ci.append(f"{kind.replace('_', ' ')} {100 * lo:.1f}-{100 * hi:.1f} %")
    for tenure in ("all", "first_day"):
        b = pooled["benign"][tenure]
        if b["sessions"]:
            lo, hi = wilson(b["revoked"], b["sessions"])
            slo, shi = wilson(b["stepped_up"], b["sessions"])
            ci.append(f"{tenure.replace('_', ' ')}: revocations {1000 * lo:.1f}-{1000 * hi:.1f}, "
                      f"step-ups {1000 * slo:.1f}-{1000 * shi:.1f} per 1,000")
    lines.append("pooled 95 % intervals: " + "; ".join(ci))
    met = goals_met(pooled)
    lines.append("goals, pooled: " + ", ".join(f"{g} {'met' if ok else 'NOT met'}" for g, ok in met.items()))
    per_draw = [goals_met(rep) for rep in reports]
    missed = sum(1 for m in per_draw for ok in m.values() if not ok)
    total = sum(len(m) for m in per_draw)
    lines.append(f"goals, per draw: {total - missed} of {total} met")
    return "\n".join(lines)
