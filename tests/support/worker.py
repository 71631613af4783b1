"""Real ``lapse worker`` processes for integration tests, and helpers to read what they publish."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import orjson

from enforce.wire import HEARTBEAT_KEY

from streams.service.pipeline.sealed import MAGIC, OVERHEAD
from tests.support import process
from tests.support.broker import REPO, free_port


def write_policy(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def make_key(tmp: Path) -> Path:
    from streams.publish.keys import generate_key

    key = tmp / "signing.pem"
    if not key.exists():
        generate_key(key)
    return key


#: a policy for tests that revoke on IDS alerts: an hour idle, critical and high alerts revoke
IDS_POLICY = """
[defaults]
idle = "1h"
absolute = "8h"
[ids]
revoke = ["critical", "high"]
step_up = ["medium"]
lookback = "1h"
[adaptive]
enabled = false
"""


class WorkerProcess:
    """One ``lapse worker`` subprocess on the real broker."""

    def __init__(self, bootstrap: str, prefix: str, app_id: str, policy: Path, key: Path, tmp: Path,
                 name: str = "w1", extra_env: dict[str, str] | None = None) -> None:
        self.web_port = free_port()
        self.log_path = tmp / f"{name}.log"
        self.env = dict(os.environ)
        self.env.update(
            LAPSE_BOOTSTRAP=bootstrap, LAPSE_TOPIC_PREFIX=prefix, LAPSE_APP_ID=app_id, LAPSE_POLICY=str(policy),
            LAPSE_SIGNING_KEY_FILE=str(key), LAPSE_WEB_PORT=str(self.web_port),
            LAPSE_DATA_DIR=str(tmp / f"{name}-data"), LAPSE_SESSION_TIMEOUT_S="6",
        )
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"],
                                     env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None
        except Exception:
            return 0, None

    async def wait_ready(self, timeout: float = 90.0, partitions: int | None = None) -> float:
        """Wait for /ready; returns the time it became ready (wall clock)."""
        end = time.time() + timeout
        while time.time() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            status, body = self.get("/ready")
            if status == 200 and (partitions is None or len(body["partitions"]) == partitions):
                return time.time()
            await asyncio.sleep(0.2)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def kill9(self) -> None:
        process.kill9(self.proc)

    def stop(self) -> None:
        process.stop(self.proc, 30.0)


async def produce(bootstrap: str, prefix: str, items: list[tuple[str, dict | bytes]], key_of: Callable | None = None) -> None:
    """Produce ``(topic_name, event)`` items in order; events keyed by user (alerts by src_ip)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        for topic, event in items:
            if isinstance(event, (bytes, bytearray)):
                value, key = bytes(event), b"poison"
            else:
                value = orjson.dumps(event)
                k = (key_of(event) if key_of else None) or event.get("user") or event.get("src_ip") or ""
                key = k.encode()
            await producer.send(prefix + topic, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


class TopicReader:
    """Reads a topic from the beginning in the background; ``records`` grows as messages arrive."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                         group_id=None, enable_auto_commit=False)
        self.records: list[tuple[bytes | None, Any, float]] = []  # (key, parsed value, arrival time)
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> "TopicReader":
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    if r.key == HEARTBEAT_KEY:  # the worker's liveness beacon on the revocations topic
                        continue
                    value = r.value
                    if value[:3] == MAGIC:  # a sealed internal record: its payload (not verified here)
                        value = value[OVERHEAD:]
                    self.records.append((r.key, orjson.loads(value), time.time()))

    async def __aexit__(self, *exc: Any) -> None:
        assert self.task is not None
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        await self.consumer.stop()

    async def wait_end(self, timeout: float) -> None:
        """Wait until this reader has read every record its topic holds now."""
        tps = self.consumer.assignment()
        ends = await self.consumer.end_offsets(list(tps))
        deadline = time.time() + timeout
        while [tp for tp, end in ends.items() if await self.consumer.position(tp) < end]:
            if time.time() > deadline:
                raise AssertionError(f"reader behind the end of its topic after {timeout}s")
            await asyncio.sleep(0.05)

    def values(self) -> list[Any]:
        return [v for _, v, _ in self.records]

    async def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float,
                       explain: Callable[[list[Any]], str] | None = None) -> None:
        end = time.time() + timeout
        while not predicate(self.values()):
            if time.time() > end:
                more = explain(self.values()) if explain else ""
                raise AssertionError(f"timed out after {timeout}s; have {len(self.records)} records. {more}")
            await asyncio.sleep(0.1)


async def wait_settled(bootstrap: str, group: str, topics: list[str], readers: tuple["TopicReader", ...] = (),
                       timeout: float = 60.0) -> None:
    """Wait until ``group`` has committed every record now on ``topics`` and each reader has read
    its topic to the end. The worker commits an input only after the broker acknowledged what it
    decided from it, so once this returns nothing more can come of the input produced before the
    call: a test can then assert that nothing extra came out, without a fixed sleep."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await admin.start()
    await probe.start()
    try:
        from aiokafka import TopicPartition

        tps = [TopicPartition(t, p) for t in topics for p in (probe.partitions_for_topic(t) or
                                                              await _partitions(probe, t))]
        ends = await probe.end_offsets(tps)
        deadline = time.time() + timeout
        while True:
            committed = await admin.list_consumer_group_offsets(group)
            behind = {tp: end for tp, end in ends.items()
                      if end > 0 and (committed.get(tp) is None or committed[tp].offset < end)}
            if not behind:
                break
            if time.time() > deadline:
                raise AssertionError(f"group {group} has not committed {behind} after {timeout}s")
            await asyncio.sleep(0.1)
    finally:
        await probe.stop()
        await admin.close()
    for reader in readers:
        await reader.wait_end(max(1.0, deadline - time.time()))


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


def decision_ids(values: list[Any]) -> list[str]:
    return [v["decision"]["id"] for v in values]


def replay_ids(events: list[dict], policy: Path, tmp: Path) -> list[dict]:
    """Run ``lapse replay --drain`` (the CLI, as a user would) on the same events."""
    path = tmp / "stream.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    out = subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(path), "--policy", str(policy), "--drain"],
                         capture_output=True, cwd=REPO, check=True)
    return [orjson.loads(line) for line in out.stdout.splitlines() if line.strip()]
