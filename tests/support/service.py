"""A worker :class:`~streams.service.app.Service` built without a broker (nothing starts it)."""

from __future__ import annotations

from pathlib import Path

from streams.config import Settings
from streams.engine import Engine, loads_policy
from streams.service.app import Service


def offline_service(tmp: Path) -> Service:
    """The worker's Faust app, tables and consumer, pointed at a broker that is never contacted."""
    settings = Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:1", "LAPSE_DATA_DIR": str(tmp),
                             "LAPSE_INTERNAL_KEY": "offline-service-internal-key-0123456789"})
    return Service(settings, lambda store: Engine(loads_policy(""), store), lambda decision: b"")
