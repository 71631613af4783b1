#!/usr/bin/env python3
"""Run a single-node Apache Kafka 4.x broker (KRaft, combined broker + controller) on loopback.

The broker's jars come from Maven Central through ``infra/kafka/pom.xml`` (no tarball, no Docker)
and the broker runs with ``java -cp``. Standard library only, so it works before any virtualenv.

Commands::

    kafkactl.py up       # idempotent: fetch jars if missing, format storage once, start, wait
    kafkactl.py down     # stop the broker started from this data folder
    kafkactl.py reset    # down, then delete the data folder
    kafkactl.py status   # exit 0 when the broker answers a metadata request
    kafkactl.py fetch    # only fetch the jars

Environment (all optional):

=========================  ===========================================  ======================
variable                   meaning                                      default
=========================  ===========================================  ======================
LAPSE_KAFKA_PORT           client listener on 127.0.0.1                 9092
LAPSE_KAFKA_CONTROLLER_PORT  controller listener on 127.0.0.1           9093
LAPSE_KAFKA_DATA           data folder (logs, meta.properties, pid)     <repo>/.cache/kafka/data
LAPSE_KAFKA_LIBS           jar folder                                   <repo>/.cache/kafka/libs
LAPSE_KAFKA_HEAP           fixed JVM heap                               512m
LAPSE_KAFKA_START_TIMEOUT  seconds to wait for the first metadata reply  90
=========================  ===========================================  ======================
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


class KafkaCtlError(RuntimeError):
    """A failure with a message meant for the person at the terminal."""


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).resolve() if value else default


class Config:
    """Where the broker listens and keeps its files, read from the environment once."""

    def __init__(self) -> None:
        self.port = self._port("LAPSE_KAFKA_PORT", 9092)
        self.controller_port = self._port("LAPSE_KAFKA_CONTROLLER_PORT", 9093)
        if self.port == self.controller_port:
            raise KafkaCtlError(
                f"LAPSE_KAFKA_PORT and LAPSE_KAFKA_CONTROLLER_PORT are both {self.port}; they must differ"
            )
        self.data = _env_path("LAPSE_KAFKA_DATA", REPO / ".cache" / "kafka" / "data")
        self.libs = _env_path("LAPSE_KAFKA_LIBS", REPO / ".cache" / "kafka" / "libs")
        self.heap = os.environ.get("LAPSE_KAFKA_HEAP", "512m")
        self.start_timeout = float(os.environ.get("LAPSE_KAFKA_START_TIMEOUT", "90"))

    @staticmethod
    def _port(name: str, default: int) -> int:
        raw = os.environ.get(name, str(default))
        try:
            port = int(raw)
        except ValueError:
            raise KafkaCtlError(f"{name} must be a port number, got {raw!r}") from None
        if not 0 < port < 65536:
            raise KafkaCtlError(f"{name} must be between 1 and 65535, got {port}")
        return port

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def logs_dir(self) -> Path:
        return self.data / "logs"

    @property
    def pid_file(self) -> Path:
        return self.data / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data / "broker.log"

    @property
    def properties_file(self) -> Path:
        return self.data / "server.properties"


# --------------------------------------------------------------------------- prerequisites


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaCtlError("java not found: install a JDK 17 or newer (Debian: apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    # 'openjdk version "17.0.15"' or 'java version "1.8.0_..."'
    try:
        ver = out.split('"')[1]
        major = int(ver.split(".")[1] if ver.startswith("1.") else ver.split(".")[0])
    except (IndexError, ValueError):
        major = 17
    if major < 17:
        raise KafkaCtlError(f"Kafka 4 needs Java 17 or newer; `java -version` says {ver!r}: install a JDK 17+")
    return java


def fetch_jars(cfg: Config) -> None:
    """Copy kafka_2.13 and its runtime dependencies from Maven Central into cfg.libs."""
    if any(cfg.libs.glob("kafka_2.13-*.jar")):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaCtlError("mvn not found: install Apache Maven 3.8+ (Debian: apt-get install maven); it fetches the Kafka jars")
    cfg.libs.mkdir(parents=True, exist_ok=True)
    print(f"kafkactl: fetching Apache Kafka jars from Maven Central into {cfg.libs} ...", file=sys.stderr)
    t0 = time.monotonic()
    proc = subprocess.run(
        [mvn, "-B", "-q", "-f", str(HERE / "pom.xml"), "dependency:copy-dependencies", f"-Dkafka.libdir={cfg.libs}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not any(cfg.libs.glob("kafka_2.13-*.jar")):
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise KafkaCtlError(f"could not fetch the Kafka jars with Maven (exit {proc.returncode}):\n{tail}")
    print(f"kafkactl: jars fetched in {time.monotonic() - t0:.1f}s", file=sys.stderr)


def classpath(cfg: Config) -> str:
    jars = sorted(str(p) for p in cfg.libs.glob("*.jar"))
    if not jars:
        raise KafkaCtlError(f"no jars in {cfg.libs}: run `kafkactl.py fetch`")
    return os.pathsep.join(jars)


# --------------------------------------------------------------------------- the wire check


def metadata_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a Kafka broker at host:port answers a Metadata (v0) request.

    A bare TCP connect is not enough: the socket accepts before the broker can serve requests.
    """
    client_id = b"lapse-kafkactl"
    body = struct.pack(">hhih", 3, 0, 7, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 8)
            size, correlation = struct.unpack(">ii", header)
            if correlation != 7 or size < 8:
                return False
            payload = _recv_exact(sock, size - 4)
            (n_brokers,) = struct.unpack(">i", payload[:4])
            return n_brokers >= 1
    except OSError:
        return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------- process


def read_pid(cfg: Config) -> int | None:
    try:
        pid = int(cfg.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # a recycled pid is not our broker
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"kafka.Kafka" not in cmdline:
            return None
    except OSError:
        pass
    return pid


def write_properties(cfg: Config) -> None:
    cfg.data.mkdir(parents=True, exist_ok=True)
    props = f"""\
# written by infra/kafka/kafkactl.py; edits are overwritten on `up`
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{cfg.controller_port}
listeners=PLAINTEXT://127.0.0.1:{cfg.port},CONTROLLER://127.0.0.1:{cfg.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{cfg.port},CONTROLLER://127.0.0.1:{cfg.controller_port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={cfg.logs_dir}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=2097152
log.retention.hours=168
num.network.threads=2
num.io.threads=4
"""
    cfg.properties_file.write_text(props)
    (cfg.data / "log4j2.properties").write_text(
        "status = warn\n"
        "appender.console.type = Console\n"
        "appender.console.name = STDOUT\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.stdout.ref = STDOUT\n"
        "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
        "logger.kafkaorg.name = org.apache.kafka\nlogger.kafkaorg.level = WARN\n"
        "logger.started.name = kafka.server.KafkaRaftServer\nlogger.started.level = INFO\n"
    )


def java_cmd(cfg: Config, java: str, main: str, *args: str) -> list[str]:
    return [
        java,
        f"-Xms{cfg.heap}",
        f"-Xmx{cfg.heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        "-Djava.net.preferIPv4Stack=true",
        f"-Dlog4j2.configurationFile={cfg.data / 'log4j2.properties'}",
        "-cp",
        classpath(cfg),
        main,
        *args,
    ]


def format_storage(cfg: Config, java: str) -> None:
    if (cfg.logs_dir / "meta.properties").exists():
        return
    cluster_id = _random_cluster_id()
    proc = subprocess.run(
        java_cmd(cfg, java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(cfg.properties_file), "--standalone"),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise KafkaCtlError(
            f"formatting {cfg.logs_dir} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}\n"
            "If the data folder is from another cluster or damaged, run `make kafka-reset`."
        )


def _random_cluster_id() -> str:
    # Kafka's StorageTool random-uuid prints a base64url (no padding) of 16 random bytes
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def log_tail(cfg: Config, n: int = 40) -> str:
    try:
        lines = cfg.log_file.read_text(errors="replace").splitlines()
    except OSError:
        return "(no broker log)"
    return "\n".join(lines[-n:])


CORRUPTION_HINTS = (
    "meta.properties",
    "CorruptRecordException",
    "InconsistentClusterIdException",
    "Invalid cluster.id",
    "doesn't match stored",
    "KafkaStorageException",
    "does not match",
    "bootstrap.checkpoint",
)


def up(cfg: Config) -> None:
    java = require_java()
    pid = read_pid(cfg)
    if pid is not None and metadata_ok("127.0.0.1", cfg.port):
        print(f"kafkactl: broker already up at {cfg.bootstrap} (pid {pid})")
        return
    if pid is None and metadata_ok("127.0.0.1", cfg.port):
        print(f"kafkactl: a Kafka broker already answers at {cfg.bootstrap}; using it")
        return
    fetch_jars(cfg)
    if pid is None:
        for name, port in (("LAPSE_KAFKA_PORT", cfg.port), ("LAPSE_KAFKA_CONTROLLER_PORT", cfg.controller_port)):
            if not port_free(port):
                raise KafkaCtlError(
                    f"port {port} on 127.0.0.1 is already taken by another program ({name}); "
                    f"stop it or choose another port, e.g. {name}={port + 100}"
                )
        write_properties(cfg)
        format_storage(cfg, java)
        t0 = time.monotonic()
        log = open(cfg.log_file, "ab")
        proc = subprocess.Popen(
            java_cmd(cfg, java, "kafka.Kafka", str(cfg.properties_file)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        cfg.pid_file.write_text(str(proc.pid))
        pid = proc.pid
    else:
        proc = None
        t0 = time.monotonic()
    deadline = t0 + cfg.start_timeout
    while time.monotonic() < deadline:
        if metadata_ok("127.0.0.1", cfg.port, timeout=1.0):
            print(f"kafkactl: broker up at {cfg.bootstrap} (pid {pid}) in {time.monotonic() - t0:.1f}s")
            return
        if proc is not None and proc.poll() is not None:
            tail = log_tail(cfg)
            hint = ""
            if any(h in tail for h in CORRUPTION_HINTS):
                hint = f"\nThe data folder {cfg.data} looks damaged or from another cluster: run `make kafka-reset`."
            raise KafkaCtlError(f"the broker exited with status {proc.returncode} while starting.{hint}\nlog tail:\n{tail}")
        time.sleep(0.25)
    raise KafkaCtlError(
        f"the broker did not answer a metadata request at {cfg.bootstrap} within {cfg.start_timeout:.0f}s "
        f"(LAPSE_KAFKA_START_TIMEOUT); log tail ({cfg.log_file}):\n{log_tail(cfg)}"
    )


def down(cfg: Config, timeout: float = 30.0) -> None:
    pid = read_pid(cfg)
    if pid is None:
        print("kafkactl: no broker running from this data folder")
        cfg.pid_file.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        _reap(pid)
        time.sleep(0.2)
    else:
        print(f"kafkactl: broker {pid} ignored SIGTERM for {timeout:.0f}s; killing it", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
    cfg.pid_file.unlink(missing_ok=True)
    print(f"kafkactl: broker {pid} stopped")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def reset(cfg: Config) -> None:
    down(cfg)
    if cfg.data.exists():
        shutil.rmtree(cfg.data)
    print(f"kafkactl: removed {cfg.data}")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in {"up", "down", "reset", "status", "fetch"}:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        cfg = Config()
        cmd = argv[0]
        if cmd == "up":
            up(cfg)
        elif cmd == "down":
            down(cfg)
        elif cmd == "reset":
            reset(cfg)
        elif cmd == "fetch":
            require_java()
            fetch_jars(cfg)
        elif cmd == "status":
            ok = metadata_ok("127.0.0.1", cfg.port)
            print(f"kafkactl: broker at {cfg.bootstrap} is {'up' if ok else 'down'}")
            return 0 if ok else 1
    except KafkaCtlError as exc:
        print(f"kafkactl: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
