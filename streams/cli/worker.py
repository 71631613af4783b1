"""``lapse worker``: run one lapse worker (Faust) in the foreground."""

from __future__ import annotations

import click


@click.command("worker")
@click.option("--loglevel", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def worker_cmd(loglevel: str) -> None:
    """Consume the input topics, keep session state, publish revocations and audit records.

    Configuration comes from the environment (see `streams/config.py`): LAPSE_BOOTSTRAP,
    LAPSE_SIGNING_KEY_FILE, LAPSE_POLICY, LAPSE_WEB_PORT, ...
    """
    from faust.worker import Worker

    from streams.config import ConfigError
    from streams.engine.policy import PolicyError
    from streams.publish.keys import KeyConfigError

    try:
        from streams.service.worker import build_service

        service = build_service()
    except (ConfigError, KeyConfigError, PolicyError) as exc:
        raise click.ClickException(str(exc)) from None
    import asyncio
    import logging

    from streams.topics import ensure_topics

    log = logging.getLogger("lapse.worker")
    missing = asyncio.run(ensure_topics(service.settings, service.internal_topics(), log=log))
    if missing:
        log.warning("lapse: topics still missing from the broker's metadata: %s", ", ".join(missing))
    Worker(service.app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()
