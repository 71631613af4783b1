"""The changelog topics decode with our codecs, on the worker's real Faust objects (no broker)."""

from __future__ import annotations

import orjson
import pytest
from faust.models.base import Model
from faust.types import Message

from streams.engine.state import SessionState, UserState
from streams.service.state import codecs
from tests.support.service import offline_service


def _message(topic: str, key: bytes, value: bytes | None) -> Message:
    return Message(topic, 0, 0, 0.0, 0, {}, key, value, None)


def _decode(service, table, key: bytes, value: bytes | None):
    topic = table.changelog_topic
    msg = _message(topic.get_topic_name(), key, value)
    return topic.schema.loads_key(service.app, msg), topic.schema.loads_value(service.app, msg)


@pytest.fixture
def service(tmp_path):
    return offline_service(tmp_path)


@pytest.fixture
def no_model_lookup(monkeypatch):
    """Fail if Faust looks for a model namespace in a decoded value (what value_type=None does)."""
    looked: list[object] = []
    real = Model._maybe_namespace.__func__

    def spy(cls, data, **kw):
        if not isinstance(data, (str, bytes)):
            looked.append(data)
        return real(cls, data, **kw)

    monkeypatch.setattr(Model, "_maybe_namespace", classmethod(spy))
    return looked


def test_a_users_changelog_record_decodes_to_the_same_user_state_without_a_model_lookup(service, no_model_lookup):
    u = UserState()
    s = u.sessions["s1"] = SessionState("s1", "alice", 100.0)
    s.ip, s.roles, s.events_n = "10.0.0.7", ("admin",), 3
    key, value = _decode(service, service.users, b"alice", u.to_json())
    assert key == "alice"
    assert isinstance(value, UserState) and value.to_dict() == u.to_dict()
    assert no_model_lookup == []


def test_a_sightings_record_decodes_to_its_json_and_a_tombstone_to_none(service, no_model_lookup):
    row = {"alice": [["s1", 100.0]]}
    assert _decode(service, service.sightings, b"ip:10.0.0.7", orjson.dumps(row)) == ("ip:10.0.0.7", row)
    assert _decode(service, service.users, b"alice", None) == ("alice", None)
    assert no_model_lookup == []


def test_decoded_hands_any_value_back_unchanged():
    value = object()
    assert codecs.Decoded.from_data(value, preferred_type=codecs.Decoded) is value
