"""``lapse keys``: create signing keys and export the JWKS enforcement points verify with."""

from __future__ import annotations

import json
from pathlib import Path

import click

from streams.publish import keys as K


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("keys")
def keys_cmd() -> None:
    """Signing keys for revocation SETs (Ed25519 by default, RSA >= 2048 bits)."""


@keys_cmd.command("generate")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the PEM private key (e.g. secrets/signing.pem; never inside the repo unless git-ignored).")
@click.option("--type", "kty", type=click.Choice(["ed25519", "rsa"]), default="ed25519", show_default=True)
@click.option("--bits", type=int, default=K.DEFAULT_RSA_BITS, show_default=True, help="RSA key size (>= 2048).")
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def generate(out: Path, kty: str, bits: int, force: bool) -> None:
    """Create a private key (mode 0600) and print its kid and alg."""
    try:
        key = K.generate_key(out, kty=kty, bits=bits, force=force)
    except K.KeyConfigError as exc:
        raise _fail(exc) from None
    click.echo(json.dumps({"path": str(out), "kid": key.kid, "alg": key.alg, "kty": key.kty}))
    click.echo(f"export {K.ENV_KEY_FILE}={out}", err=True)


@keys_cmd.command("jwks")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Current private key (default: ${K.ENV_KEY_FILE} / ${K.ENV_KEY_PEM}).")
@click.option("--no-current", is_flag=True, help="Export only the previous keys (no current signing key).")
@click.option("--include", "include", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help=f"Previous public key (PEM, JWK or JWKS JSON) still accepted; repeatable. Adds to ${K.ENV_VERIFY_DIR}.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JWKS here instead of stdout.")
def jwks(key_path: Path | None, no_current: bool, include: tuple[Path, ...], out: Path | None) -> None:
    """Print the JWKS (public keys only): the current key, then previous keys kept for rotation."""
    try:
        current = None if no_current else K.load_signing_key(key_path)
        doc = K.build_jwks(current, K.previous_public_keys(include))
    except K.KeyConfigError as exc:
        raise _fail(exc) from None
    text = json.dumps(doc, indent=2)
    if out:
        out.write_text(text + "\n")
        click.echo(f"wrote {len(doc['keys'])} key(s) to {out}", err=True)
    else:
        click.echo(text)


@keys_cmd.command("public")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Private key (default: ${K.ENV_KEY_FILE} / ${K.ENV_KEY_PEM}).")
def public(key_path: Path | None) -> None:
    """Print the current key's public JWK (keep it in LAPSE_VERIFY_KEYS_DIR when rotating it out)."""
    try:
        key = K.load_signing_key(key_path)
    except K.KeyConfigError as exc:
        raise _fail(exc) from None
    click.echo(json.dumps(key.public_jwk(), indent=2))
