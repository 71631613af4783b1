"""Instructions per event of the engine replay, counted by valgrind.

    .venv/bin/python bench/engine_instructions.py                  # 50k events over 5k sessions (about 4 min)
    .venv/bin/python bench/engine_instructions.py --events 20000   # quicker

Wall-clock rates on this project's 2 shared cores swing by 15-30 % from run to run, more than the
10 % that the activity conditions' goal allows. ``valgrind --tool=callgrind`` counts the instructions the CPU executes:
the same count for the same program and input, whatever else the machine is doing. Each variant
(stream mix x policy) runs in its own process, twice: once building the stream and the engine
only, once also replaying the stream; the difference over the number of events is the engine's
instructions per event (``parse_event`` + ``Replay.feed``, as ``engine_bench.py`` times them).
``PYTHONHASHSEED`` is fixed so both processes hash (and probe dicts) alike.

Instructions are not time: they do not see cache misses, which grow with live sessions, so the
wall-clock figures of ``engine_bench.py`` stay the rates to quote; this says which change costs
what, reproducibly.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from common import record  # noqa: E402  (bench/common.py: puts the repository on sys.path)
from engine_bench import ACTIVITY_RULES, POLICY, activity_rules, make_lines, run  # noqa: E402

POLICIES = {"policy": POLICY, "activity": POLICY + ACTIVITY_RULES}
#: --breakdown: the activity rules in parts, on the admins mix
PARTS = {
    "a rate rule alone": POLICY + activity_rules(privileged=False, bytes_over=False, automatic=False),
    "rate and bytes rules": POLICY + activity_rules(privileged=False, automatic=False),
    "all but the automatic patterns": POLICY + activity_rules(automatic=False),
    "all but the privileged rule": POLICY + activity_rules(privileged=False),
}
ALL_POLICIES = {**POLICIES, **PARTS}
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def child(mix: str, policy: str, events: int, feed: bool) -> None:
    """Build the stream, then run ``engine_bench.run`` on it (``feed``) or on no events (the same
    setup: policy, engine, a collection), so the difference is exactly the replay it times."""
    lines = make_lines(events, max(1, events // 10), privileged=mix)
    run(lines if feed else [], ALL_POLICIES[policy])


def count(mix: str, policy: str, events: int, feed: bool) -> int:
    """Instructions executed by :func:`child` under callgrind."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
           "--child", mix, policy, str(events), "1" if feed else "0"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    m = _REFS.search(proc.stderr)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"valgrind run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--breakdown", action="store_true",
                    help="also count the admins mix with parts of the activity rules left out")
    ap.add_argument("--child", nargs=4, metavar=("MIX", "POLICY", "EVENTS", "FEED"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        mix, policy, events, feed = a.child
        child(mix, policy, int(events), feed == "1")
        return 0
    if shutil.which("valgrind") is None:
        print("skipped: valgrind not found (Debian package valgrind)", file=sys.stderr)
        return 0
    figures: dict[str, object] = {"events": a.events}
    runs = [(mix, policy, feed) for mix in ("admins", "everyone") for policy in POLICIES for feed in (False, True)]
    if a.breakdown:
        runs += [("admins", part, feed) for part in PARTS for feed in (False, True)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # one valgrind process per core
        counts = dict(zip(runs, pool.map(lambda r: count(r[0], r[1], a.events, r[2]), runs)))

    def per_event(mix: str, policy: str) -> float:
        return (counts[(mix, policy, True)] - counts[(mix, policy, False)]) / a.events

    for mix in ("admins", "everyone"):
        base, act = per_event(mix, "policy"), per_event(mix, "activity")
        diff = (act - base) / base * 100
        ok = "within" if diff <= 10 else "OUTSIDE"
        print(f"instructions per event, {mix + ' privileged:':20s} policy only {base:>9,.0f}, with activity rules "
              f"{act:>9,.0f} -> {diff:+.1f}% ({ok} 10%)")
        figures[mix] = {"policy": round(base), "activity": round(act), "change_pct": round(diff, 1)}
    if a.breakdown:
        base = per_event("admins", "policy")
        parts: dict[str, int] = {}
        for part in PARTS:
            x = per_event("admins", part)
            print(f"  admins mix, {part + ':':32s} {x:>9,.0f} ({x - base:+,.0f} on policy only)")
            parts[part] = round(x)
        figures["admins_parts"] = parts
    record("engine_instructions", **figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
