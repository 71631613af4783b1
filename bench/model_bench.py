"""Scoring cost per event of the adaptive model, against baselines measured in the same run.

    python bench/model_bench.py [--users 1000] [--hours 48] [--seed 5] [--without-device]

Measures, on the same simulated stream (parsed into engine ``Event`` objects first, as the worker
sees them):

* ``features``: feature extraction + profile update alone;
* ``scorer[baseline]``: ``AdaptiveScorer.process`` (features with population priors + per-user
  baseline + grading + calibration), as ``models.scorer.scorer_for`` builds it;
* ``scorer[baseline+hst]``: the same with the gated HalfSpaceTrees second opinion;
* ``hst (every event)``: ``MinMaxScaler | HalfSpaceTrees`` score + learn on every event, for scale;
* ``engine (no scorer)`` and ``engine + scorer``: the whole ``Replay``; the difference is what the
  model costs the service.

``--without-device``: the same stream with every device id left out, as from a gateway that
does not send one.

Goal: scorer <= 30 us per event.
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
from collections import defaultdict

from common import record  # noqa: E402  (bench/common.py: puts the repository on sys.path)

from models.detectors import make_detector
from models.evaluate import adaptive_policy
from models.features import FeatureExtractor, observe
from models.scorer import AdaptiveScorer, scorer_for
from models.simulate import simulate
from streams.engine import Replay, parse_event


def _time(fn) -> float:
    gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=48)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--without-device", action="store_true", help="leave every device id out of the stream")
    a = ap.parse_args()

    raw, _ = simulate(users=a.users, hours=a.hours, seed=a.seed, attack_rate=0.05)
    if a.without_device:
        for e in raw:
            e.pop("device", None)
    events = [parse_event(e) for e in raw]
    scored = [e for e in events if e.user is not None and e.type != "alert"]
    n = len(scored)
    res: dict[str, float] = {}

    def features() -> None:
        from models.population import Population

        fx, profiles = FeatureExtractor(Population()), defaultdict(dict)
        for e in scored:
            x, ctx = fx.extract(observe(e), profiles[e.user])
            fx.learn_ctx(ctx)

    res["features"] = _time(features) / n * 1e6

    for det in ("baseline", "baseline+hst"):
        def run(det: str = det) -> None:
            sc, profiles = AdaptiveScorer(detector=det), defaultdict(dict)
            for e in scored:
                sc.process(e, profiles[e.user], None)

        res[f"scorer[{det}]"] = _time(run) / n * 1e6

    def hst_every() -> None:
        fx, profiles, hst = FeatureExtractor(), defaultdict(dict), make_detector("hst")
        xs = []
        for e in scored:
            x, ctx = fx.extract(observe(e), profiles[e.user])
            fx.learn_ctx(ctx)
            xs.append(x)
        t = time.perf_counter()
        for x in xs:
            hst.score_one(x)
            hst.learn_one(x)
        res["hst (every event, model only)"] = (time.perf_counter() - t) / n * 1e6

    hst_every()

    policy_on = adaptive_policy(None)  # the shipped [adaptive] defaults, switched on
    policy_off = adaptive_policy(None, enabled=False)

    def engine(policy, scorer) -> None:
        r = Replay(policy, scorer=scorer)
        for e in events:
            r.feed(e)

    res["engine (no scorer)"] = _time(lambda: engine(policy_off, None)) / len(events) * 1e6
    res["engine + scorer[baseline]"] = _time(lambda: engine(policy_on, scorer_for(policy_on))) / len(events) * 1e6
    res["model share of engine+scorer"] = res["engine + scorer[baseline]"] - res["engine (no scorer)"]

    print(f"{len(events)} events ({n} scored), {a.users} users, {a.hours} h, seed {a.seed}, "
          f"{'no device ids, ' if a.without_device else ''}Python {platform.python_version()}")
    for k, v in res.items():
        print(f"  {k:<34}{v:8.1f} us/event")
    ok = res["scorer[baseline]"] <= 30.0
    print(f"goal scorer <= 30 us/event: {'met' if ok else 'NOT met'}")
    record("model_bench", users=a.users, hours=a.hours, seed=a.seed, without_device=a.without_device,
           events=len(events), scored=n,
           python=platform.python_version(), us_per_event={k: round(v, 2) for k, v in res.items()})


if __name__ == "__main__":
    main()
