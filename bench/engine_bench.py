"""Replay rate and memory of the session engine, policy only and with activity conditions.

    .venv/bin/python bench/engine_bench.py                    # 1M events over 100k sessions
    .venv/bin/python bench/engine_bench.py --events 100000    # quicker
    .venv/bin/python bench/engine_bench.py --activity-rules   # also compare with the activity conditions (two mixes)

Measures, on the same synthetic JSON lines: two baselines (``orjson.loads`` of each line alone, and the
floor of any CPython engine: ``loads`` plus the user and session lookups and three writes), then
``parse_event`` + ``Replay.feed`` (policy only: no model). Memory per live session is measured in a
separate pass with tracemalloc (engine store + deadline index + policy caches; sightings reported
apart), since tracing slows the timed run down.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from datetime import datetime, timezone

import orjson

from common import record  # noqa: E402  (bench/common.py: puts the repository on sys.path)
from streams.engine import Replay, loads_policy, parse_event  # noqa: E402

T0 = 1_767_225_600.0

POLICY = """
[defaults]
idle = "30m"
absolute = "12h"
[networks]
corporate = ["10.0.0.0/8"]
[[rules]]
name = "admins"
roles = ["admin"]
idle = "15m"
absolute = "8h"
[[rules]]
name = "off-network"
network = "!corporate"
idle = "20m"
[[rules]]
name = "api-clients"
channel = "api"
absolute = "1h"
"""

def activity_rules(privileged: bool = True, bytes_over: bool = True, rate_over: bool = True,
                   automatic: bool = True) -> str:
    """The activity rules added to ``POLICY`` (all of them by default: ``ACTIVITY_RULES``); leaving
    one out measures what it costs (``engine_instructions.py --breakdown``)."""
    text, section = "", []
    if privileged:
        text += '[[rules]]\nname = "privileged-use"\nprivileged = true\nprivileged_within = "15m"\nidle = "10m"\n'
        section.append('privileged = ["admin.*"]')
    if bytes_over:
        text += '[[rules]]\nname = "bulk"\nbytes_over = 50000000\nidle = "5m"\n'
        section.append('bytes_window = "5m"')
    if rate_over:
        text += '[[rules]]\nname = "chatty"\nrate_over = 300\nidle = "5m"\n'
    if automatic:
        section.append('automatic = ["poll", "*/heartbeat"]')
    if section:
        text += "[activity]\n" + "\n".join(section) + "\n"
    return text


ACTIVITY_RULES = activity_rules()

ACTIONS = ["view", "view", "view", "edit", "search", "poll", "admin.users.list"]
RESOURCES = ["/home", "/docs/1", "/api/items", "/api/heartbeat", "/reports"]


def make_lines(n: int, sessions: int, seed: int = 7, privileged: str = "admins") -> list[bytes]:
    """n events: a login per session, then activity on recently started sessions (plus a few alerts).

    ``privileged``: who performs the ``admin.*`` actions (one request in seven where they occur):
    ``"admins"``, the sessions with the admin role (one in ten), or ``"everyone"``, every session
    (a stress case for the activity conditions: the privileged rule then binds nearly every session).
    The random sequence is the same either way; only those actions' names differ.
    """
    if privileged not in ("admins", "everyone"):
        raise ValueError(f"privileged: 'admins' or 'everyone', not {privileged!r}")
    rng = random.Random(seed)
    per = max(1, n // sessions)
    dt = 0.02
    lines: list[bytes] = []
    stamps: dict[int, str] = {}
    started = 0
    meta: list[tuple[str, str, str]] = []
    for i in range(n):
        t = T0 + i * dt
        sec = int(t)
        ts = stamps.get(sec)
        if ts is None:
            stamps.clear()
            ts = stamps[sec] = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if (i % per == 0 and started < sessions) or started == 0:
            k = started
            started += 1
            ip = f"10.{k % 200}.{(k // 200) % 250}.{k % 7 + 1}" if k % 4 else f"203.0.{k % 250}.{k % 9 + 1}"
            meta.append((f"u{k % (sessions // 3 + 1)}", f"sess-{k:07d}", ip))
            ev = {"type": "login", "ts": ts, "user": meta[k][0], "session": meta[k][1], "ip": ip,
                  "channel": "api" if k % 10 == 0 else "web", "roles": ["admin"] if k % 10 == 1 else ["staff"],
                  "sso_session": f"sso-{k % 50000}" if k % 5 == 0 else None}
        elif i % 5000 == 4999:
            ev = {"type": "alert", "ts": ts, "severity": rng.choice([1, 2, 3, 4]), "signature": "bench",
                  "src_ip": meta[rng.randrange(started)][2]}
        else:
            k = started - 1 - min(started - 1, int(rng.expovariate(1 / 800)))
            user, sess, ip = meta[k]
            action = rng.choice(ACTIONS)
            if action.startswith("admin.") and privileged == "admins" and k % 10 != 1:
                action = "view"
            ev = {"type": "activity", "ts": ts, "user": user, "session": sess, "ip": ip,
                  "action": action, "resource": rng.choice(RESOURCES), "bytes": rng.randrange(100, 100000),
                  "status": 200}
        lines.append(orjson.dumps({k2: v for k2, v in ev.items() if v is not None}))
    return lines


def run(lines: list[bytes], policy_text: str, gc_off: bool = True) -> tuple[float, Replay, int]:
    replay = Replay(loads_policy(policy_text))
    feed = replay.feed
    decisions = 0
    gc.collect()
    if gc_off:
        gc.disable()  # the cyclic GC rescans millions of long-lived objects; the engine makes no cycles
    try:
        t = time.perf_counter()
        for line in lines:
            for o in feed(parse_event(line)):
                if o.kind == "decision":
                    decisions += 1
        replay.drain()
        return time.perf_counter() - t, replay, decisions
    finally:
        gc.enable()


def baseline(lines: list[bytes]) -> float:
    loads = orjson.loads
    t = time.perf_counter()
    for line in lines:
        loads(line)
    return time.perf_counter() - t


class _FloorSession:
    __slots__ = ("last", "ip", "n")


def floor(lines: list[bytes]) -> float:
    """The least any CPython engine does per event: ``orjson.loads``, four field reads, the
    user's and the session's dict lookups, three attribute writes. No validation, time parsing,
    deadlines, sightings or outputs: a ceiling for the engine's rate on this machine."""
    loads = orjson.loads
    store: dict[str, dict[str, _FloorSession]] = {}
    t = time.perf_counter()
    for line in lines:
        d = loads(line)
        ts, user, sess, ip = d.get("ts"), d.get("user"), d.get("session"), d.get("ip")
        if type(user) is not str or type(sess) is not str:
            continue
        us = store.get(user)
        if us is None:
            us = store[user] = {}
        s = us.get(sess)
        if s is None:
            s = us[sess] = _FloorSession()
            s.n = 0
        s.last = ts
        s.ip = ip
        s.n += 1
    return time.perf_counter() - t


def compare_activity(admins: list[bytes], everyone: list[bytes], rounds: int) -> dict[str, object]:
    """The replay rate with the activity conditions vs policy only, on two mixes.

    Each round runs, in turn, policy only and policy + activity rules on each mix; the figures are
    medians over the rounds (one pair of runs swings by more than the 10 % being judged here).
    ``admins``: privileged actions come from admin sessions only, so the privileged rule binds at
    most one session in ten (1,388 of 20k in a 200k-event stream), and the bytes and rate rules
    almost none (50 MB per 5 min, 300 requests a minute: one session in that stream).
    ``everyone``: every session makes privileged actions, so the rule tightens and later relaxes
    nearly every session: a stress case, where the conditions cause many more outputs.
    """
    mixes = {"admins": admins, "everyone": everyone}
    runs: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for _ in range(rounds):
        for mix, stream in mixes.items():
            for label, text in (("policy", POLICY), ("activity", POLICY + ACTIVITY_RULES)):
                secs, rep, _ = run(stream, text)
                runs.setdefault((mix, label), []).append(secs)
                counts[(mix, label)] = dict(rep.engine.counts)
    out: dict[str, object] = {}
    for mix, stream in mixes.items():
        n = len(stream)
        p = statistics.median(runs[(mix, "policy")])
        r = statistics.median(runs[(mix, "activity")])
        diff = (p - r) / r * 100  # rate change: n/r vs n/p
        ok = "within" if diff >= -10 else "OUTSIDE"
        cp, ca = counts[(mix, "policy")], counts[(mix, "activity")]
        each = " ".join(f"{n / x / 1000:.1f}k" for x in runs[(mix, "activity")])
        print(f"activity  {mix + ' privileged,':20s} median of {rounds}: policy only {n / p:>9,.0f}/s, "
              f"with activity rules {n / r:>9,.0f}/s ({each}) -> {diff:+.1f}% ({ok} 10%); outputs "
              f"{cp['decisions'] + cp['audits']:,} -> {ca['decisions'] + ca['audits']:,}, "
              f"{ca['automatic']:,} automatic")
        out[mix] = {"policy_per_s": round(n / p), "activity_per_s": round(n / r), "change_pct": round(diff, 1),
                    "outputs_policy": cp["decisions"] + cp["audits"], "outputs_activity": ca["decisions"] + ca["audits"]}
    return out


def memory_per_session(lines: list[bytes], policy_text: str) -> tuple[float, float, int]:
    """Bytes per live session of the engine state (and of the IDS join), with tracemalloc."""
    policy = loads_policy(policy_text.replace('idle = "30m"', 'idle = "30d"').replace('absolute = "12h"', 'absolute = "30d"'))
    replay = Replay(policy)
    events = [parse_event(x) for x in lines]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    for ev in events:
        replay.feed(ev)
    gc.collect()
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    sight_total = eng_total = 0
    for stat in snap.compare_to(base, "filename"):
        if stat.traceback[0].filename.endswith("join.py"):
            sight_total += stat.size_diff
        else:
            eng_total += stat.size_diff
    live = replay.engine.live_sessions()
    return eng_total / max(live, 1), sight_total / max(live, 1), live


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--sessions", type=int, default=None, help="default: events / 10")
    ap.add_argument("--activity-rules", action="store_true", help="also run with the activity conditions (privileged, rate, bytes)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--with-gc", action="store_true", help="also time the policy-only run with the cyclic GC on")
    ap.add_argument("--rounds", type=int, default=3,
                    help="--activity-rules: interleaved rounds of each run (the comparison uses medians)")
    a = ap.parse_args(argv)
    sessions = a.sessions or max(1, a.events // 10)
    print(f"generating {a.events:,} events over {sessions:,} sessions ...", file=sys.stderr)
    lines = make_lines(a.events, sessions)
    n = len(lines)
    b = baseline(lines)
    print(f"baseline  orjson.loads only        : {n / b:>12,.0f} events/s  ({b:.2f} s)")
    gc.disable()
    try:
        fl = floor(lines)
    finally:
        gc.enable()
    print(f"baseline  floor (loads + 2 lookups): {n / fl:>12,.0f} events/s  ({fl:.2f} s; the least any engine in "
          f"CPython does per event: {fl / n * 1e6:.2f} us of the 5 us a 200k/s rate allows)")
    secs, replay, dec = run(lines, POLICY)
    rate = n / secs
    goal = "meets" if rate >= 200_000 else "BELOW"
    print(f"engine    parse_event + Replay.feed: {rate:>12,.0f} events/s  ({secs:.2f} s, {dec:,} decisions, "
          f"{replay.engine.counts['audits']:,} audits) -> {goal} goal 200k/s; {b / secs * 100:.0f}% of baseline rate")
    if a.with_gc:
        secs_gc, _, _ = run(lines, POLICY, gc_off=False)
        print(f"engine    same, cyclic GC enabled  : {n / secs_gc:>12,.0f} events/s  ({secs_gc:.2f} s)")
    figures: dict[str, object] = {"events": n, "sessions": sessions, "loads_per_s": round(n / b),
                                  "floor_per_s": round(n / fl), "policy_only_per_s": round(rate)}
    if a.activity_rules:
        figures["activity_rules"] = compare_activity(lines, make_lines(a.events, sessions, privileged="everyone"), a.rounds)
    if not a.no_memory:
        m = min(n, 300_000)
        for label, text in [("policy only", POLICY)] + ([("activity rules", POLICY + ACTIVITY_RULES)] if a.activity_rules else []):
            per, sight, live = memory_per_session(lines[:m], text)
            goal = "meets" if per <= 1024 else "ABOVE"
            print(f"memory    engine state per live session ({label}): {per:,.0f} B over {live:,} live sessions "
                  f"(first {m:,} events) -> {goal} goal 1 KiB; sighting index: {sight:,.0f} B per session; "
                  f"engine + sightings: {per + sight:,.0f} B")
            key = label.replace(" ", "_")
            figures[f"bytes_per_session_{key}"] = round(per)
            figures[f"sighting_bytes_per_session_{key}"] = round(sight)
    record("engine", **figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
