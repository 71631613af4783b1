"""Live state objects over Faust's RocksDB store (``LAPSE_STORE=rocksdb://``).

The engine mutates the objects it reads (sessions with cached limits) and lapse writes its
changelog itself (streams/service/app.py), so Faust's RocksDB store cannot serve the engine
directly. It decodes a new object on every read, and its writes need a current Faust event.
:class:`LiveState` keeps the objects the engine works on in memory. It reads a missing key from
its partition's RocksDB database and writes each changelog record to the database only once the
step's decisions are acknowledged (step 4 of the commit order in streams/service/pipeline/commit.py). The
database therefore never holds the effect of a decision that might still be lost.

What this buys over the memory store:

- Faust's recovery writes the changelog into the databases as raw bytes, and only the tail after
  each partition's persisted offset (the service records it as the broker acknowledges the
  records). A restarted worker that keeps its data directory reads little.
- State larger than memory: at most ``max_live`` objects stay in memory. Clean ones are dropped
  oldest first and read back from the database when needed.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any

__all__ = ["LiveState"]

_GONE = object()  # deleted, the delete not yet written to the database


class LiveState:
    """A mapping of live objects over per-partition RocksDB databases.

    Parameters
    ----------
    db_for_partition : callable
        ``db_for_partition(partition)``: the raw-mode database (``rocksdict.Rdict``) of a partition:
        Faust's ``Store._db_for_partition``.
    partition_of : callable
        ``partition_of(key: str) -> int``: the key's changelog partition.
    decode : callable
        ``decode(raw: bytes)``: an object from a database value (the changelog codec).
    max_live : int
        Objects kept in memory; beyond it, the oldest clean ones are dropped.
    partitions : callable
        ``partitions()``: the partitions whose databases :meth:`keys` lists (the owned ones).
    skip_keys : tuple of bytes
        Database keys that are not state (Faust's persisted-offset key).

    Examples
    --------
    >>> import orjson
    >>> dbs = {0: {}}  # stands in for a partition's Rdict
    >>> st = LiveState(dbs.__getitem__, lambda k: 0, orjson.loads, max_live=10, partitions=lambda: [0])
    >>> st["alice"] = {"n": 1}             # a commit point: the object is live, its record staged
    >>> st.stage("alice"); dbs[0]           # not in the database before the decisions are acked
    {}
    >>> st.write([(b"alice", b'{"n":1}', 0)]); dbs[0]
    {b'alice': b'{"n":1}'}
    >>> st.drop_clean(), st.get("alice")    # read back from the database
    (1, {'n': 1})
    >>> _ = st.pop("alice"); st.stage("alice"); "alice" in st, st.keys()
    (False, [])
    >>> st.write([(b"alice", None, 0)]); dbs[0]
    {}
    """

    def __init__(self, db_for_partition: Callable[[int], Any], partition_of: Callable[[str], int],
                 decode: Callable[[bytes], Any], *, max_live: int = 1_000_000,
                 partitions: Callable[[], Any] = tuple, skip_keys: tuple[bytes, ...] = ()) -> None:
        if not all(callable(f) for f in (db_for_partition, partition_of, decode, partitions)):
            raise TypeError("LiveState: db_for_partition, partition_of, decode and partitions must be callable")
        if not isinstance(max_live, int) or isinstance(max_live, bool) or max_live < 1:
            raise ValueError(f"LiveState: max_live must be a positive integer, got {max_live!r}")
        self._db = db_for_partition
        self._partition_of = partition_of
        self._decode = decode
        self.max_live = max_live
        self._partitions = partitions
        self._skip = frozenset(skip_keys)
        self._live: dict[str, Any] = {}
        #: keys whose staged records are not written yet (count: a key may be staged again before)
        self._unwritten: dict[str, int] = {}
        self.loads = 0  # objects decoded from the databases (a cache miss each)

    # -- reads --------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        obj = self._live.get(key, self)
        if obj is not self:
            return default if obj is _GONE else obj
        raw = self._db(self._partition_of(key)).get(key.encode())
        if raw is None:
            return default
        obj = self._decode(raw)
        self.loads += 1
        self._remember(key, obj)
        return obj

    def __getitem__(self, key: str) -> Any:
        obj = self.get(key, self)
        if obj is self:
            raise KeyError(key)
        return obj

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, self) is not self

    def keys(self) -> list[str]:
        """Every key held: in the databases of ``partitions()``, and live objects."""
        out = {k: None for k, v in self._live.items() if v is not _GONE}
        for p in self._partitions():
            for raw in self._db(p).keys():
                if raw not in self._skip:
                    key = raw.decode("utf-8", "replace")
                    if self._live.get(key) is not _GONE:
                        out[key] = None
        return list(out)

    # -- writes -------------------------------------------------------------------------------
    def __setitem__(self, key: str, obj: Any) -> None:
        """The object is live (a write reaches the database through :meth:`stage` and :meth:`write`)."""
        self._live[key] = obj

    def update(self, items: dict[str, Any]) -> None:
        self._live.update(items)

    def pop(self, key: str, default: Any = None) -> Any:
        obj = self.get(key, default)
        self._live[key] = _GONE
        return obj

    def stage(self, key: str) -> None:
        """A commit point put the key's record in a ticket: keep its object until :meth:`write`."""
        self._unwritten[key] = self._unwritten.get(key, 0) + 1

    def write(self, records: list[tuple[bytes, bytes | None, int]]) -> None:
        """Step 4: the staged ``(key, value, partition)`` records (``None``: delete) go to the databases."""
        unwritten, live = self._unwritten, self._live
        for key, value, partition in records:
            db = self._db(partition)
            if value is None:
                try:
                    del db[key]
                except KeyError:
                    pass
            else:
                db[key] = value
            k = key.decode("utf-8", "replace")
            n = unwritten.get(k, 0) - 1
            if n > 0:
                unwritten[k] = n
            else:
                unwritten.pop(k, None)
                if live.get(k) is _GONE:
                    del live[k]

    def drop_clean(self, keep: Callable[[str], bool] | None = None) -> int:
        """Forget every object whose state is in the database (all but staged ones and those
        ``keep`` names); returns how many. After a rebalance, objects of partitions that moved
        away and back may be stale: the databases are then the truth."""
        unwritten = self._unwritten
        drop = [k for k in self._live if k not in unwritten and not (keep and keep(k))]
        for k in drop:
            del self._live[k]
        return len(drop)

    def _remember(self, key: str, obj: Any) -> None:
        live = self._live
        live[key] = obj
        if len(live) > self.max_live:
            unwritten = self._unwritten
            # oldest first; a batch at a time, so the scan is paid once per 1/64 of the cache
            n = max(1, self.max_live // 64)
            for k in [k for k in islice(live, n * 2) if k not in unwritten and k != key][:n]:
                del live[k]

    def __len__(self) -> int:
        return sum(1 for v in self._live.values() if v is not _GONE)
