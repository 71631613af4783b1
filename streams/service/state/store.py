"""The engine's per-user store over a Faust table, with writes staged until decisions are out.

The engine mutates ``UserState`` objects in place. This store remembers which users a batch (or a
timer tick) touched and hands them over with ``drain()``, which the service calls at the end of the
step's decide pass (``Service._changelog_records`` serializes them then, and the committer writes
them only after the step's decisions are acknowledged). See the docstring of ``streams.service.app``
for the whole commit order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any


class TableStore(MutableMapping):
    """``MutableMapping[user, UserState]`` over a Faust table (or any mapping, for tests).

    ``owns(user)`` says whether the user's partition is assigned to this worker: iteration (used
    to rebuild the deadline index) only yields owned users, so a worker never expires sessions of
    a partition that moved away.

    Examples
    --------
    >>> table = {"alice": {"n": 1}}
    >>> store = TableStore(table, owns=lambda user: True)
    >>> store["bob"] = {"n": 0}
    >>> sorted(store), "bob" in table, store.get("carol"), store.get("bob")
    (['alice', 'bob'], False, None, {'n': 0})
    >>> store.touch("alice")
    >>> pending, deleted = store.drain()
    >>> sorted(pending), deleted, store.dirty
    (['alice', 'bob'], set(), 0)
    """

    def __init__(self, table: MutableMapping, owns: Callable[[str], bool], read: Any = None) -> None:
        self.table = table
        #: what reads go to: the plain dict under a Faust table's in-memory store when there is one
        #: (three Python-level layers fewer per lookup: Table, ManagedUserDict, Store), else the table;
        #: or ``read`` (a :class:`~streams.service.state.livestate.LiveState` over a RocksDB store)
        self.read = read if read is not None else in_memory_dict(table)
        self.owns = owns
        self._pending: dict[str, Any] = {}
        self._deleted: set[str] = set()

    def __getitem__(self, user: str) -> Any:
        state = self._pending.get(user)
        if state is not None:
            return state
        if user in self._deleted or not self.owns(user):
            raise KeyError(user)  # another worker's partition: never act on a stale copy
        return self.read[user]

    def get(self, user: str, default: Any = None) -> Any:
        """``self[user]``, or ``default``; the engine's lookup of every event (without the
        KeyError that ``Mapping.get`` raises and catches for each new user)."""
        state = self._pending.get(user)
        if state is not None:
            return state
        if user in self._deleted or not self.owns(user):
            return default
        return self.read.get(user, default)

    def __setitem__(self, user: str, state: Any) -> None:
        self._pending[user] = state
        self._deleted.discard(user)

    def __delitem__(self, user: str) -> None:
        if user not in self._pending and user not in self.read:
            raise KeyError(user)
        self._pending.pop(user, None)
        self._deleted.add(user)

    def __contains__(self, user: object) -> bool:
        if user in self._pending:
            return True
        return user not in self._deleted and user in self.read and self.owns(user)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        for user in list(self.read.keys()):
            if user not in self._deleted and user not in self._pending and self.owns(user):
                yield user
        yield from list(self._pending)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def touch(self, user: str | None) -> None:
        """Mark ``user``'s state as changed in place (handed over by the next ``drain``)."""
        if user is None or user in self._pending or user in self._deleted:
            return
        state = self.read.get(user)
        if state is not None:
            self._pending[user] = state

    @property
    def dirty(self) -> int:
        return len(self._pending) + len(self._deleted)

    def drain(self) -> tuple[dict[str, Any], set[str]]:
        """Hand over (and forget) the staged writes and deletes: ``(pending, deleted)``."""
        pending, deleted = self._pending, self._deleted
        self._pending, self._deleted = {}, set()
        return pending, deleted


def in_memory_dict(table: MutableMapping) -> MutableMapping:
    """The ``dict`` that holds a Faust table's values in its in-memory store, else ``table`` itself
    (a plain mapping in tests). Safe for reads and writes: Faust's memory store keeps nothing else
    per key, and lapse writes its changelog itself.

    >>> in_memory_dict({"a": 1})
    {'a': 1}
    """
    inner = getattr(getattr(table, "data", None), "data", None)
    return inner if type(inner) is dict else table

