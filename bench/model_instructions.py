"""Instructions per scored event of the adaptive scorer, counted by valgrind.

    .venv/bin/python bench/model_instructions.py                # 200 users x 24 h (about 5 min)
    .venv/bin/python bench/model_instructions.py --users 100    # quicker

The scorer's wall-clock cost (``model_bench.py``) swings by up to 2x on this project's shared
cores. ``valgrind --tool=callgrind`` counts the instructions the CPU executes: the same count for
the same program and input, whatever else the machine is doing. Each variant runs in its own
process, twice: once building the stream and the scorer only, once also scoring the stream
(``AdaptiveScorer.process`` on every event of a user, as ``model_bench.py`` times it); the
difference over the number of scored events is the scorer's instructions per event.
``PYTHONHASHSEED`` is fixed so both processes hash (and probe dicts) alike.

The baseline in the same run is the scorer with its steady-session shortcut switched off (every
event through every feature): the same scores, by test, at the cost of the full path.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from common import record  # noqa: E402  (bench/common.py: puts the repository on sys.path)

from models.scorer import AdaptiveScorer  # noqa: E402
from models.simulate import simulate  # noqa: E402
from streams.engine import parse_event  # noqa: E402

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
VARIANTS = ("scorer", "full path")


def child(variant: str, users: int, hours: float, seed: int, feed: bool) -> None:
    """Build the stream and a scorer, then score the stream (``feed``) or nothing (the same setup),
    so the difference is exactly the scoring; prints the number of scored events."""
    raw, _ = simulate(users=users, hours=hours, seed=seed, attack_rate=0.05)
    events = [e for e in (parse_event(x) for x in raw) if e.user is not None and e.type != "alert"]
    sc, profiles = AdaptiveScorer(warmup=300), defaultdict(dict)
    if variant == "full path":
        sc.fx._steady = lambda ctx: False  # the shortcut off: the baseline's cost, the same scores
    if feed:
        for e in events:
            sc.process(e, profiles[e.user], None)
    print(len(events))


def count(variant: str, users: int, hours: float, seed: int, feed: bool) -> tuple[int, int]:
    """(instructions, scored events) of :func:`child` under callgrind."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
           "--child", variant, str(users), str(hours), str(seed), "1" if feed else "0"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    m = _REFS.search(proc.stderr)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"valgrind run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return int(m.group(1).replace(",", "")), int(proc.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--child", nargs=5, metavar=("VARIANT", "USERS", "HOURS", "SEED", "FEED"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        variant, users, hours, seed, feed = a.child
        child(variant, int(users), float(hours), int(seed), feed == "1")
        return 0
    if shutil.which("valgrind") is None:
        print("skipped: valgrind not found (Debian package valgrind)", file=sys.stderr)
        return 0
    runs = [(v, feed) for v in VARIANTS for feed in (False, True)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # one valgrind process per core
        counts = dict(zip(runs, pool.map(lambda r: count(r[0], a.users, a.hours, a.seed, r[1]), runs)))
    scored = counts[("scorer", True)][1]
    per = {v: (counts[(v, True)][0] - counts[(v, False)][0]) / scored for v in VARIANTS}
    print(f"{scored} scored events, {a.users} users, {a.hours} h, seed {a.seed}")
    print(f"  scorer                       {per['scorer']:>9,.0f} instructions per event")
    print(f"  full path (shortcut off)     {per['full path']:>9,.0f} instructions per event "
          f"(the shortcut saves {1 - per['scorer'] / per['full path']:.0%})")
    record("model_instructions", users=a.users, hours=a.hours, seed=a.seed, scored=scored,
           scorer=round(per["scorer"]), full_path=round(per["full path"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
