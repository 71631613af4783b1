"""``lapse ssf``: the Shared Signals transmitter (and receiver) process."""

from __future__ import annotations

import click


@click.group("ssf")
def ssf_cmd() -> None:
    """OpenID Shared Signals: streams of CAEP SETs to receivers, Back-Channel Logout, and SETs
    received from identity providers (docs/ssf.md)."""


@ssf_cmd.command("serve")
@click.option("--loglevel", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def serve_cmd(loglevel: str) -> None:
    """Run the transmitter: read the revocations topic, serve /.well-known/ssf-configuration and
    stream management, push and poll delivery, logout delivery, and the receiver endpoints.

    Configuration: LAPSE_SSF_* (see streams/ssf/config.py) plus LAPSE_BOOTSTRAP & co."""
    import asyncio
    import logging

    from streams.config import ConfigError
    from streams.ssf.server import serve
    from streams.ssf.store import StateLocked

    logging.basicConfig(level=getattr(logging, loglevel.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        asyncio.run(serve())
    except (ConfigError, StateLocked) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@ssf_cmd.command("token")
@click.argument("name")
@click.option("--scopes", default="ssf.manage,ssf.read", show_default=True)
@click.option("--aud", default=None, help="audiences the receiver's streams may use, comma separated")
def token_cmd(name: str, scopes: str, aud: str | None) -> None:
    """Print a LAPSE_SSF_TOKENS line with a fresh random token for receiver NAME."""
    from streams.ssf.auth import Tokens, new_token

    line = f"{name} {new_token()} {scopes}" + (f" {aud}" if aud else "")
    Tokens.parse(line)  # validates the scopes
    click.echo(line)
