"""infra/kafka/kafkactl.py on bad ground: a taken port, a damaged data folder, Java missing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.support.broker import KAFKACTL, REPO, free_port


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(KAFKACTL), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LAPSE_KAFKA_PORT=str(free_port()), LAPSE_KAFKA_CONTROLLER_PORT=str(free_port()),
               LAPSE_KAFKA_DATA=str(tmp_path / "data"), LAPSE_KAFKA_START_TIMEOUT="40")
    env.update(extra)
    return env


def test_a_taken_port_is_named_in_the_error(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        r = _run(["up"], _env(tmp_path, LAPSE_KAFKA_PORT=str(port)))
    assert r.returncode == 1
    assert f"port {port}" in r.stderr and "LAPSE_KAFKA_PORT" in r.stderr


def test_missing_java_says_what_to_install(tmp_path):
    env = _env(tmp_path, PATH=str(tmp_path))  # no java, no mvn on PATH
    r = _run(["up"], env)
    assert r.returncode == 1 and "java not found" in r.stderr and "JDK 17" in r.stderr


@pytest.mark.slow
def test_a_damaged_data_folder_says_to_run_kafka_reset(tmp_path):
    if not any((REPO / ".cache" / "kafka" / "libs").glob("kafka_2.13-*.jar")):
        pytest.skip("Kafka jars not fetched yet (make kafka-up fetches them)")
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    (logs / "meta.properties").write_text("version=1\ncluster.id=not-this-cluster\nnode.id=7\n")
    r = _run(["up"], _env(tmp_path))
    try:
        assert r.returncode == 1
        assert "kafka-reset" in r.stderr
    finally:
        _run(["down"], _env(tmp_path))


def test_bad_port_values_are_refused_by_name(tmp_path):
    r = _run(["status"], _env(tmp_path, LAPSE_KAFKA_PORT="ninety"))
    assert r.returncode == 1 and "LAPSE_KAFKA_PORT must be a port number" in r.stderr
