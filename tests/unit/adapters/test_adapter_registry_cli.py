"""Registry, canonical passthrough, dead letters, the real vendor samples and ``lapse adapt``."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streams.adapters import ADAPTERS, AdapterError, adapt, canonical, dead_letter
from streams.cli.adapt import adapt_cmd
from streams.engine.events import parse_event

REPO = Path(__file__).parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "adapters"
SAMPLES = next((p for p in (Path("/work/shared/samples"), REPO.parent / "shared" / "samples") if p.is_dir()), None)
needs_samples = pytest.mark.skipif(SAMPLES is None, reason="shared vendor samples not present")


def test_registry_has_one_adapter_per_format() -> None:
    assert set(ADAPTERS) == {"okta", "keycloak", "suricata", "cloudtrail", "canonical"}


def test_registry_rejects_an_unknown_format_as_configuration_error() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        adapt("splunk", b"{}")


def test_registry_turns_an_adapter_bug_into_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ADAPTERS, "okta", lambda raw: 1 / 0)
    result = adapt("okta", b"{}")
    assert result.error is not None and "ZeroDivisionError" in result.error.reason


def test_canonical_events_pass_through_unchanged() -> None:
    event = {"type": "activity", "ts": "2024-05-01T09:00:00Z", "user": "ana", "session": "s1", "bytes": 12}
    assert canonical.adapt(orjson.dumps(event)) == [event]


@pytest.mark.parametrize(("raw", "field"), [(b'{"ts": 1}', "type"), (b'{"type": 1, "ts": 1}', "type"),
                                            (b'{"type": "login", "ts": [1]}', "ts")])
def test_canonical_rejects_name_the_field(raw: bytes, field: str) -> None:
    assert adapt("canonical", raw).error.field == field


def test_dead_letter_carries_reason_field_and_raw_bytes() -> None:
    raw = b'{"eventType": 1}'
    error = adapt("okta", raw).error
    letter = dead_letter(raw, error, topic="lapse.raw.okta", partition=2, offset=41, at="2024-05-01T09:00:00Z")
    assert letter == {"reason": "not a string (number)", "field": "eventType", "topic": "lapse.raw.okta",
                      "partition": 2, "offset": 41, "at": "2024-05-01T09:00:00Z",
                      "raw_b64": base64.b64encode(raw).decode()}
    assert isinstance(error, AdapterError)


@needs_samples
def test_real_okta_sample_maps_or_is_deliberately_skipped() -> None:
    lines = (SAMPLES / "okta-system-log.jsonl").read_bytes().splitlines()
    results = [adapt("okta", line) for line in lines]
    assert len(results) == 7 and not [r.error for r in results if r.error]
    events = [e for r in results for e in r.events]
    for event in events:
        parse_event(event)
    assert Counter(e["type"] for e in events) == {"login": 2, "logout": 1, "alert": 1}
    assert Counter(r.skipped for r in results if r.skipped) == {
        "okta:policy.evaluate_sign_on": 2, "okta:user.authentication.verify": 1}


@needs_samples
def test_real_suricata_sample_yields_one_alert_and_counts_eleven_skips() -> None:
    lines = (SAMPLES / "suricata-eve-small.jsonl").read_bytes().splitlines()
    results = [adapt("suricata", line) for line in lines]
    [alert] = [e for r in results for e in r.events]
    parse_event(alert)
    assert (alert["severity"], alert["ts"]) == (1, "2018-07-05T19:07:20.910626Z")
    assert sum(1 for r in results if r.skipped) == 11 and not any(r.error for r in results)


def test_cli_writes_canonical_jsonl_and_a_summary() -> None:
    result = CliRunner().invoke(adapt_cmd, ["suricata", str(FIXTURES / "suricata_eve.jsonl")])
    assert result.exit_code == 0, result.output
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [e["type"] for e in events] == ["alert", "alert"]
    assert result.stderr.splitlines()[-1] == (
        "adapted 2 events (alert 2); skipped 3 (suricata:dns 1, suricata:flow 1, suricata:stats 1); rejected 0")


def test_cli_reads_stdin_and_reports_rejects_with_line_numbers() -> None:
    lines = (FIXTURES / "keycloak-events.log").read_bytes() + b"\nnot an event\n"
    result = CliRunner().invoke(adapt_cmd, ["keycloak", "-"], input=lines)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 4
    err = result.stderr.splitlines()
    assert err[0] == "line 7: type: neither JSON nor a key=value line with type= or operationType="
    assert err[-1] == ("adapted 4 events (login 1, login_failed 1, refresh 1, user_disabled 1); "
                       "skipped 1 (keycloak:UPDATE_PROFILE 1); rejected 1")


def test_cli_rejects_an_unknown_format() -> None:
    result = CliRunner().invoke(adapt_cmd, ["splunk", "-"], input=b"")
    assert result.exit_code == 2
