"""Keycloak adapter: JSON user and admin events, and jboss-logging key=value lines."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from streams.adapters import keycloak
from streams.adapters.errors import AdapterError, Skipped
from streams.engine.events import parse_event

HERE = Path(__file__).parents[2] / "fixtures" / "adapters"
FIXTURES = json.loads((HERE / "keycloak_events.json").read_text())
USER = "7f3c1a2e-0000-4000-8000-000000000001"
SESSION = "3f1e2d3c-0000-4000-8000-0000000000a1"


def adapt_raw(raw: bytes) -> list[dict]:
    events = keycloak.adapt(raw)
    for event in events:
        parse_event(event)
    return events


def adapt(name: str, **changes: object) -> list[dict]:
    return adapt_raw(orjson.dumps(dict(FIXTURES[name], **changes)))


def test_login_maps_user_session_client_and_address() -> None:
    assert adapt("login") == [{"type": "login", "ts": "2024-05-01T09:00:00.000Z", "user": USER,
                               "session": SESSION, "app": "portal", "ip": "198.51.100.7"}]


@pytest.mark.parametrize("name", ["code_to_token", "refresh_token"])
def test_token_grants_refresh_the_session(name: str) -> None:
    [event] = adapt(name)
    assert (event["type"], event["session"]) == ("refresh", SESSION)


def test_logout_without_client_ends_the_session() -> None:
    assert adapt("logout") == [{"type": "logout", "ts": "2024-05-01T14:00:00.000Z", "user": USER,
                                "session": SESSION, "ip": "198.51.100.7"}]


def test_login_error_of_a_known_user_is_login_failed() -> None:
    [event] = adapt("login_error_known_user")
    assert (event["type"], event["user"], event["ip"]) == ("login_failed", USER, "203.0.113.50")


def test_login_error_of_an_unknown_user_uses_the_typed_username() -> None:
    assert adapt("login_error_unknown_user")[0]["user"] == "root"


def test_password_update_is_a_credential_change() -> None:
    assert adapt("update_password")[0]["type"] == "credential_change"


@pytest.mark.parametrize(("name", "kind"), [
    ("update_profile", "keycloak:UPDATE_PROFILE"),
    ("refresh_token_error", "keycloak:REFRESH_TOKEN_ERROR"),
    ("admin_update_user_profile", "keycloak:admin:UPDATE:USER"),
    ("admin_create_client", "keycloak:admin:CREATE:CLIENT"),
])
def test_irrelevant_events_are_skipped_with_their_kind(name: str, kind: str) -> None:
    with pytest.raises(Skipped) as info:
        adapt(name)
    assert info.value.kind == kind


def test_admin_delete_of_a_user_disables_the_user_in_the_path() -> None:
    assert adapt("admin_delete_user") == [{"type": "user_disabled", "ts": "2024-05-01T10:56:40.000Z",
                                           "user": "7f3c1a2e-0000-4000-8000-000000000002"}]


def test_admin_update_setting_enabled_false_disables_the_user() -> None:
    [event] = adapt("admin_disable_user")
    assert (event["type"], event["user"]) == ("user_disabled", "7f3c1a2e-0000-4000-8000-000000000003")


def test_admin_password_reset_is_a_credential_change() -> None:
    assert adapt("admin_reset_password")[0] == {"type": "credential_change", "ts": "2024-05-01T11:01:40.000Z",
                                                "user": USER}


def test_admin_sign_out_of_all_sessions_is_a_user_logout() -> None:
    [event] = adapt("admin_reset_password", resourcePath=f"users/{USER}/logout")
    assert event == {"type": "logout", "ts": "2024-05-01T11:01:40.000Z", "user": USER}


def test_log_lines_map_like_json_events() -> None:
    lines = (HERE / "keycloak-events.log").read_bytes().splitlines()
    login, refresh, failed, deleted = (adapt_raw(line)[0] for line in lines[:4])
    assert login == {"type": "login", "ts": "2024-05-01T09:00:00.000Z", "user": USER, "session": SESSION,
                     "app": "portal", "ip": "198.51.100.7"}  # session from code_id: no sessionId printed
    assert refresh == {"type": "refresh", "ts": "2024-05-01T07:05:00.000Z", "user": USER, "session": SESSION,
                       "app": "portal", "ip": "198.51.100.7"}  # double-quoted values, offset time
    assert (failed["type"], failed["user"]) == ("login_failed", "root")
    assert deleted["type"] == "user_disabled" and deleted["user"] == "7f3c1a2e-0000-4000-8000-000000000002"
    with pytest.raises(Skipped):
        keycloak.adapt(lines[4])  # a quoted value with a space parses; the type is skipped


@pytest.mark.parametrize(("changes", "field"), [
    ({"type": "TELEPORT"}, "type"),
    ({"type": 7}, "type"),
    ({"time": "yesterday"}, "time"),
    ({"time": None}, "time"),
    ({"time": -5}, "time"),
    ({"userId": None}, "userId"),
    ({"sessionId": None, "details": {}}, "sessionId"),
    ({"ipAddress": ["198.51.100.7"]}, "ipAddress"),
    ({"details": "none"}, "details"),
])
def test_unmappable_json_events_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(AdapterError) as info:
        adapt("login", **changes)
    assert info.value.field == field


@pytest.mark.parametrize(("line", "field"), [
    (b"type=LOGIN, realmId=acme, userId=u1, sessionId=s1", "time"),
    (b"2024-05-01 09:00:00,000 INFO hello world", "type"),
    (b"2024-05-01 09:00:00,000 INFO type=LOGIN, realmId=acme, userId=null, sessionId=s1", "userId"),
    (b"\xff\xfe type=LOGIN", "$"),
])
def test_unmappable_log_lines_name_the_field(line: bytes, field: str) -> None:
    with pytest.raises(AdapterError) as info:
        keycloak.adapt(line)
    assert info.value.field == field


def test_admin_event_path_must_name_a_user() -> None:
    with pytest.raises(AdapterError) as info:
        adapt("admin_delete_user", resourcePath="groups/g1")
    assert info.value.field == "resourcePath"
