"""Okta System Log adapter: field mapping of documented-schema fixtures, skips and rejects."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from streams.adapters import okta
from streams.adapters.errors import AdapterError, Skipped
from streams.engine.events import parse_event

FIXTURES = json.loads((Path(__file__).parents[2] / "fixtures" / "adapters" / "okta_events.json").read_text())


def adapt(name: str, **changes: object) -> list[dict]:
    record = dict(FIXTURES[name], **changes)
    events = okta.adapt(orjson.dumps(record))
    for event in events:
        parse_event(event)  # every output is a valid canonical event
    return events


def test_session_start_maps_to_login_with_client_context() -> None:
    assert adapt("session_start") == [{
        "type": "login", "ts": "2024-05-01T09:00:00.123Z", "user": "ana@example.com",
        "session": "102Ana5essionAAAA", "email": "ana@example.com", "ip": "198.51.100.7",
        "device": "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0", "channel": "web",
        "geo": {"country": "Portugal", "lat": 38.7223, "lon": -9.1393, "asn": 3243},
    }]


def test_failed_session_start_is_login_failed_without_the_unknown_session() -> None:
    [event] = adapt("session_start_failure")
    assert event["type"] == "login_failed" and event["user"] == "ana@example.com"
    assert "session" not in event and "channel" not in event  # device "Unknown" says nothing
    assert event["geo"] == {"country": "Netherlands", "lat": 52.37, "lon": 4.89, "asn": 64496}


def test_user_falls_back_to_actor_id_without_alternate_id() -> None:
    actor = {"id": "00u1ana0000000000001", "type": "User"}
    assert adapt("session_start", actor=actor)[0]["user"] == "00u1ana0000000000001"


def test_sso_is_an_app_session_linked_to_the_okta_session() -> None:
    [event] = adapt("sso")
    assert event["type"] == "login"
    assert event["sso_session"] == "102Ana5essionAAAA"
    assert event["session"] == "102Ana5essionAAAA/0oa1payroll00000001"
    assert event["app"] == "Payroll"


def test_session_end_is_one_logout_of_the_okta_session_and_its_sso_children() -> None:
    [event] = adapt("session_end")
    assert event["type"] == "logout"
    assert event["session"] == event["sso_session"] == "102Ana5essionAAAA"
    assert event["user"] == "ana@example.com" and event["ts"] == "2024-05-01T17:30:00.000Z"


def test_session_clear_logs_out_the_target_user_not_the_admin() -> None:
    assert adapt("session_clear") == [{"type": "logout", "ts": "2024-05-01T10:15:00.000Z", "user": "ana@example.com"}]


@pytest.mark.parametrize(("name", "kind", "user"), [
    ("account_lock", "user_disabled", "ana@example.com"),
    ("lifecycle_suspend", "user_disabled", "bob@example.com"),
    ("update_password", "credential_change", "ana@example.com"),
    ("mfa_factor_deactivate", "credential_change", "ana@example.com"),
])
def test_account_events_revoke_the_target_user(name: str, kind: str, user: str) -> None:
    [event] = adapt(name)
    assert (event["type"], event["user"]) == (kind, user)


@pytest.mark.parametrize("etype", ["user.account.suspend", "user.account.deactivate", "user.lifecycle.deactivate"])
def test_suspend_and_deactivate_are_user_disabled(etype: str) -> None:
    assert adapt("lifecycle_suspend", eventType=etype)[0]["type"] == "user_disabled"


@pytest.mark.parametrize("etype", ["user.account.reset_password", "user.mfa.factor.activate", "user.mfa.factor.reset_all"])
def test_password_resets_and_factor_changes_are_credential_changes(etype: str) -> None:
    assert adapt("mfa_factor_deactivate", eventType=etype)[0]["type"] == "credential_change"


def test_failed_password_update_is_skipped_not_a_credential_change() -> None:
    with pytest.raises(Skipped) as info:
        adapt("update_password_failed")
    assert info.value.kind == "okta:user.account.update_password:FAILURE"


def test_threat_detected_is_an_alert_on_the_client_address() -> None:
    assert adapt("threat_detected") == [{
        "type": "alert", "ts": "2024-05-01T14:00:00.000Z", "severity": "medium",
        "signature": "okta security.threat.detected", "src_ip": "203.0.113.66",
    }]


@pytest.mark.parametrize(("okta_severity", "severity"), [("ERROR", "high"), ("WARN", "medium"), ("INFO", "low")])
def test_alert_severity_follows_okta_severity(okta_severity: str, severity: str) -> None:
    assert adapt("threat_detected", severity=okta_severity)[0]["severity"] == severity


def test_reported_suspicious_activity_targets_the_reported_address_and_user() -> None:
    [event] = adapt("report_suspicious")
    assert event["type"] == "alert" and event["user"] == "ana@example.com"
    assert event["src_ip"] == "203.0.113.66"  # the suspicious activity's, not the reporter's 198.51.100.7
    assert "session" not in event


@pytest.mark.parametrize("etype", ["policy.evaluate_sign_on", "user.authentication.verify"])
def test_sign_on_policy_and_verify_steps_are_skipped(etype: str) -> None:
    with pytest.raises(Skipped) as info:
        adapt("policy_evaluate_sign_on", eventType=etype)
    assert info.value.kind == f"okta:{etype}"


@pytest.mark.parametrize(("changes", "field"), [
    ({"eventType": "group.user_membership.add"}, "eventType"),
    ({"eventType": None}, "eventType"),
    ({"published": "yesterday"}, "published"),
    ({"published": 1714554000}, "published"),
    ({"authenticationContext": {"externalSessionId": None}}, "authenticationContext.externalSessionId"),
    ({"actor": "ana"}, "actor"),
    ({"actor": {"type": "User"}}, "actor"),
    ({"client": {"ipAddress": 7}}, "client.ipAddress"),
    ({"securityContext": {"asNumber": "AS3243"}}, "securityContext.asNumber"),
    ({"outcome": {}}, "outcome.result"),
])
def test_unmappable_records_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(AdapterError) as info:
        adapt("session_start", **changes)
    assert info.value.field == field


def test_sso_without_an_app_target_names_target() -> None:
    with pytest.raises(AdapterError) as info:
        adapt("sso", target=[])
    assert info.value.field == "target"
