"""Faust and aiokafka internals lapse relies on are checked when a worker is built."""

from __future__ import annotations

import pytest

from streams.service.compat import internals
from tests.support.service import offline_service


def test_the_installed_faust_and_aiokafka_have_every_internal_lapse_relies_on():
    assert internals.missing() == []


def test_a_worker_whose_faust_lost_an_internal_refuses_to_start_naming_it(tmp_path, monkeypatch):
    from faust.transport.drivers import aiokafka as drv

    monkeypatch.delattr(drv.Producer, "_ensure_producer")
    with pytest.raises(internals.InternalsMissing, match=r"Producer\._ensure_producer \(the producer an app owns\)"):
        offline_service(tmp_path)
