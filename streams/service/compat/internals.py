"""The one door to Faust's and aiokafka's private attributes, and the check that they still exist.

lapse relies on a few internals of faust-streaming and aiokafka where their public API has no
equivalent: the producer the app already owns, the consumer's committed and read offsets (for
catch-up after an assignment), a RocksDB store's per-partition database, a table's changelog
topic factory, the table manager's recovery service (replaced by ``streams.service.state.recovery``),
the fetch wait of aiokafka's consumer (``streams.service.compat.transport``), and the private methods
that ``transport.Consumer`` and ``recovery.BatchedRecovery`` override.

An upgrade that renames one of them would otherwise fail in the middle of the night, far from the
cause, or worse, not fail: an override of a method that no longer exists is never called.
:func:`self_check` runs when a worker is built and raises :class:`InternalsMissing` naming every
missing piece, so the upgrade fails at start, loudly.

>>> self_check()  # the installed versions have what lapse needs
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

__all__ = ["InternalsMissing", "self_check", "ensure_producer", "committed_offsets", "read_offsets",
           "db_for_partition", "new_changelog_topic", "fetch_all_metadata", "REQUIRED"]


class InternalsMissing(RuntimeError):
    """An installed faust-streaming or aiokafka lacks an internal lapse relies on (an upgrade
    renamed or removed it): pin the previous version, or adapt this module."""


def _faust_aiokafka() -> Any:
    from faust.transport.drivers import aiokafka as drv

    return drv


def _required() -> list[tuple[str, Any, str]]:
    """``(what, owner, attribute)``: each must exist (methods on the class, or in ``__init__``'s
    source for attributes an instance sets)."""
    import aiokafka
    from faust.stores import rocksdb
    from faust.tables.base import Collection
    from faust.tables.manager import TableManager
    from faust.tables.recovery import Recovery
    from faust.transport.consumer import Consumer as FaustConsumer

    drv = _faust_aiokafka()
    return [
        ("the producer an app owns", drv.Producer, "_ensure_producer"),
        ("a consumer's committed offsets", FaustConsumer, "_committed_offset"),
        ("a consumer's read offsets", FaustConsumer, "_read_offset"),
        ("a RocksDB store's database per partition", rocksdb.Store, "_db_for_partition"),
        ("a table's changelog topic factory", Collection, "_new_changelog_topic"),
        ("the table manager's recovery service", TableManager, "_recovery"),
        ("aiokafka's fetch wait (set by transport.ConsumerThread)", aiokafka.AIOKafkaConsumer, "_fetch_max_wait_ms"),
        ("aiokafka's client (for cluster metadata)", aiokafka.AIOKafkaConsumer, "_client"),
        ("overridden by transport.ConsumerThread", drv.AIOKafkaConsumerThread, "_create_worker_consumer"),
        ("overridden by transport.Consumer", drv.Consumer, "_new_consumer_thread"),
        ("overridden by transport.Consumer", FaustConsumer, "_drain_messages"),
        ("called by transport.Consumer", FaustConsumer, "_to_message"),
        ("called by transport.Consumer", FaustConsumer, "_wait_next_records"),
        ("called by transport.Consumer", FaustConsumer, "_add_gap"),
        ("overridden by recovery.BatchedRecovery", Recovery, "_slurp_changelogs"),
        ("called by transport.Consumer", FaustConsumer, "_is_changelog_tp"),
    ]


#: what :func:`self_check` verifies, for the docs (``docs/service.md``)
REQUIRED = ("Producer._ensure_producer", "Consumer._committed_offset", "Consumer._read_offset",
            "rocksdb.Store._db_for_partition", "Collection._new_changelog_topic", "TableManager._recovery",
            "AIOKafkaConsumer._fetch_max_wait_ms", "AIOKafkaConsumer._client")


def _has(owner: Any, name: str) -> bool:
    if hasattr(owner, name):
        return True
    for klass in inspect.getmro(owner) if inspect.isclass(owner) else ():
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            if f"self.{name}" in inspect.getsource(init):
                return True
        except (OSError, TypeError):
            continue
    return False


def missing(required: Iterable[tuple[str, Any, str]] | None = None) -> list[str]:
    """The internals that are not there, as ``"owner.name (what)"``."""
    return [f"{getattr(owner, '__qualname__', owner)}.{name} ({what})"
            for what, owner, name in (required if required is not None else _required()) if not _has(owner, name)]


def self_check() -> None:
    """Raise :class:`InternalsMissing` naming every internal the installed versions lack.

    >>> class Old:
    ...     def __init__(self): self.kept = 1
    >>> missing([("a kept attribute", Old, "kept"), ("a renamed one", Old, "gone")])
    ['...Old.gone (a renamed one)']
    """
    gone = missing()
    if gone:
        import aiokafka
        import faust

        raise InternalsMissing(
            f"faust-streaming {faust.__version__} / aiokafka {aiokafka.__version__} lack what lapse relies on: "
            + "; ".join(gone) + ". Install the versions pyproject.toml names, or adapt streams/service/compat/internals.py")


# -- the accessors ---------------------------------------------------------------------------------

def ensure_producer(app: Any) -> Any:
    """The aiokafka producer Faust's app owns (started on first use)."""
    return app.producer._ensure_producer()


def committed_offsets(consumer: Any) -> dict[Any, int]:
    return consumer._committed_offset


def read_offsets(consumer: Any) -> dict[Any, int]:
    return consumer._read_offset


def db_for_partition(store: Any, partition: int) -> Any:
    return store._db_for_partition(partition)


def new_changelog_topic(table: Any) -> Any:
    return table._new_changelog_topic()


async def fetch_all_metadata(consumer: Any) -> Any:
    """Cluster metadata through the aiokafka consumer's client."""
    return await consumer._client.fetch_all_metadata()
