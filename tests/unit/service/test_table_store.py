"""The engine's store over a Faust table (streams/service/state/store.py): what a lookup returns for
users staged, deleted, held and held by another worker."""

from __future__ import annotations

import pytest

from streams.service.state.store import TableStore


def _store() -> TableStore:
    table = {"held": "h", "elsewhere": "e", "gone": "g"}
    store = TableStore(table, owns=lambda user: user != "elsewhere")
    store["staged"] = "s"
    del store["gone"]
    return store


@pytest.mark.parametrize("user, expected", [
    ("held", "h"), ("staged", "s"), ("elsewhere", None), ("gone", None), ("never", None)])
def test_a_lookup_gives_what_indexing_gives_and_never_another_workers_copy(user, expected):
    store = _store()
    assert store.get(user) == expected
    assert store.get(user, "default") == (expected if expected is not None else "default")
    if expected is None:
        with pytest.raises(KeyError):
            store[user]
    else:
        assert store[user] == expected
    assert (user in store) == (expected is not None)
