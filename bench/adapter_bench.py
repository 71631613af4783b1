"""Adapter throughput per format, against ``orjson.loads`` alone on the same lines, in one run.

Usage: ``python bench/adapter_bench.py [--n 50000] [--repeat 3]``. Lines are realistic records
(the documented-schema fixtures of ``tests/fixtures/adapters``) with varied users, sessions and
times, so no cache helps. Goal: >= 100k events/s for Suricata alerts and Okta events.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from streams.adapters import ADAPTERS
from streams.adapters.errors import AdapterError, Skipped

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "adapters"
GOAL = 100_000


def _named(name: str) -> dict:
    return {k: v for k, v in json.loads((FIXTURES / name).read_text()).items() if not k.startswith("_")}


def _stamp(i: int) -> tuple[str, int]:
    secs = 1714554000 + i
    t = time.gmtime(secs)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t), secs


def workloads(n: int) -> dict[str, list[bytes]]:
    okta, keycloak, trail = _named("okta_events.json"), _named("keycloak_events.json"), _named("cloudtrail_events.json")
    eve = [orjson.loads(line) for line in (FIXTURES / "suricata_eve.jsonl").read_bytes().splitlines()]
    okta_mix = [okta[k] for k in ("session_start", "sso", "session_end", "update_password", "threat_detected")]
    out: dict[str, list[bytes]] = {k: [] for k in (
        "okta (login/sso/logout/...)", "suricata alert", "suricata mixed (40% alert)",
        "keycloak JSON", "keycloak log line", "cloudtrail", "canonical")}
    kc_line = (FIXTURES / "keycloak-events.log").read_bytes().splitlines()[1].decode()
    for i in range(n):
        iso, secs = _stamp(i)
        rec = json.loads(json.dumps(okta_mix[i % len(okta_mix)]))
        rec["published"] = f"{iso}.{i % 1000:03d}Z"
        rec["actor"]["alternateId"] = f"user{i % 5000}@example.com"
        rec.setdefault("authenticationContext", {})["externalSessionId"] = f"102s{i}"
        out["okta (login/sso/logout/...)"].append(orjson.dumps(rec))
        alert = dict(eve[i % 2], timestamp=f"{iso}.{i % 1000000:06d}+0000", src_ip=f"203.0.113.{i % 250}")
        out["suricata alert"].append(orjson.dumps(alert))
        mixed = eve[i % len(eve)]
        out["suricata mixed (40% alert)"].append(orjson.dumps(dict(mixed, timestamp=f"{iso}.000000+0000")))
        kc = dict(keycloak[("login", "refresh_token", "logout")[i % 3]], time=secs * 1000 + i % 1000,
                  sessionId=f"s{i}", userId=f"u{i % 5000}")
        out["keycloak JSON"].append(orjson.dumps(kc))
        out["keycloak log line"].append(kc_line.replace("t2", f"t{i}").encode())
        ct = dict(trail[("console_login", "assume_role")[i % 2]], eventTime=f"{iso}Z")
        out["cloudtrail"].append(orjson.dumps(ct))
        out["canonical"].append(orjson.dumps({"type": "activity", "ts": f"{iso}Z", "user": f"u{i % 5000}",
                                              "session": f"s{i}", "ip": "198.51.100.7", "action": "GET"}))
    return out


def _rate(fn: Callable[[bytes], object], lines: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for line in lines:
            try:
                fn(line)
            except (AdapterError, Skipped):
                pass
        best = min(best, time.perf_counter() - start)
    return len(lines) / best


def _json_loads(line: bytes) -> object:
    if line[:1] != b"{":
        return line.decode().split(", ")
    return orjson.loads(line)


FORMAT_OF = {"okta (login/sso/logout/...)": "okta", "suricata alert": "suricata",
             "suricata mixed (40% alert)": "suricata", "keycloak JSON": "keycloak",
             "keycloak log line": "keycloak", "cloudtrail": "cloudtrail", "canonical": "canonical"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="records per workload")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    args = parser.parse_args()
    loads = workloads(args.n)
    print(f"{'workload':30} {'bytes/rec':>9} {'orjson.loads/s':>15} {'adapter rec/s':>14} {'ratio':>6}  goal")
    for name, lines in loads.items():
        adapter = ADAPTERS[FORMAT_OF[name]]
        base = _rate(_json_loads, lines, args.repeat)
        rate = _rate(adapter, lines, args.repeat)
        size = sum(map(len, lines)) // len(lines)
        goal = ("ok" if rate >= GOAL else "MISSED") if name.startswith(("okta", "suricata alert")) else ""
        print(f"{name:30} {size:9d} {base:15,.0f} {rate:14,.0f} {rate / base:6.2f}  {goal}")
    print("(keycloak log line baseline: str.split, not JSON; rates are records/s, best of "
          f"{args.repeat} runs over {args.n} records)")


if __name__ == "__main__":
    main()
