"""Settings of ``lapse ssf``, read once from the environment (``LAPSE_SSF_*``).

The Kafka connection, topic prefix and the worker's SET issuer / audience (to verify what the
worker published) come from :class:`streams.config.Settings`, as for every lapse process.

=================================  ============================================  =====================
environment                        meaning                                       default
=================================  ============================================  =====================
LAPSE_SSF_HOST / LAPSE_SSF_PORT    where the HTTP server listens                 127.0.0.1 / 6070
LAPSE_SSF_PUBLIC_URL               the base URL receivers use                    http(s)://host:port
LAPSE_SSF_ISSUER                   ``iss`` of the SETs and of the discovery doc  the public URL
LAPSE_SSF_TLS_CERT / _TLS_KEY      PEM certificate chain and key (HTTPS)         (none: HTTP)
LAPSE_SSF_ALLOW_INSECURE           "1": allow plain HTTP beyond loopback         0
LAPSE_SSF_SIGNING_KEY[_FILE]       RSA >= 2048 private key (PEM) of the streams  (required)
LAPSE_SSF_SIGNING_KEY_PASSWORD     decrypts an encrypted PEM
LAPSE_SSF_VERIFY_KEYS_DIR          previous public keys kept in the JWKS
LAPSE_SSF_TOKENS[_FILE]            receivers' bearer tokens, one a line:         (required)
                                   ``name token scopes [aud,...]``
LAPSE_SSF_STATE_DIR                durable state (SQLite, fsync'd)               .cache/ssf
LAPSE_SSF_SOURCE_JWKS              JWKS file that verifies the worker's SETs     the public part of
                                                                                 LAPSE_SIGNING_KEY[_FILE]
LAPSE_SSF_START                    first start only: latest | earliest           latest
LAPSE_SSF_DEFAULT_SUBJECTS         ALL | NONE (SSF ``default_subjects``)         ALL
LAPSE_SSF_ALLOW_HTTP_PUSH          "1": push / logout URLs may be http://        0
                                   (loopback only)
LAPSE_SSF_PUSH_TIMEOUT_S           one push / logout POST                        10
LAPSE_SSF_RETRY_BASE_S / _MAX_S    retry backoff: base, cap (jittered)           0.5 / 60
LAPSE_SSF_POLL_WAIT_S              longest a long poll waits                     15
LAPSE_SSF_REDELIVER_S              an unacknowledged polled SET is offered again 30
LAPSE_SSF_MIN_VERIFICATION_S       min_verification_interval                     5
LAPSE_SSF_BCL_FILE                 TOML: Back-Channel Logout clients             (none)
LAPSE_SSF_BCL_ISSUER               default ``iss`` of logout tokens (the OP's)
LAPSE_SSF_BCL_KEY_FILE             default key of logout tokens (the OP's key)
LAPSE_SSF_BCL_LIFETIME_S           ``exp`` - ``iat`` of a logout token           120
LAPSE_SSF_RECEIVER_FILE            TOML: identity providers lapse receives from  (none)
=================================  ============================================  =====================
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streams.config import ConfigError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("example.com")
    (True, True, False, False)
    """
    h = host.strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def read_secret(env: dict[str, str], name: str) -> str | None:
    """``NAME`` or the contents of the file named by ``NAME_FILE`` (stripped)."""
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return None


def secret_from(table: dict[str, Any], key: str, where: str) -> str | None:
    """A secret named by a TOML table: ``<key>_file`` (a path) or ``<key>_env`` (a variable name);
    a literal ``<key>`` is refused, so no secret is ever written into a config file."""
    if key in table:
        raise ConfigError(f"{where}.{key}: secrets are never literal in a config file; use {key}_file or {key}_env")
    if table.get(f"{key}_file"):
        p = Path(str(table[f"{key}_file"]))
        try:
            return p.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}.{key}_file: cannot read {p}: {exc.strerror}") from None
    if table.get(f"{key}_env"):
        name = str(table[f"{key}_env"])
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"{where}.{key}_env: environment variable {name} is not set")
        return value.strip()
    return None


def load_toml(path: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what}: {path} is not valid TOML: {exc}") from None


def _float(env: dict[str, str], name: str, default: float, lo: float = 0.0, hi: float = 86400.0 * 30) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {raw!r}") from None
    if not lo <= v <= hi:
        raise ConfigError(f"{name}: expected a number between {lo} and {hi}, got {raw!r}")
    return v


def _flag(env: dict[str, str], name: str) -> bool:
    v = env.get(name, "").strip().lower()
    if v in ("", "0", "false", "no", "off"):
        return False
    if v in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}: expected 1 or 0, got {v!r}")


@dataclass(frozen=True)
class SsfSettings:
    host: str = "127.0.0.1"
    port: int = 6070
    public_url: str = ""
    issuer: str = ""
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_insecure: bool = False
    signing_key_file: str | None = None
    signing_key_pem: str | None = field(default=None, repr=False)
    signing_key_password: str | None = field(default=None, repr=False)
    verify_keys_dir: str | None = None
    tokens_text: str = field(default="", repr=False)
    state_dir: str = ".cache/ssf"
    source_jwks: str | None = None
    start: str = "latest"
    default_subjects: str = "ALL"
    allow_http_push: bool = False
    push_timeout_s: float = 10.0
    retry_base_s: float = 0.5
    retry_max_s: float = 60.0
    poll_wait_s: float = 15.0
    redeliver_s: float = 30.0
    min_verification_s: float = 5.0
    bcl_file: str | None = None
    bcl_issuer: str | None = None
    bcl_key_file: str | None = None
    bcl_lifetime_s: float = 120.0
    receiver_file: str | None = None

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> "SsfSettings":
        env = dict(os.environ if env is None else env)
        g = env.get
        host = g("LAPSE_SSF_HOST") or "127.0.0.1"
        try:
            port = int(g("LAPSE_SSF_PORT") or 6070)
        except ValueError:
            raise ConfigError(f"LAPSE_SSF_PORT: expected an integer, got {g('LAPSE_SSF_PORT')!r}") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"LAPSE_SSF_PORT: out of range: {port}")
        cert, key = g("LAPSE_SSF_TLS_CERT") or None, g("LAPSE_SSF_TLS_KEY") or None
        if bool(cert) != bool(key):
            raise ConfigError("LAPSE_SSF_TLS_CERT and LAPSE_SSF_TLS_KEY go together: set both or neither")
        scheme = "https" if cert else "http"
        shown = f"[{host}]" if ":" in host else host
        public = (g("LAPSE_SSF_PUBLIC_URL") or f"{scheme}://{shown}:{port}").rstrip("/")
        issuer = g("LAPSE_SSF_ISSUER") or public
        tokens = read_secret(env, "LAPSE_SSF_TOKENS") or ""
        start = (g("LAPSE_SSF_START") or "latest").lower()
        subjects = (g("LAPSE_SSF_DEFAULT_SUBJECTS") or "ALL").upper()
        s = cls(
            host=host, port=port, public_url=public, issuer=issuer, tls_cert=cert, tls_key=key,
            allow_insecure=_flag(env, "LAPSE_SSF_ALLOW_INSECURE"),
            signing_key_file=g("LAPSE_SSF_SIGNING_KEY_FILE") or None,
            signing_key_pem=g("LAPSE_SSF_SIGNING_KEY") or None,
            signing_key_password=g("LAPSE_SSF_SIGNING_KEY_PASSWORD") or None,
            verify_keys_dir=g("LAPSE_SSF_VERIFY_KEYS_DIR") or None,
            tokens_text=tokens,
            state_dir=g("LAPSE_SSF_STATE_DIR") or ".cache/ssf",
            source_jwks=g("LAPSE_SSF_SOURCE_JWKS") or None,
            start=start, default_subjects=subjects,
            allow_http_push=_flag(env, "LAPSE_SSF_ALLOW_HTTP_PUSH"),
            push_timeout_s=_float(env, "LAPSE_SSF_PUSH_TIMEOUT_S", 10.0, 0.1, 300),
            retry_base_s=_float(env, "LAPSE_SSF_RETRY_BASE_S", 0.5, 0.001, 60),
            retry_max_s=_float(env, "LAPSE_SSF_RETRY_MAX_S", 60.0, 0.01, 3600),
            poll_wait_s=_float(env, "LAPSE_SSF_POLL_WAIT_S", 15.0, 0.0, 300),
            redeliver_s=_float(env, "LAPSE_SSF_REDELIVER_S", 30.0, 0.1, 86400),
            min_verification_s=_float(env, "LAPSE_SSF_MIN_VERIFICATION_S", 5.0, 0.0, 86400),
            bcl_file=g("LAPSE_SSF_BCL_FILE") or None,
            bcl_issuer=g("LAPSE_SSF_BCL_ISSUER") or None,
            bcl_key_file=g("LAPSE_SSF_BCL_KEY_FILE") or None,
            bcl_lifetime_s=_float(env, "LAPSE_SSF_BCL_LIFETIME_S", 120.0, 5, 3600),
            receiver_file=g("LAPSE_SSF_RECEIVER_FILE") or None,
        )
        s.validate()
        return s

    def validate(self) -> None:
        if not is_loopback(self.host) and not self.tls and not self.allow_insecure:
            raise ConfigError(
                f"LAPSE_SSF_HOST={self.host} listens beyond loopback without TLS: set LAPSE_SSF_TLS_CERT and "
                "LAPSE_SSF_TLS_KEY (or LAPSE_SSF_ALLOW_INSECURE=1 behind a TLS-terminating proxy)"
            )
        for name, url in (("LAPSE_SSF_PUBLIC_URL", self.public_url), ("LAPSE_SSF_ISSUER", self.issuer)):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
                raise ConfigError(f"{name}: expected an http(s) URL without query or fragment, got {url!r}")
        if self.start not in ("latest", "earliest"):
            raise ConfigError(f"LAPSE_SSF_START: expected latest or earliest, got {self.start!r}")
        if self.default_subjects not in ("ALL", "NONE"):
            raise ConfigError(f"LAPSE_SSF_DEFAULT_SUBJECTS: expected ALL or NONE, got {self.default_subjects!r}")
        if self.retry_max_s < self.retry_base_s:
            raise ConfigError("LAPSE_SSF_RETRY_MAX_S must be at least LAPSE_SSF_RETRY_BASE_S")

    def ssl_context(self):
        """The server's TLS context (TLS 1.2+), or None without a certificate."""
        if not self.tls:
            return None
        import ssl

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"LAPSE_SSF_TLS_CERT / LAPSE_SSF_TLS_KEY: cannot load: {exc}") from None
        return ctx

    def path_prefix(self) -> str:
        """The path of the public URL ('' or '/something'), under which every endpoint lives."""
        return urlsplit(self.public_url).path.rstrip("/")
