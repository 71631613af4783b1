"""Suricata EVE and CloudTrail adapters: field mapping, skips and rejects."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from streams.adapters import cloudtrail, suricata
from streams.adapters.errors import AdapterError, Skipped
from streams.engine.events import parse_event

HERE = Path(__file__).parents[2] / "fixtures" / "adapters"
EVE = (HERE / "suricata_eve.jsonl").read_bytes().splitlines()
TRAIL = json.loads((HERE / "cloudtrail_events.json").read_text())


def valid(events: list[dict]) -> list[dict]:
    for event in events:
        parse_event(event)
    return events


# --- Suricata --------------------------------------------------------------------------------


def test_suricata_alert_maps_addresses_severity_signature_and_utc_time() -> None:
    assert valid(suricata.adapt(EVE[0])) == [{
        "type": "alert", "ts": "2024-05-01T09:00:00.250000Z", "severity": 2,
        "signature": "ET SCAN Potential SSH Scan", "category": "Attempted Information Leak",
        "src_ip": "203.0.113.66", "dest_ip": "10.0.0.5",
    }]


def test_suricata_alert_with_plus_0000_offset_keeps_microseconds() -> None:
    [event] = valid(suricata.adapt(EVE[1]))
    assert (event["ts"], event["severity"]) == ("2024-05-01T09:01:00.000000Z", 1)


@pytest.mark.parametrize(("line", "kind"), [(2, "suricata:flow"), (3, "suricata:dns"), (4, "suricata:stats")])
def test_suricata_non_alert_records_are_skipped_by_event_type(line: int, kind: str) -> None:
    with pytest.raises(Skipped) as info:
        suricata.adapt(EVE[line])
    assert info.value.kind == kind


def _alert(**changes: object) -> bytes:
    doc = orjson.loads(EVE[0])
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            doc[outer][inner] = value
        else:
            doc[key] = value
    return orjson.dumps(doc)


@pytest.mark.parametrize(("changes", "field"), [
    ({"alert.severity": 5}, "alert.severity"),
    ({"alert.severity": "1"}, "alert.severity"),
    ({"alert.severity": True}, "alert.severity"),
    ({"alert.severity": None}, "alert.severity"),
    ({"alert.signature": None}, "alert.signature"),
    ({"alert": "ET SCAN"}, "alert"),
    ({"timestamp": "2024-05-01T11:00:00.250000"}, "timestamp"),
    ({"timestamp": "2024-13-01T11:00:00+0000"}, "timestamp"),
    ({"src_ip": None, "dest_ip": None}, "src_ip"),
    ({"dest_ip": 167772165}, "dest_ip"),
    ({"event_type": ["alert"]}, "event_type"),
])
def test_suricata_unmappable_alerts_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(AdapterError) as info:
        suricata.adapt(_alert(**changes))
    assert info.value.field == field


# --- CloudTrail ------------------------------------------------------------------------------


def trail(name: str, **changes: object) -> list[dict]:
    return valid(cloudtrail.adapt(orjson.dumps(dict(TRAIL[name], **changes))))


def test_console_login_success_is_a_web_login_with_a_stable_session() -> None:
    [event] = trail("console_login")
    assert event == {
        "type": "login", "ts": "2024-05-01T09:00:00Z", "user": "arn:aws:iam::111122223333:user/ana",
        "session": cloudtrail.console_session_id("arn:aws:iam::111122223333:user/ana", "2024-05-01T09:00:00Z"),
        "channel": "web", "aal": 2, "ip": "198.51.100.7", "device": "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0",
    }
    assert trail("console_login")[0]["session"] == event["session"]  # same record, same session id
    assert trail("console_login", eventTime="2024-05-01T10:00:00Z")[0]["session"] != event["session"]


def test_console_login_failure_is_login_failed_named_by_user_name() -> None:
    [event] = trail("console_login_failure")
    assert (event["type"], event["user"], event["ip"]) == ("login_failed", "ana", "203.0.113.50")


def test_console_login_failure_for_a_hidden_user_name_is_skipped() -> None:
    with pytest.raises(Skipped):
        trail("console_login_hidden_user")


def test_assume_role_is_a_login_whose_session_is_the_temporary_key() -> None:
    assert trail("assume_role") == [{
        "type": "login", "ts": "2024-05-01T09:10:00Z", "user": "arn:aws:iam::111122223333:user/ana",
        "session": "ASIAEXAMPLEDEPLOY01", "channel": "api", "app": "arn:aws:iam::111122223333:role/Deploy",
        "ip": "198.51.100.7", "device": "aws-cli/2.15.0 Python/3.11.6",
    }]


def test_assume_role_without_credentials_uses_the_assumed_role_arn() -> None:
    record = json.loads(json.dumps(TRAIL["assume_role"]))
    del record["responseElements"]["credentials"]
    [event] = valid(cloudtrail.adapt(orjson.dumps(record)))
    assert event["session"] == "arn:aws:sts::111122223333:assumed-role/Deploy/ana-deploy"


def test_assume_role_by_a_service_has_no_address_but_names_the_service() -> None:
    [event] = trail("assume_role_by_service")
    assert event["user"] == "lambda.amazonaws.com" and "ip" not in event


def test_denied_assume_role_is_login_failed() -> None:
    [event] = trail("assume_role_denied")
    assert (event["type"], event["user"], event["app"]) == (
        "login_failed", "arn:aws:iam::111122223333:user/bob", "arn:aws:iam::111122223333:role/Admin")


def test_other_api_calls_are_skipped() -> None:
    with pytest.raises(Skipped) as info:
        trail("get_object")
    assert info.value.kind == "cloudtrail:GetObject"


def test_records_arrays_map_every_sign_in_and_drop_other_calls() -> None:
    batch = {"Records": [TRAIL["get_object"], TRAIL["console_login"], TRAIL["assume_role"]]}
    events = valid(cloudtrail.adapt(orjson.dumps(batch)))
    assert [e["type"] for e in events] == ["login", "login"]


def test_a_bad_record_in_a_batch_names_its_index() -> None:
    bad = dict(TRAIL["assume_role"], eventTime="soon")
    with pytest.raises(AdapterError) as info:
        cloudtrail.adapt(orjson.dumps({"Records": [TRAIL["console_login"], bad]}))
    assert info.value.field == "Records[1].eventTime"


@pytest.mark.parametrize(("name", "changes", "field"), [
    ("console_login", {"responseElements": {"ConsoleLogin": "Maybe"}}, "responseElements.ConsoleLogin"),
    ("console_login", {"responseElements": None}, "responseElements.ConsoleLogin"),
    ("console_login", {"userIdentity": {}}, "userIdentity"),
    ("console_login", {"userIdentity": None}, "userIdentity"),
    ("console_login", {"eventTime": None}, "eventTime"),
    ("assume_role", {"responseElements": {}}, "responseElements.credentials.accessKeyId"),
    ("assume_role", {"requestParameters": []}, "requestParameters"),
    ("assume_role", {"eventName": 3}, "eventName"),
])
def test_unmappable_trail_records_name_the_field(name: str, changes: dict, field: str) -> None:
    with pytest.raises(AdapterError) as info:
        trail(name, **changes)
    assert info.value.field == field


def test_records_must_be_an_array() -> None:
    with pytest.raises(AdapterError) as info:
        cloudtrail.adapt(b'{"Records": {}}')
    assert info.value.field == "Records"
