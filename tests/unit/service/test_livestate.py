"""LiveState over real RocksDB databases (rocksdict, raw mode, as Faust opens them): objects stay
live between events, reach the database only when written (after the step's decisions are
acknowledged), and the memory they take is bounded."""

from __future__ import annotations

import orjson
import pytest
import rocksdict

from streams.service.state.livestate import LiveState

OFFSET_KEY = b"__faust\0offset__"


@pytest.fixture
def dbs(tmp_path):
    opened = {}

    def db(p: int):
        if p not in opened:
            opened[p] = rocksdict.Rdict(str(tmp_path / f"users-{p}.db"), options=rocksdict.Options(raw_mode=True))
        return opened[p]

    yield db
    for d in opened.values():
        d.close()


def _state(dbs, max_live=1000):
    return LiveState(dbs, lambda k: int(k[1:]) % 2, orjson.loads, max_live=max_live, partitions=lambda: [0, 1],
                     skip_keys=(OFFSET_KEY,))


def test_an_object_is_the_same_live_object_until_dropped_and_then_read_back_from_its_partition(dbs):
    st = _state(dbs)
    obj = {"n": 1}
    st["u3"] = obj
    st.stage("u3")
    obj["n"] = 2  # the engine mutates it in place
    assert st.get("u3") is obj
    st.write([(b"u3", orjson.dumps(obj), 1)])
    assert dbs(1)[b"u3"] == b'{"n":2}' and dbs(0).get(b"u3") is None
    assert st.drop_clean() == 1
    again = st["u3"]
    assert again == {"n": 2} and again is not obj and st.loads == 1
    assert st.get("u3") is again, "read back once, then live"


def test_nothing_reaches_the_database_before_write_and_staged_objects_are_never_dropped(dbs):
    st = _state(dbs, max_live=4)
    st["u0"] = {"v": "new"}
    st.stage("u0")
    dbs(0)[b"u0"] = b'{"v":"old"}'  # what an earlier commit left there
    assert st.drop_clean() == 0
    for i in range(2, 40, 2):  # fill the cache far past max_live with clean objects
        dbs(0)[f"u{i}".encode()] = b"{}"
        st.get(f"u{i}")
    assert st.get("u0") == {"v": "new"}, "a staged object outlives eviction: the database still holds the old one"
    assert len(st) <= 4 + 1


def test_a_delete_hides_the_key_at_once_and_removes_it_from_the_database_when_written(dbs):
    st = _state(dbs)
    dbs(1)[b"u1"] = b'{"n":1}'
    dbs(1)[OFFSET_KEY] = b"41"
    assert st.keys() == ["u1"]
    assert st.pop("u1") == {"n": 1}
    st.stage("u1")
    assert "u1" not in st and st.keys() == [] and st.get("u1") is None
    st.write([(b"u1", None, 1)])
    assert dbs(1).get(b"u1") is None and dbs(1)[OFFSET_KEY] == b"41"
    assert "u1" not in st


def test_a_key_staged_twice_stays_until_both_records_are_written(dbs):
    st = _state(dbs)
    obj = {"n": 1}
    st["u1"] = obj
    st.stage("u1")
    st.stage("u1")  # a later commit point, before the first ticket's acks
    st.write([(b"u1", b'{"n":1}', 1)])
    assert st.drop_clean() == 0
    st.write([(b"u1", b'{"n":1}', 1)])
    assert st.drop_clean() == 1


def test_bad_configuration_fails_fast_with_a_named_message(dbs):
    with pytest.raises(ValueError, match="LiveState: max_live"):
        LiveState(dbs, lambda k: 0, orjson.loads, max_live=0)
    with pytest.raises(TypeError, match="LiveState: db_for_partition"):
        LiveState(dbs, 0, orjson.loads)  # type: ignore[arg-type]
