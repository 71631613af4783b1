"""``lapse kafka up|down|reset|status|fetch``: the local single-node broker of a source checkout.

The broker itself is managed by ``infra/kafka/kafkactl.py`` (standard library only, so it also runs
before any virtualenv, as the Makefile does); this command runs it with the same environment
(``LAPSE_KAFKA_PORT``, ``LAPSE_KAFKA_DATA``, ...). An installed lapse without the source tree has
no local broker to manage: point ``LAPSE_BOOTSTRAP`` at your cluster instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

#: where kafkactl lives in a source checkout
KAFKACTL = Path(__file__).resolve().parents[2] / "infra" / "kafka" / "kafkactl.py"


@click.command("kafka")
@click.argument("action", type=click.Choice(["up", "down", "reset", "status", "fetch"]))
def kafka(action: str) -> None:
    """Start, stop, reset or probe the local broker (127.0.0.1, KRaft, jars from Maven Central)."""
    if not KAFKACTL.is_file():
        raise click.ClickException(
            f"no local broker to manage: {KAFKACTL} is not here (lapse kafka works in a source checkout; "
            "against your own cluster set LAPSE_BOOTSTRAP)")
    code = subprocess.call([sys.executable, str(KAFKACTL), action])
    if code:
        raise SystemExit(code)
