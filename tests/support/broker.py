"""A real Kafka broker for tests: reuse one that answers, or start a private one on free ports."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKACTL = REPO / "infra" / "kafka" / "kafkactl.py"

_spec = importlib.util.spec_from_file_location("kafkactl", KAFKACTL)
kafkactl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kafkactl)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    bootstrap: str
    env: dict[str, str] | None = None  # set when we started it (for kafkactl down)
    owned: bool = False

    def stop(self) -> None:
        if self.owned and self.env is not None:
            subprocess.run([sys.executable, str(KAFKACTL), "reset"], env=self.env, check=False,
                           stdout=subprocess.DEVNULL)


def ensure_broker() -> Broker:
    """Reuse the broker named by LAPSE_BOOTSTRAP (default 127.0.0.1:9092) or start a private one."""
    bootstrap = os.environ.get("LAPSE_BOOTSTRAP", "127.0.0.1:9092")
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if kafkactl.metadata_ok(host, int(port)):
        return Broker(bootstrap)
    data = tempfile.mkdtemp(prefix="lapse-test-kafka-")
    env = dict(os.environ)
    env.update(
        LAPSE_KAFKA_PORT=str(free_port()),
        LAPSE_KAFKA_CONTROLLER_PORT=str(free_port()),
        LAPSE_KAFKA_DATA=data,
    )
    subprocess.run([sys.executable, str(KAFKACTL), "up"], env=env, check=True)
    return Broker(f"127.0.0.1:{env['LAPSE_KAFKA_PORT']}", env=env, owned=True)
