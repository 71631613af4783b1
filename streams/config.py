"""Settings of a lapse process, read once from the environment and an optional TOML file.

Precedence: environment variable > ``[lapse]`` table of the file named by ``LAPSE_CONFIG`` >
default. Secrets (SASL password, admin token, signing key) are never read from the TOML file's
literal values unless they point to a file: use ``*_FILE`` variables or the environment.

=================================  ==========================================  =====================
environment                        meaning                                     default
=================================  ==========================================  =====================
LAPSE_BOOTSTRAP                    Kafka bootstrap servers (comma separated)   127.0.0.1:9092
LAPSE_SECURITY_PROTOCOL            PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL    PLAINTEXT
LAPSE_SASL_MECHANISM               PLAIN, SCRAM-SHA-256, SCRAM-SHA-512         PLAIN
LAPSE_SASL_USERNAME                SASL user
LAPSE_SASL_PASSWORD[_FILE]         SASL password (or a file holding it)
LAPSE_SSL_CAFILE                   CA bundle for SSL / SASL_SSL
LAPSE_TOPIC_PREFIX                 prefix of every lapse topic                 lapse.
LAPSE_PARTITIONS                   partitions of the keyed topics              6
LAPSE_APP_ID                       Faust app id = consumer group               lapse
LAPSE_WEB_HOST / LAPSE_WEB_PORT    worker's web server                         127.0.0.1 / 6066
LAPSE_POLICY                       policy TOML file                            built-in default
LAPSE_DATA_DIR                     worker's local data (Faust's files)          .cache/worker
LAPSE_STORE                        memory:// or rocksdb:// (rocksdict)         memory://
LAPSE_SESSION_TIMEOUT_S            consumer-group session timeout (failover)   10
LAPSE_SET_ISSUER                   ``iss`` of the signed revocation tokens     https://lapse.local/
LAPSE_SET_AUDIENCE                 ``aud`` of the signed revocation tokens     lapse-enforcement
LAPSE_SET_USER_ISSUER              the IdP issuer of the user ids: SETs name   (email or opaque)
                                   users as iss_sub
LAPSE_SIGNING_KEY[_FILE]           PEM private key (Ed25519 or RSA >= 2048)    (required by the worker)
LAPSE_ADMIN_TOKEN[_FILE]           admin API bearer token(s), "name:token"     (admin API disabled)
LAPSE_MAX_SESSIONS_PER_USER        live sessions per user; more are revoked    100
LAPSE_MAX_SKEW_S                   events further ahead of the clock refused   300
LAPSE_MAX_EVENT_AGE_S              events older than this refused (raised to   3024000 (35 d)
                                   the policy's longest absolute limit)
LAPSE_MAX_RECORD_BYTES             largest changelog record a worker writes    900000
LAPSE_STALL_S                      input waiting this long undecided: /health  30
                                   is not ok
LAPSE_HEARTBEAT_S                  signed heartbeats on the revocations topic  5
LAPSE_BATCH_MAX                    events per batch of the user lane           100
LAPSE_BATCH_WITHIN_S               how long a batch may wait to fill           0.05
LAPSE_LINGER_MS                    producer linger                             5
LAPSE_COMMIT_PENDING               decided steps in flight before waiting      8
LAPSE_COMMIT_INTERVAL_S            longest time between commit points          1.0
LAPSE_CATCHUP_MAX_S                deadlines wait for the input present at     15
                                   an assignment at most this long
LAPSE_LIVE_MAX                     live objects per table (rocksdb://)         1000000
LAPSE_STREAM_BUFFER                messages an inbox holds                     65536
LAPSE_GC_FREEZE                    freeze garbage-collection survivors (1/0)   1
LAPSE_INTERNAL_KEY[_FILE]          MAC secret(s) of internal records, one a    derived from the
                                   line, the first seals (streams/service/     signing key
                                   sealed.py)
=================================  ==========================================  =====================
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def default_policy_path() -> str:
    """The policy a worker runs when ``LAPSE_POLICY`` names none (shipped with the package)."""
    return str(Path(__file__).resolve().parent / "policy.default.toml")


class ConfigError(ValueError):
    """A setting has a value lapse cannot use; the message names the setting."""


def _read_secret(env: dict[str, str], name: str, file_values: dict[str, Any]) -> str | None:
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE") or file_values.get(f"{name.lower().removeprefix('lapse_')}_file")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return None


#: state stores: Faust's memory store (state rebuilt from the changelog at start), or its RocksDB
#: store through rocksdict, under LiveState (streams/service/state/livestate.py)
STORES = ("memory://", "rocksdb://")
#: durations that may be 0 (no fill wait; a commit point at every step)
_ZERO_OK = frozenset({"batch_within_s", "commit_interval_s", "catchup_max_s"})


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    internal_key: str | None = field(default=None, repr=False)  # see streams/service/pipeline/sealed.py
    ssl_cafile: str | None = None
    topic_prefix: str = "lapse."
    partitions: int = 6
    app_id: str = "lapse"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    policy: str | None = None
    data_dir: str = ".cache/worker"
    store: str = "memory://"  # see STORES
    session_timeout_s: int = 10
    set_issuer: str = "https://lapse.local/"
    set_audience: str = "lapse-enforcement"
    #: the identity provider whose ``sub`` the user ids are: SETs then name users as ``iss_sub``
    set_user_issuer: str | None = None
    #: hostile-input bounds (docs/hostile-input.md)
    max_sessions_per_user: int = 100
    max_skew_s: float = 300.0
    max_event_age_s: float = 35 * 86400.0
    max_record_bytes: int = 900_000
    stall_s: float = 30.0
    heartbeat_s: float = 5.0
    #: the worker's pipeline (docs/service.md): batch size and fill wait, producer linger, steps in
    #: flight, commit interval, catch-up wait after an assignment, live objects per RocksDB table,
    #: inbox size, freezing of garbage-collection survivors
    batch_max: int = 100
    batch_within_s: float = 0.05
    linger_ms: int = 5
    commit_pending: int = 8
    commit_interval_s: float = 1.0
    catchup_max_s: float = 15.0
    live_max: int = 1_000_000
    stream_buffer: int = 65536
    gc_freeze: bool = True

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        file_values: dict[str, Any] = {}
        if env.get("LAPSE_CONFIG"):
            path = Path(env["LAPSE_CONFIG"])
            try:
                file_values = tomllib.loads(path.read_text()).get("lapse", {})
            except OSError as exc:
                raise ConfigError(f"LAPSE_CONFIG: cannot read {path}: {exc.strerror}") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"LAPSE_CONFIG: {path} is not valid TOML: {exc}") from None
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in ("sasl_password", "internal_key"):  # secrets: below
                continue
            key = f"LAPSE_{f.name.upper()}"
            if key in env:
                values[f.name] = env[key]
            elif f.name in file_values:
                values[f.name] = file_values[f.name]
        values["sasl_password"] = _read_secret(env, "LAPSE_SASL_PASSWORD", file_values)
        values["internal_key"] = _read_secret(env, "LAPSE_INTERNAL_KEY", file_values)
        for name in ("partitions", "web_port", "session_timeout_s", "max_sessions_per_user", "max_record_bytes",
                     "batch_max", "linger_ms", "commit_pending", "live_max", "stream_buffer"):
            if name in values:
                try:
                    values[name] = int(values[name])
                except (TypeError, ValueError):
                    raise ConfigError(f"LAPSE_{name.upper()}: expected an integer, got {values[name]!r}") from None
        for name in ("max_skew_s", "max_event_age_s", "stall_s", "heartbeat_s", "batch_within_s", "commit_interval_s",
                     "catchup_max_s"):
            if name in values:
                try:
                    values[name] = float(values[name])
                except (TypeError, ValueError):
                    raise ConfigError(f"LAPSE_{name.upper()}: expected a number of seconds, got {values[name]!r}") from None
                if not 0 <= values[name] < 10 * 365 * 86400 or (values[name] == 0 and name not in _ZERO_OK):
                    raise ConfigError(f"LAPSE_{name.upper()}: expected a positive number of seconds, got {values[name]!r}")
        if "gc_freeze" in values:
            raw = str(values["gc_freeze"]).strip().lower()
            if raw not in ("1", "0", "true", "false"):
                raise ConfigError(f"LAPSE_GC_FREEZE: expected 1 or 0, got {values['gc_freeze']!r}")
            values["gc_freeze"] = raw in ("1", "true")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.security_protocol not in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}:
            raise ConfigError(f"LAPSE_SECURITY_PROTOCOL: unknown protocol {self.security_protocol!r}")
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ConfigError("LAPSE_SASL_USERNAME and LAPSE_SASL_PASSWORD(_FILE) are required with SASL")
        if self.partitions < 1:
            raise ConfigError(f"LAPSE_PARTITIONS: must be >= 1, got {self.partitions}")
        if self.store == "rocksdict://":  # the driver's name, as Faust's docs spell the option
            object.__setattr__(self, "store", "rocksdb://")
        if self.store not in STORES:
            raise ConfigError(f"LAPSE_STORE: expected one of {', '.join(STORES)} (rocksdict:// is rocksdb://), "
                              f"got {self.store!r}")
        if not self.bootstrap.strip():
            raise ConfigError("LAPSE_BOOTSTRAP: empty")
        for name in ("batch_max", "commit_pending", "live_max", "stream_buffer"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LAPSE_{name.upper()}: must be >= 1, got {getattr(self, name)}")
        if self.linger_ms < 0:
            raise ConfigError(f"LAPSE_LINGER_MS: must be >= 0, got {self.linger_ms}")
        if self.max_sessions_per_user < 1:
            raise ConfigError(f"LAPSE_MAX_SESSIONS_PER_USER: must be >= 1, got {self.max_sessions_per_user}")
        if not 64 * 1024 <= self.max_record_bytes <= 64 * 1024 * 1024:
            raise ConfigError(f"LAPSE_MAX_RECORD_BYTES: must be between 65536 and 67108864 (at most the "
                              f"changelog topic's max.message.bytes), got {self.max_record_bytes}")

    def kafka_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for aiokafka clients."""
        kw: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password)
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return kw

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"
