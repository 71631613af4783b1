from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine import InvalidEvent, parse_event


def test_rfc3339_with_offset_and_epoch_give_the_same_time():
    a = parse_event({"type": "login", "ts": "2026-01-01T01:00:00+01:00", "user": "u", "session": "s"})
    b = parse_event({"type": "login", "ts": 1767225600, "user": "u", "session": "s"})
    c = parse_event(b'{"type": "login", "ts": "2026-01-01T00:00:00Z", "user": "u", "session": "s"}')
    assert a.ts == b.ts == c.ts == 1767225600.0


def test_suricata_severity_is_normalised():
    assert [parse_event({"type": "alert", "ts": 0, "severity": n, "src_ip": "1.2.3.4"}).severity
            for n in (1, 2, 3, 4, "2", "HIGH")] == ["critical", "high", "medium", "low", "high", "high"]


@pytest.mark.parametrize(("raw", "field", "words"), [
    ({"ts": 0}, "type", "missing"),
    ({"type": "teleport", "ts": 0}, "type", "unknown event type"),
    ({"type": "login", "user": "u", "session": "s"}, "ts", "missing"),
    ({"type": "login", "ts": "2026-01-01 00:00", "user": "u", "session": "s"}, "ts", "zone"),
    ({"type": "login", "ts": "soon", "user": "u", "session": "s"}, "ts", "RFC 3339"),
    ({"type": "login", "ts": 0, "session": "s"}, "user", "missing"),
    ({"type": "refresh", "ts": 0, "user": "u"}, "session", "missing"),
    ({"type": "activity", "ts": 0, "user": 5, "session": "s"}, "user", "non-empty string"),
    ({"type": "activity", "ts": 0, "user": "u", "session": "s", "bytes": "10"}, "bytes", "integer"),
    ({"type": "activity", "ts": 0, "user": "u", "session": "s", "privileged": "yes"}, "privileged", "true or false"),
    ({"type": "activity", "ts": 0, "user": "u", "session": "s", "automatic": 1}, "automatic", "true or false"),
    ({"type": "login", "ts": 0, "user": "u", "session": "s", "roles": "admin"}, "roles", "list"),
    ({"type": "login", "ts": 0, "user": "u", "session": "s", "aal": 4}, "aal", "1, 2 or 3"),
    ({"type": "login", "ts": 0, "user": "u", "session": "s", "channel": "fax"}, "channel", "web, mobile or api"),
    ({"type": "alert", "ts": 0, "severity": "high"}, "src_ip", "at least one"),
    ({"type": "alert", "ts": 0, "severity": 9, "src_ip": "1.1.1.1"}, "severity", "Suricata"),
])
def test_invalid_events_name_the_field(raw, field, words):
    with pytest.raises(InvalidEvent) as exc:
        parse_event(orjson.dumps(raw))
    assert exc.value.field == field
    assert words in exc.value.reason


def test_oversized_event_is_refused_before_parsing():
    big = b'{"type": "login", "ts": 0, "user": "u", "session": "s", "pad": "' + b"x" * 70000 + b'"}'
    with pytest.raises(InvalidEvent, match="64 KiB"):
        parse_event(big)


def test_raw_dict_and_automatic_flag_are_kept():
    e = parse_event({"type": "activity", "ts": 0, "user": "u", "session": "s", "automatic": True, "x": 1})
    assert e.automatic is True and e.raw["x"] == 1


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=8)
fields = st.sampled_from(["type", "ts", "user", "session", "severity", "src_ip", "roles", "aal", "bytes", "geo",
                          "channel", "automatic", "privileged", "sso_session"])
types = st.sampled_from(["login", "refresh", "reauth", "logout", "activity", "alert", "role_change", "x"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.dictionaries(fields, json_values | types, max_size=8).map(orjson.dumps))
def test_invalid_input_never_raises_anything_but_invalid_event(raw):
    try:
        parse_event(raw)
    except InvalidEvent:
        pass
