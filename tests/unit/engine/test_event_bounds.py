"""Parse-time bounds of canonical events: every value is checked where it enters, with a named error.

One test per bound (each found by hand: a value that got through and failed later, or was silently
ignored), then property tests: whatever JSON-ish values a producer writes in any field,
``parse_event`` returns an :class:`Event` whose every value downstream code can handle, or raises
:class:`InvalidEvent`, and nothing else.
"""

from __future__ import annotations

import ipaddress
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_v0 as ref
from engine_harness import T0, decisions
from streams.adapters import adapt
from streams.engine import DurationError, IdsJoin, InvalidEvent, JoinView, PolicyError, Replay, loads_policy, parse_duration, parse_event
from streams.engine.decisions import rfc3339
from streams.engine.durations import MAX_DURATION_S
from streams.engine.events import (MAX_BYTES_VALUE, MAX_CHARS, MAX_DEPTH, MAX_ROLES, MAX_TS, MIN_TS, Event, parse_ip,
                                   parse_ts)
from streams.service.pipeline.ingest import DEFAULT_MAX_AGE_S, Rejected, decode, longest_absolute_s, past_bound


def _invalid(raw) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as exc:
        parse_event(raw)
    return exc.value


def _both(d: dict) -> list[InvalidEvent]:
    """The error for ``d`` given as a mapping and as JSON bytes (the two must agree)."""
    errors = [_invalid(d), _invalid(orjson.dumps(d))]
    assert (errors[0].field, errors[0].reason) == (errors[1].field, errors[1].reason)
    return errors


ACT = {"type": "activity", "ts": T0, "user": "ann", "session": "s1"}
LOGIN = {"type": "login", "ts": T0, "user": "ann", "session": "s1"}
ALERT = {"type": "alert", "ts": T0, "severity": "high", "src_ip": "10.0.0.1"}


# -- ts -------------------------------------------------------------------------------------------

def test_activity_stamped_before_1970_is_refused_instead_of_crashing_when_its_deadline_is_formatted():
    raw = b'{"type":"activity","ts":-1e12,"user":"ann","session":"s1","action":"GET /"}'
    err = _invalid(raw)
    assert err.field == "ts" and err.reason.startswith("out of range: -1e+12")
    assert decode(raw, now=T0) == Rejected(err.reason, "ts")


def test_rfc3339_time_whose_utc_year_is_0_or_10000_is_refused_by_name():
    for ts in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z"):
        err = _invalid({**LOGIN, "ts": ts})
        assert err.field == "ts" and err.reason.startswith(f"out of range: {ts!r}")


def test_ts_bounds_are_epoch_0_inclusive_to_the_year_9000_exclusive():
    assert parse_ts(0) == parse_ts("1970-01-01T00:00:00Z") == MIN_TS == 0.0
    assert parse_ts("8999-12-31T23:59:59Z") == MAX_TS - 1
    for bad in (MAX_TS, "9000-01-01T00:00:00Z", -0.5, 10**400):
        with pytest.raises(InvalidEvent) as exc:
            parse_event({**ACT, "ts": bad})
        assert exc.value.field == "ts"


def test_every_accepted_time_plus_the_longest_policy_duration_formats_as_rfc3339():
    for ts in (MIN_TS, 1.5, T0, MAX_TS - 0.001, math.nextafter(MAX_TS, 0)):
        ev = parse_event({**ACT, "ts": ts})
        assert rfc3339(ev.ts + MAX_DURATION_S).endswith("Z") and rfc3339(ev.ts).endswith("Z")


def test_decode_refuses_events_older_than_max_age_and_the_default_is_35_days():
    raw = orjson.dumps({**LOGIN, "ts": T0 - 36 * 86400})
    got = decode(raw, now=T0)
    assert isinstance(got, Rejected) and got.field == "ts" and got.reason.startswith("too old: ts is 3110400s behind")
    assert DEFAULT_MAX_AGE_S == 35 * 86400
    assert isinstance(decode(raw, now=T0, max_age_s=40 * 86400), Event)
    assert isinstance(decode(orjson.dumps({**LOGIN, "ts": T0 - 34 * 86400}), now=T0), Event)


def test_past_bound_widens_the_configured_bound_to_the_policys_longest_absolute_limit_plus_a_day():
    p = loads_policy('[defaults]\npreset = "nist-800-63b-aal2"\n[[rules]]\nname = "kiosk"\nchannel = "web"\n'
                     'absolute = "90d"\n[[rules]]\nname = "api"\nchannel = "api"\nidle = "5m"')
    assert longest_absolute_s(p) == 90 * 86400.0
    assert past_bound(longest_absolute_s(p)) == 91 * 86400.0
    assert past_bound(longest_absolute_s(loads_policy(""))) == DEFAULT_MAX_AGE_S  # 12 h default: configured wins
    assert past_bound(None, 7 * 86400.0) == 7 * 86400.0  # no absolute limit anywhere: the configured bound


# -- durations ------------------------------------------------------------------------------------

def test_policy_durations_longer_than_366_days_are_refused_by_name():
    assert parse_duration("366d") == MAX_DURATION_S
    for bad in ("367d", "8785h", "1" * 400 + "s"):
        with pytest.raises(DurationError, match="longer than 366 days"):
            parse_duration(bad)
    with pytest.raises(PolicyError, match=r"defaults\.absolute: longer than 366 days"):
        loads_policy('[defaults]\nabsolute = "100000d"')


# -- nesting --------------------------------------------------------------------------------------

def _nested(n: int) -> object:
    v: object = 1
    for i in range(n):
        v = [v] if i % 2 else {"k": v}
    return v


def test_alert_nested_300_deep_is_refused_at_parse_time_not_when_reserialised():
    raw = b'{"type":"alert","ts":0,"severity":1,"src_ip":"1.2.3.4","x":' + b"[" * 300 + b"]" * 300 + b"}"
    err = _invalid(raw)
    assert (err.field, err.reason) == ("x", f"nested deeper than {MAX_DEPTH} levels")
    deep = {**ALERT, "x": _nested(300)}  # as a mapping: deeper than orjson can write
    assert (_invalid(deep).field, _invalid(deep).reason) == ("x", "nested deeper than 16 levels")


def test_nesting_limit_is_16_levels_counting_the_event_and_brackets_in_strings_do_not_count():
    ok = {**ACT, "geo": {"country": "DE"}, "x": _nested(MAX_DEPTH - 1), "text": "[{" * 100}
    assert parse_event(orjson.dumps(ok)).raw["text"] == "[{" * 100
    assert parse_event(ok).raw is ok
    for err in _both({**ACT, "x": _nested(MAX_DEPTH)}):
        assert (err.field, err.reason) == ("x", "nested deeper than 16 levels")


def test_canonical_adapter_refuses_what_the_service_could_not_write_back_out():
    r = adapt("canonical", b'{"type":"alert","ts":0,"x":' + b"[" * 300 + b"]" * 300 + b"}")
    assert r.error is not None and (r.error.field, r.error.reason) == ("x", "nested deeper than 16 levels")


def test_mapping_that_json_cannot_hold_is_refused():
    for d in ({**ACT, 7: "x"}, {**ACT, "x": 2**64}, {**ACT, "x": {1, 2}}):
        err = _invalid(d)
        assert err.field is None and err.reason.startswith("not serialisable as JSON")


# -- numbers --------------------------------------------------------------------------------------

def test_bytes_must_be_below_2_53():
    assert parse_event({**ACT, "bytes": MAX_BYTES_VALUE - 1}).bytes == 2**53 - 1
    for err in _both({**ACT, "bytes": MAX_BYTES_VALUE}):
        assert err.field == "bytes" and "below 2**53" in err.reason


def test_integer_status_must_fit_32_bits():
    assert parse_event({**ACT, "status": 0xC000006D}).status == 3221225581  # an NTSTATUS
    assert parse_event({**ACT, "status": -1}).status == -1
    for st_ in (2**32, -(2**31) - 1, 2**63):
        for err in _both({**ACT, "status": st_}):
            assert err.field == "status" and err.reason.startswith("integer out of range")


def test_geo_lat_and_lon_must_be_finite_numbers_in_range():
    assert parse_event({**ACT, "geo": {"lat": -90, "lon": 180.0, "country": "DE"}}).geo["lat"] == -90
    for key, bad in (("lat", math.nan), ("lon", math.inf), ("lat", 90.5), ("lon", "13.4"), ("lat", True)):
        for raw in ({**ACT, "geo": {key: bad}}, {**LOGIN, "geo": {key: bad}}):
            assert _invalid(raw).field == f"geo.{key}"
    assert _invalid(b'{"type":"activity","ts":0,"user":"u","session":"s","geo":{"lat":1e300}}').field == "geo.lat"


def test_severity_with_a_non_ascii_digit_or_an_overlong_string_is_a_named_error():
    for sev in ("\u00b2", "\u0663", "1" * 5000, " high " * 10):
        err = _invalid({**ALERT, "severity": sev})
        assert err.field == "severity" and len(err.reason) <= 120


def test_ts_too_large_for_a_float_is_a_named_error():
    err = _invalid({**ACT, "ts": 10**400})
    assert (err.field, err.reason) == ("ts", "epoch seconds must be finite")


# -- lengths --------------------------------------------------------------------------------------

_STRING_FIELDS = [(ACT, "user"), (ACT, "session"), (ACT, "action"), (ACT, "resource"), (ACT, "device"),
                  (ACT, "status"), (LOGIN, "user"), (LOGIN, "session"), (LOGIN, "sso_session"), (LOGIN, "app"),
                  (LOGIN, "device"), (ALERT, "signature"), (ALERT, "sso_session"), (ALERT, "severity")]


@pytest.mark.parametrize(("base", "name"), _STRING_FIELDS, ids=[f"{b['type']}.{n}" for b, n in _STRING_FIELDS])
def test_string_fields_are_bounded_by_name(base, name):
    limit = MAX_CHARS[name]
    if name == "severity":  # a valid severity padded to just within, and just beyond, the bound
        assert parse_event({**base, name: "high".center(limit)}).severity == "high"
        for err in _both({**base, name: "high".center(limit + 1)}):
            assert err.field == name and err.reason.startswith("expected critical|high|medium|low")
        return
    parse_event({**base, name: "x" * limit})
    for err in _both({**base, name: "x" * (limit + 1)}):
        assert err.field == name and f"longer than {limit} characters" in err.reason


def test_roles_are_bounded_in_count_and_each_in_length():
    assert len(parse_event({**LOGIN, "roles": ["r"] * MAX_ROLES}).roles) == MAX_ROLES
    for roles, words in ((["r"] * (MAX_ROLES + 1), "more than 256 roles"),
                         (["ok", "x" * (MAX_CHARS["roles"] + 1)], "a role longer than 1024 characters")):
        for err in _both({**LOGIN, "type": "role_change", "roles": roles}):
            assert err.field == "roles" and words in err.reason


def test_ip_fields_are_bounded_before_being_parsed():
    for base, name in ((ACT, "ip"), (LOGIN, "ip"), (ALERT, "src_ip"), (ALERT, "dest_ip")):
        for err in _both({**base, name: "1" * 65}):
            assert err.field == name and "longer than 64 characters" in err.reason


# -- addresses ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("given_", "normal"), [
    ("::ffff:203.0.113.9", "203.0.113.9"),
    ("0:0:0:0:0:FFFF:203.0.113.9", "203.0.113.9"),
    ("2001:DB8::1", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("::FFFF:CB00:7109", "203.0.113.9"),
])
def test_ip_addresses_are_normalised_in_every_ip_field(given_, normal):
    assert parse_event({**ACT, "ip": given_}).ip == normal
    assert parse_event(orjson.dumps({**LOGIN, "ip": given_})).ip == normal
    alert = parse_event({**ALERT, "src_ip": given_, "dest_ip": given_})
    assert alert.src_ip == alert.dest_ip == normal


def test_alert_on_the_mapped_or_upper_case_form_finds_the_session_seen_on_the_plain_address():
    join, state = IdsJoin(loads_policy("").ids), {}
    view = JoinView(state, in_place=True)
    for ev in (parse_event({**ACT, "ip": "203.0.113.9"}), parse_event({**ACT, "session": "s2", "ip": "2001:db8::1"})):
        join.sighting(view, ev.ip, ev.user, ev.session, ev.ts, ev.ts)
    for src, session in (("::ffff:203.0.113.9", "s1"), ("2001:DB8::1", "s2")):
        alert = parse_event({**ALERT, "ts": T0 + 10, "src_ip": src})
        assert join.keys_of(alert) == [alert.src_ip]
        assert [(t.user, t.session) for t in join.alert(view, alert.src_ip, alert, alert.raw, T0 + 10)] == [("ann", session)]
    assert sorted(state) == ["2001:db8::1", "203.0.113.9"]


def test_engine_revokes_the_session_when_the_alert_names_its_address_in_ipv4_mapped_form():
    r = Replay(loads_policy(""))
    r.feed(parse_event(orjson.dumps({**LOGIN, "ip": "203.0.113.9"})))
    outs = r.feed(parse_event(orjson.dumps({**ALERT, "ts": T0 + 60, "src_ip": "::ffff:203.0.113.9"})))
    assert decisions(outs) == [("revoke", "ids_alert", "s1", 60.0)]
    assert outs[0].value["evidence"]["src_ip"] == "203.0.113.9"


def test_alert_naming_a_network_is_dead_lettered_with_the_reason_not_ignored():
    got = decode(orjson.dumps({**ALERT, "src_ip": "203.0.113.0/24"}), now=T0)
    assert got == Rejected("a network (203.0.113.0/24) is not an address; lapse joins alerts on single addresses",
                           "src_ip")
    assert _invalid({**ALERT, "src_ip": "10.0.0.1", "dest_ip": "2001:db8::/32"}).field == "dest_ip"
    r = adapt("suricata", b'{"event_type":"alert","timestamp":"2024-05-01T09:00:00+0000","src_ip":"203.0.113.0/24",'
                          b'"alert":{"severity":1,"signature":"x"}}')
    assert r.error is not None and r.error.field == "src_ip" and r.error.reason.startswith("a network (203.0.113.0/24)")


@pytest.mark.parametrize("bad", ["localhost", "10.0.0.256", "010.0.0.1", "10.0.0.1 ", "1.2.3", "fe80::1::2"])
def test_a_value_that_is_not_an_ip_address_is_refused_by_name(bad):
    for base, name in ((ACT, "ip"), (LOGIN, "ip"), (ALERT, "src_ip")):
        for err in _both({**base, name: bad}):
            assert (err.field, err.reason) == (name, f"not an IP address: {bad!r}")


def test_empty_ip_means_no_address_and_a_normal_address_is_kept_as_given():
    assert parse_event({**ACT, "ip": ""}).ip is None
    for ip in ("203.0.113.9", "::1", "2001:db8::1"):
        assert parse_event({**ACT, "ip": ip}).ip == ip
    assert _invalid({**ALERT, "src_ip": "", "dest_ip": ""}).reason.startswith("an alert needs at least one")


def test_adapters_emit_addresses_in_the_normal_form():
    r = adapt("suricata", b'{"event_type":"alert","timestamp":"2024-05-01T09:00:00+0000","src_ip":"::FFFF:203.0.113.9",'
                          b'"dest_ip":"2001:DB8::1","alert":{"severity":1,"signature":"x"}}')
    assert (r.events[0]["src_ip"], r.events[0]["dest_ip"]) == ("203.0.113.9", "2001:db8::1")
    r = adapt("okta", orjson.dumps({
        "eventType": "user.session.start", "published": "2024-05-01T09:00:00.000Z", "outcome": {"result": "SUCCESS"},
        "actor": {"type": "User", "alternateId": "ana@example.com", "id": "00u1"},
        "authenticationContext": {"externalSessionId": "102abc"}, "client": {"ipAddress": "::ffff:198.51.100.7"}}))
    assert r.error is None and r.events[0]["ip"] == "198.51.100.7"
    r = adapt("keycloak", b'{"type": "LOGIN", "time": 1714554000000, "userId": "u-1", "sessionId": "s-1",'
                          b' "ipAddress": "2001:DB8:0::7"}')
    assert r.events[0]["ip"] == "2001:db8::7"
    r = adapt("cloudtrail", orjson.dumps({"Records": [{
        "eventVersion": "1.08", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "eventTime": "2024-05-01T09:00:00Z", "sourceIPAddress": "::FFFF:198.51.100.7",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/ana"},
        "responseElements": {"ConsoleLogin": "Success"}}]}))
    assert r.error is None and r.events[0]["ip"] == "198.51.100.7"
    for ev in r.events:
        assert parse_event(ev).ip == ev["ip"]


def test_ip_memo_is_bounded():
    from streams.engine import events

    for i in range(events._IP_MEMO_MAX + 10):
        parse_ip(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(events._IP_MEMO) <= events._IP_MEMO_MAX


# -- properties -----------------------------------------------------------------------------------

_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70) | st.floats()
            | st.text(max_size=12)
            | st.sampled_from([2**53, 2**63, 2**64, -(2**63) - 1, 1e308, -1e308, 0, -1, 221845392000, 3, "3", "\u00b2"])
            | st.builds(lambda c, n: c * n, st.sampled_from(["x", "[", "{", "é"]), st.integers(0, 2100)))
_ts = st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                       "1969-12-31T23:59:59Z", "8999-12-31T23:59:59.999Z", "2026-01-01 00:00", -1e12, 0, -0.0,
                       MAX_TS, MAX_TS - 1, 1767225600, 1e20])
_ips = st.sampled_from(["10.0.0.1", "::ffff:203.0.113.9", "2001:DB8::1", "203.0.113.0/24", "::1", "fe80::1%eth0",
                        "localhost", "", "1.2.3.4/32", "::ffff:1.2.3.4%x", "2001:db8::/32", "1" * 65])
_deep = st.integers(0, 40).map(_nested)
_values = st.recursive(_scalars | _deep, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                       max_leaves=10)
_types = st.sampled_from(["login", "refresh", "reauth", "logout", "login_failed", "user_disabled", "credential_change",
                          "role_change", "activity", "alert"])
_FIELDS = ["user", "session", "sso_session", "app", "channel", "ip", "device", "roles", "aal", "geo", "action",
           "resource", "bytes", "status", "privileged", "automatic", "severity", "signature", "src_ip", "dest_ip",
           "id", "x"]
_field_values = {
    "ip": _ips | _values, "src_ip": _ips | _values, "dest_ip": _ips | _values,
    "roles": st.lists(st.text(max_size=3), max_size=3) | st.lists(st.just("r"), min_size=250, max_size=260) | _values,
    "geo": st.dictionaries(st.sampled_from(["lat", "lon", "country"]), _scalars, max_size=3) | _values,
    "severity": st.sampled_from(["high", 1, "2", " LOW "]) | _values,
    "user": st.sampled_from(["ann", ""]) | _values, "session": st.sampled_from(["s1", ""]) | _values,
}
_events = st.fixed_dictionaries(
    {"type": _types | _values, "ts": _ts | _values},
    optional={name: _field_values.get(name, _values) for name in _FIELDS})


def _as_given(d: dict, as_bytes: bool) -> object:
    if not as_bytes:
        return d
    try:
        return orjson.dumps(d)
    except TypeError:  # deeper than orjson writes, or an int beyond 64 bits: only a mapping can hold it
        return d


def _check(ev: Event) -> None:
    assert MIN_TS <= ev.ts < MAX_TS
    rfc3339(ev.ts + MAX_DURATION_S)
    rfc3339(ev.ts)
    for name in ("ip", "src_ip", "dest_ip"):
        ip = getattr(ev, name)
        if ip is not None:
            a = ipaddress.ip_address(ip)
            assert str(a) == ip and not (a.version == 6 and a.ipv4_mapped is not None)
            assert parse_ip(ip) == ip
    for name in ("user", "session", "sso_session", "app", "device", "action", "resource", "signature"):
        v = getattr(ev, name)
        assert v is None or (type(v) is str and len(v) <= MAX_CHARS[name])
    assert ev.roles is None or (len(ev.roles) <= MAX_ROLES and all(len(r) <= MAX_CHARS["roles"] for r in ev.roles))
    assert ev.bytes is None or 0 <= ev.bytes < MAX_BYTES_VALUE
    assert ev.status is None or type(ev.status) is str or -(2**31) <= ev.status < 2**32
    if ev.geo:
        for key in ("lat", "lon"):
            v = ev.geo.get(key)
            assert v is None or (math.isfinite(v) and abs(v) <= 180)
    orjson.dumps(ev.raw)
    orjson.dumps(ev.raw, option=orjson.OPT_SORT_KEYS)  # how decision ids hash an event
    orjson.dumps({"kind": "target", "alert": ev.raw})  # the envelope an alert travels in


@settings(max_examples=1500, deadline=None)
@given(_events, st.booleans())
def test_any_json_ish_values_in_any_field_give_a_bounded_event_or_an_invalid_event(d, as_bytes):
    try:
        ev = parse_event(_as_given(d, as_bytes))
    except InvalidEvent as exc:
        assert isinstance(exc.reason, str) and (exc.field is None or isinstance(exc.field, str))
        assert len(exc.reason) <= 300
        return
    _check(ev)


@settings(max_examples=1500, deadline=None)
@given(_events, st.booleans())
def test_the_fast_path_gives_the_simple_parsers_outcome_on_out_of_bounds_values(d, as_bytes):
    raw = _as_given(d, as_bytes)

    def outcome(parse):
        try:
            ev = parse(raw)
        except InvalidEvent as exc:
            return ("invalid", exc.field, exc.reason)
        return ("event", ev)

    assert outcome(parse_event) == outcome(ref.parse_event)
