"""Every adapter: bad input raises AdapterError naming the field (or Skipped), never anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.adapters import ADAPTERS, FORMATS, adapt
from streams.adapters.errors import AdapterError, Skipped
from streams.engine.events import parse_event

HERE = Path(__file__).parents[2] / "fixtures" / "adapters"


def _records() -> dict[str, list[dict[str, Any]]]:
    def named(name: str) -> list[dict[str, Any]]:
        return [v for k, v in json.loads((HERE / name).read_text()).items() if not k.startswith("_")]

    eve = [orjson.loads(line) for line in (HERE / "suricata_eve.jsonl").read_bytes().splitlines()]
    canonical = [{"type": "login", "ts": "2024-05-01T09:00:00Z", "user": "ana", "session": "s1"},
                 {"type": "alert", "ts": 1714554000, "severity": "high", "src_ip": "203.0.113.9"}]
    return {"okta": named("okta_events.json"), "keycloak": named("keycloak_events.json"),
            "cloudtrail": named("cloudtrail_events.json"), "suricata": eve, "canonical": canonical}


RECORDS = _records()


def outcome(fmt: str, raw: bytes) -> list[dict] | Skipped | AdapterError:
    try:
        return ADAPTERS[fmt](raw)
    except (AdapterError, Skipped) as exc:
        return exc


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": 1', b"\xff\xfe\x00", b"null", b"[]", b'"login"', b"42", b"{}"])
def test_malformed_or_non_object_input_is_an_adapter_error(fmt: str, raw: bytes) -> None:
    with pytest.raises(AdapterError) as info:
        ADAPTERS[fmt](raw)
    assert info.value.field and info.value.reason


@pytest.mark.parametrize("fmt", FORMATS)
def test_records_over_64_kib_are_rejected_before_parsing(fmt: str) -> None:
    record = dict(RECORDS[fmt][0], padding="x" * (64 * 1024))
    with pytest.raises(AdapterError) as info:
        ADAPTERS[fmt](orjson.dumps(record))
    assert info.value.field == "$" and "exceeds" in info.value.reason


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_fixture_maps_to_valid_canonical_events_or_is_skipped(fmt: str) -> None:
    mapped = 0
    for record in RECORDS[fmt]:
        result = outcome(fmt, orjson.dumps(record))
        assert not isinstance(result, AdapterError), (record, result)
        if isinstance(result, list):
            mapped += len(result)
            for event in result:
                parse_event(orjson.dumps(event))
    assert mapped


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(FORMATS), raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_else(fmt: str, raw: bytes) -> None:
    outcome(fmt, raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out += _paths(inner, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A fixture record with one to three fields replaced by arbitrary JSON or removed."""
    fmt = draw(st.sampled_from(FORMATS))
    record = json.loads(json.dumps(draw(st.sampled_from(RECORDS[fmt]))))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(record)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = record
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_json)
    return fmt, orjson.dumps(record)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated())
def test_mutated_fixtures_map_validly_or_fail_with_a_named_field(case: tuple[str, bytes]) -> None:
    fmt, raw = case
    result = outcome(fmt, raw)
    if isinstance(result, AdapterError):
        assert result.field
    elif isinstance(result, list) and fmt != "canonical":  # canonical is validated downstream
        for event in result:
            parse_event(event)


@settings(max_examples=200, deadline=None)
@given(line=st.text(alphabet=st.sampled_from(list("type=LOGIN, userId'\"\\ 0123-:TZ.")), max_size=80))
def test_keycloak_log_line_parser_never_raises_anything_else(line: str) -> None:
    outcome("keycloak", ("2024-05-01T09:00:00Z INFO " + line).encode())


@given(raw=st.binary(max_size=100))
@settings(max_examples=100, deadline=None)
def test_registry_adapt_never_raises_for_any_bytes(raw: bytes) -> None:
    for fmt in FORMATS:
        result = adapt(fmt, raw)
        assert (result.error is not None) + (result.skipped is not None) + result.ok == 1
