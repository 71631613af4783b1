"""Signing keys for lapse's Security Event Tokens, and the JWKS that enforcement points verify with.

Where the private key comes from (first match wins; two sources at once is an error):

1. an explicit ``path=`` / ``pem=`` argument (``--key`` on the command line),
2. ``LAPSE_SIGNING_KEY_FILE``: path to a PEM (PKCS#8 or traditional) private key,
3. ``LAPSE_SIGNING_KEY``: the PEM text itself (for secret stores that inject env vars).

``LAPSE_SIGNING_KEY_PASSWORD`` decrypts an encrypted PEM. ``LAPSE_SIGNING_KEY_ID`` overrides the
key id; otherwise the kid is the RFC 7638 JWK thumbprint (SHA-256, base64url), which is stable
and needs no coordination. Ed25519 signs as ``EdDSA`` (``LAPSE_SIGNING_ALG=Ed25519`` selects the
RFC 9864 name); RSA keys (>= 2048 bits) sign as ``RS256``.

Previous public keys, kept in the JWKS during a rotation, come from ``LAPSE_VERIFY_KEYS_DIR``
(a directory of ``*.pem`` public or private keys and ``*.json`` JWK / JWKS files) and/or explicit
paths. See docs/enforcement.md for the rotation procedure.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from joserfc.jwk import OKPKey, RSAKey

from enforce.wire import MIN_RSA_BITS

log = logging.getLogger(__name__)

ENV_KEY_FILE = "LAPSE_SIGNING_KEY_FILE"
ENV_KEY_PEM = "LAPSE_SIGNING_KEY"
ENV_KEY_PASSWORD = "LAPSE_SIGNING_KEY_PASSWORD"
ENV_KEY_ID = "LAPSE_SIGNING_KEY_ID"
ENV_ALG = "LAPSE_SIGNING_ALG"
ENV_VERIFY_DIR = "LAPSE_VERIFY_KEYS_DIR"

DEFAULT_RSA_BITS = 3072


class KeyConfigError(ValueError):
    """The signing or verification key configuration is unusable; the message says how to fix it."""


@dataclass(frozen=True)
class SigningKey:
    """A private signing key with its JOSE identity."""

    key: OKPKey | RSAKey
    kid: str
    alg: str

    @property
    def kty(self) -> str:
        return self.key.key_type

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK, as published in the JWKS."""
        return {**self.key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": self.alg}

    def __repr__(self) -> str:  # never print key material
        return f"SigningKey(kty={self.kty!r}, alg={self.alg!r}, kid={self.kid!r})"


def _from_crypto(private: Any, source: str) -> OKPKey | RSAKey:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return OKPKey.import_key(private)
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < MIN_RSA_BITS:
            raise KeyConfigError(f"{source}: RSA key of {private.key_size} bits is too short; use at least {MIN_RSA_BITS}")
        return RSAKey.import_key(private)
    raise KeyConfigError(f"{source}: {type(private).__name__} keys are not supported; use Ed25519 (default) or RSA >= {MIN_RSA_BITS} bits")


def parse_private_pem(data: bytes, source: str, password: bytes | None = None) -> OKPKey | RSAKey:
    """Import a PEM private key, refusing public keys, other key types and short RSA keys."""
    if b"PRIVATE KEY" not in data:
        if b"PUBLIC KEY" in data or b"CERTIFICATE" in data:
            raise KeyConfigError(f"{source} holds a public key or certificate, not a private signing key")
        raise KeyConfigError(f"{source} is not a PEM private key")
    try:
        private = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:  # encrypted without password, or password for a plain key
        raise KeyConfigError(f"{source}: {exc} (set {ENV_KEY_PASSWORD})") from None
    except ValueError as exc:
        raise KeyConfigError(f"{source}: cannot load the PEM private key ({exc})") from None
    return _from_crypto(private, source)


def _alg_for(key: OKPKey | RSAKey, alg: str | None, source: str) -> str:
    if key.key_type == "RSA":
        if alg not in (None, "RS256"):
            raise KeyConfigError(f"{source}: alg {alg!r} does not fit an RSA key; lapse signs RSA with RS256")
        return "RS256"
    if alg not in (None, "EdDSA", "Ed25519"):
        raise KeyConfigError(f"{source}: alg {alg!r} does not fit an Ed25519 key; use EdDSA or Ed25519")
    return alg or "EdDSA"


def _warn_if_exposed(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("signing key %s is readable by group/others (mode %o); chmod 600 it", path, mode & 0o777)


def load_signing_key(
    path: str | os.PathLike[str] | None = None,
    pem: str | bytes | None = None,
    *,
    kid: str | None = None,
    alg: str | None = None,
    env: Mapping[str, str] | None = None,
) -> SigningKey:
    """The signing key from an explicit path/PEM, else from the environment. Raises KeyConfigError."""
    env = os.environ if env is None else env
    if path is not None and pem is not None:
        raise KeyConfigError("give a key path or PEM text, not both")
    if path is None and pem is None:
        env_file, env_pem = env.get(ENV_KEY_FILE) or None, env.get(ENV_KEY_PEM) or None
        if env_file and env_pem:
            raise KeyConfigError(f"both {ENV_KEY_FILE} and {ENV_KEY_PEM} are set; set only one")
        if not env_file and not env_pem:
            raise KeyConfigError(
                f"no signing key: set {ENV_KEY_FILE} (path to a PEM) or {ENV_KEY_PEM} (PEM text); "
                "create one with `lapse keys generate --out secrets/signing.pem`"
            )
        path, pem = env_file, env_pem
    password = env.get(ENV_KEY_PASSWORD)
    pw = password.encode() if password else None
    if path is not None:
        p = Path(path)
        source = f"signing key file {p}"
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise KeyConfigError(f"{source} does not exist") from None
        except OSError as exc:
            raise KeyConfigError(f"{source} is not readable: {exc.strerror}") from None
        _warn_if_exposed(p)
    else:
        source = f"${ENV_KEY_PEM}" if pem is not None and env.get(ENV_KEY_PEM) == pem else "PEM text"
        data = pem.encode() if isinstance(pem, str) else bytes(pem)  # type: ignore[arg-type]
        data = data.replace(b"\\n", b"\n")  # PEM squeezed onto one line by an env file
    key = parse_private_pem(data.strip() + b"\n", source, pw)
    alg = _alg_for(key, alg or env.get(ENV_ALG) or None, source)
    kid = kid or env.get(ENV_KEY_ID) or key.thumbprint()
    return SigningKey(key=key, kid=kid, alg=alg)


# -- generation --------------------------------------------------------------------------------
def _inside_git_worktree_unignored(path: Path) -> bool:
    """True when ``path`` would land in a git work tree and is not git-ignored."""
    anchor = path.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    try:
        top = subprocess.run(
            ["git", "-C", str(anchor), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    if top.returncode != 0:
        return False
    ignored = subprocess.run(
        ["git", "-C", str(anchor), "check-ignore", "-q", str(path.absolute())],
        capture_output=True, timeout=10,
    )
    return ignored.returncode != 0


def generate_key(
    out: str | os.PathLike[str], *, kty: str = "ed25519", bits: int = DEFAULT_RSA_BITS, force: bool = False
) -> SigningKey:
    """Create a private key at ``out`` (mode 0600, parent 0700), refusing to overwrite it or to put
    it where git would commit it. Returns the key (its kid is the thumbprint)."""
    path = Path(out)
    kty = kty.lower()
    if kty in ("ed25519", "okp", "eddsa"):
        private: Any = ed25519.Ed25519PrivateKey.generate()
    elif kty in ("rsa", "rs256"):
        if bits < MIN_RSA_BITS:
            raise KeyConfigError(f"RSA keys must have at least {MIN_RSA_BITS} bits, not {bits}")
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    else:
        raise KeyConfigError(f"unknown key type {kty!r}; use ed25519 or rsa")
    if path.exists() and not force:
        raise KeyConfigError(f"{path} already exists; refusing to overwrite a key (pass --force to replace it)")
    if _inside_git_worktree_unignored(path):
        raise KeyConfigError(
            f"{path} is inside a git work tree and not git-ignored; keep keys out of the repository "
            "(secrets/ is ignored: `--out secrets/signing.pem`)"
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)
    key = _from_crypto(private, str(path))
    return SigningKey(key=key, kid=key.thumbprint(), alg=_alg_for(key, None, str(path)))


# -- public keys and the JWKS ------------------------------------------------------------------
def _public_jwk_from_pem(data: bytes, source: str) -> dict[str, Any]:
    if b"PRIVATE KEY" in data:
        key: OKPKey | RSAKey = parse_private_pem(data, source)
    else:
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise KeyConfigError(f"{source}: not a PEM public key ({exc})") from None
        if isinstance(public, ed25519.Ed25519PublicKey):
            key = OKPKey.import_key(public)
        elif isinstance(public, rsa.RSAPublicKey):
            if public.key_size < MIN_RSA_BITS:
                raise KeyConfigError(f"{source}: RSA key of {public.key_size} bits is under {MIN_RSA_BITS}")
            key = RSAKey.import_key(public)
        else:
            raise KeyConfigError(f"{source}: {type(public).__name__} is not supported (Ed25519 or RSA)")
    return {
        **key.as_dict(private=False),
        "kid": key.thumbprint(),
        "use": "sig",
        "alg": "RS256" if key.key_type == "RSA" else "EdDSA",
    }


def load_public_jwks_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Public JWKs from a PEM file (kid = thumbprint) or a JWK / JWKS JSON file (kids kept)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"verification key {p} is not readable: {exc.strerror}") from None
    if data.lstrip().startswith(b"{"):
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise KeyConfigError(f"{p}: not JSON ({exc})") from None
        jwks = doc["keys"] if isinstance(doc, dict) and "keys" in doc else [doc]
        out = []
        for jwk in jwks:
            if not isinstance(jwk, dict) or "kid" not in jwk or "kty" not in jwk:
                raise KeyConfigError(f"{p}: every JWK needs kty and kid")
            if any(k in jwk for k in ("d", "p", "q")):
                raise KeyConfigError(f"{p}: holds a private JWK; keep only public keys for verification")
            out.append(dict(jwk))
        return out
    return [_public_jwk_from_pem(data, str(p))]


def previous_public_keys(
    paths: Iterable[str | os.PathLike[str]] = (), *, env: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Public keys still accepted during a rotation: ``paths`` plus files in ``LAPSE_VERIFY_KEYS_DIR``."""
    env = os.environ if env is None else env
    files = [Path(p) for p in paths]
    vdir = env.get(ENV_VERIFY_DIR)
    if vdir:
        d = Path(vdir)
        if not d.is_dir():
            raise KeyConfigError(f"{ENV_VERIFY_DIR}={vdir} is not a directory")
        files += sorted(f for f in d.iterdir() if f.suffix in (".pem", ".json", ".jwk") and f.is_file())
    out: list[dict[str, Any]] = []
    for f in files:
        out.extend(load_public_jwks_file(f))
    return out


def build_jwks(current: SigningKey | None, previous: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The JWKS to publish: the current key first, then previous keys; duplicate kids collapse when
    the key material is the same and are an error when it differs."""
    keys: list[dict[str, Any]] = []
    by_kid: dict[str, dict[str, Any]] = {}
    material = ("kty", "crv", "x", "n", "e")
    for jwk in ([current.public_jwk()] if current else []) + [dict(j) for j in previous]:
        kid = jwk["kid"]
        seen = by_kid.get(kid)
        if seen is not None:
            if any(seen.get(m) != jwk.get(m) for m in material):
                raise KeyConfigError(f"two different keys share kid {kid!r}")
            continue
        by_kid[kid] = jwk
        keys.append(jwk)
    if not keys:
        raise KeyConfigError("the JWKS would be empty: configure a signing key or previous keys")
    return {"keys": keys}
