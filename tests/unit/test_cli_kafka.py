"""``lapse kafka``: the local broker of a source checkout, from the command line."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.broker import free_port


def _lapse(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_kafka_status_says_no_broker_answers_and_fails_when_none_runs(tmp_path):
    port, ctl = free_port(), free_port()
    out = _lapse("kafka", "status", LAPSE_KAFKA_PORT=str(port), LAPSE_KAFKA_CONTROLLER_PORT=str(ctl),
                 LAPSE_KAFKA_DATA=str(tmp_path / "data"))
    assert out.returncode != 0
    assert str(port) in out.stdout + out.stderr


def test_kafka_refuses_an_unknown_action():
    out = _lapse("kafka", "explode")
    assert out.returncode == 2 and "explode" in out.stderr
