"""Broker cold start: first `kafkactl up` with an empty Maven repository (jar fetch included),
then a later start with the jars cached; broker RSS once it answers.

    python bench/broker_start.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, record

sys.path.insert(0, str(REPO / "tests" / "support"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "infra/kafka/kafkactl.py"), "up"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    from broker import free_port  # tests/support/broker.py

    tmp = Path(tempfile.mkdtemp(prefix="lapse-bench-broker-"))
    env = dict(os.environ)
    env.update(LAPSE_KAFKA_PORT=str(free_port()), LAPSE_KAFKA_CONTROLLER_PORT=str(free_port()),
               LAPSE_KAFKA_DATA=str(tmp / "data"), LAPSE_KAFKA_LIBS=str(tmp / "libs"),
               MAVEN_OPTS=f"-Dmaven.repo.local={tmp / 'm2'}")
    ctl = [sys.executable, str(REPO / "infra/kafka/kafkactl.py")]
    try:
        cold = start(env)
        pid = int((tmp / "data" / "broker.pid").read_text())
        time.sleep(2)
        rss = rss_mib(pid)
        subprocess.run(ctl + ["down"], env=env, check=True, stdout=subprocess.DEVNULL)
        warm = start(env)  # jars cached, storage formatted
        subprocess.run(ctl + ["down"], env=env, check=True, stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(ctl + ["reset"], env=env, stdout=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    record("broker_start", cold_start_with_fetch_s=round(cold, 1), warm_start_s=round(warm, 1), broker_rss_mib=round(rss))
    print(f"first start, empty Maven repository (fetch + format + start): {cold:.1f} s")
    print(f"later start (jars cached):                                    {warm:.1f} s")
    print(f"broker RSS after start (heap fixed at 512 MiB):               {rss:.0f} MiB")


if __name__ == "__main__":
    main()
