"""Worker settings: bad configuration fails fast, naming the setting."""

from __future__ import annotations

import pytest

from streams.config import ConfigError, Settings


def test_the_memory_store_is_the_default_and_loads():
    assert Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:9092"}).store == "memory://"


@pytest.mark.parametrize("url, store", [("rocksdb://", "rocksdb://"), ("rocksdict://", "rocksdb://")])
def test_the_rocksdb_store_loads_under_either_name(url, store):
    assert Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:9092", "LAPSE_STORE": url}).store == store


@pytest.mark.parametrize("url", ["aerospike://", "memory:", "redis://"])
def test_any_other_store_is_refused_with_the_setting_named(url):
    with pytest.raises(ConfigError, match="LAPSE_STORE: expected one of memory://, rocksdb://"):
        Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:9092", "LAPSE_STORE": url})


def test_pipeline_tunables_are_settings_with_named_errors():
    import pytest

    from streams.config import ConfigError, Settings

    s = Settings.load({"LAPSE_BATCH_MAX": "250", "LAPSE_COMMIT_INTERVAL_S": "0", "LAPSE_GC_FREEZE": "0"})
    assert (s.batch_max, s.commit_interval_s, s.gc_freeze) == (250, 0.0, False)
    for env, name in (({"LAPSE_BATCH_MAX": "lots"}, "LAPSE_BATCH_MAX"), ({"LAPSE_BATCH_MAX": "0"}, "LAPSE_BATCH_MAX"),
                      ({"LAPSE_STALL_S": "0"}, "LAPSE_STALL_S"), ({"LAPSE_GC_FREEZE": "maybe"}, "LAPSE_GC_FREEZE"),
                      ({"LAPSE_MAX_RECORD_BYTES": "10"}, "LAPSE_MAX_RECORD_BYTES")):
        with pytest.raises(ConfigError, match=name):
            Settings.load(env)
