"""Property-based fuzzing of every input topic through the worker's own decision steps, in-process
(tests/support/driver.py: ``_decide_user_batch``, ``_decide_join_batch``, ``_decide_raw_batch``,
``_expiry_tick``).

Every input topic is written by someone else, so each example pipes a few hostile records —
arbitrary bytes, arbitrary JSON, near-valid canonical events with one field made hostile,
near-valid vendor records (the adapters' fixtures with one field mutated) and forged internal
envelopes (``user-requests``, ``sightings``; unsealed, and sealed with the worker's key so that
what comes after the seal is fuzzed too) — interleaved, in the same batches, with a fixed set of
canary events whose decisions are known from ``lapse replay`` (``Replay``). Properties:

(a) no exception escapes a step (piping, the expiry tick, an advance far into the future);
(b) every record is either accepted by its step's own decoder or in dead letters — under its
    topic, partition and offset, with a non-empty reason and its stage — (records refused by the
    seal also get a ``forged_record`` audit); none is dropped silently; the canaries and every
    record the worker wrote itself onto its own inputs are accepted; no record reaches an
    exception inside a step (a dead letter with ``error`` set: the per-record guard of last
    resort), but for the known bugs below;
(c) the canaries are decided exactly as ``Replay`` decides the canary events alone
    (reason, session, at);
(d) every changelog record is valid JSON within ``max_record_bytes`` (tombstones aside), and so
    is every record produced; and no session is ended in state without its revocation (or, for
    a logout, its ``session_end`` audit) published.

The tests at the end pin the hostile records the properties once caught, one each.
Deterministic: ``derandomize=True`` and no example database, so CI runs the same examples every time (the whole file: ~15 s).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams.adapters import adapt
from streams.engine import Replay, loads_policy
from streams.engine.replay import run_replay
from streams.service.app import RAW_FORMATS
from streams.service.pipeline.ingest import Rejected
from streams.service.pipeline.sealed import MAGIC, OVERHEAD
from tests.support.driver import T0, Msg, ServiceDriver

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "adapters"
SAMPLES = REPO.parent / "shared" / "samples"

POLICY = """
[defaults]
idle = "30m"
absolute = "12h"

[[rules]]
name = "admins"
roles = ["admin"]
idle = "10m"

[activity]
automatic = ["*/notifications*"]

[ids]
revoke = ["critical"]
step_up = ["high"]
"""
#: the secret of sealed internal records (streams/service/pipeline/sealed.py)
ENV = {"LAPSE_INTERNAL_KEY": "fuzz-internal-key-" + "0" * 40}

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: the mixed test runs longer: everything at once
FUZZ_MIXED = settings(FUZZ, max_examples=300)

INPUT_TOPICS = ("identity", "activity", "ids-alerts", "user-requests", "sightings",
                *(f"raw.{f}" for f in RAW_FORMATS))
STAGES = {"ingest", "adapter", "ids-join", "decide", "publish", "expiry"}
FAR = 50 * 365 * 86400.0

# ---------------------------------------------------------------------------------------------- canaries
#: nothing hostile ever names these users, sessions or this address
CANARY_IP = "100.64.7.7"
CANARY_USERS = ("canary-ids-7f3a", "canary-acct-7f3a", "canary-idle-7f3a")


def canary_events() -> tuple[list[dict], list[dict]]:
    """(first batch, second batch): three logins; then an IDS alert on the first login's IP and
    the second user disabled. The third is left idle (idle_timeout after the advance)."""
    ids, acct, idle = CANARY_USERS
    first = [
        {"type": "login", "ts": T0, "user": ids, "session": f"{ids}-s", "ip": CANARY_IP, "app": "mail"},
        {"type": "login", "ts": T0, "user": acct, "session": f"{acct}-s", "ip": "100.64.7.8", "channel": "web"},
        {"type": "login", "ts": T0, "user": idle, "session": f"{idle}-s", "ip": "100.64.7.9"},
    ]
    second = [
        {"type": "alert", "ts": T0 + 1, "severity": "critical", "signature": "ET MALWARE canary C2",
         "src_ip": CANARY_IP},
        {"type": "user_disabled", "ts": T0 + 1, "user": acct},
    ]
    return first, second


def _canary_item(ev: dict) -> tuple[str, bytes, bytes]:
    if ev["type"] == "alert":
        return "ids-alerts", orjson.dumps(ev), ev["src_ip"].encode()
    return "identity", orjson.dumps(ev), ev["user"].encode()


def replay_expectation() -> list[tuple[str, str, str]]:
    """The canaries' decisions as ``lapse replay --drain`` gives them on the canary events alone."""
    first, second = canary_events()
    out, err = io.BytesIO(), io.BytesIO()
    run_replay(io.BytesIO(b"".join(orjson.dumps(e) + b"\n" for e in first + second)), Replay(loads_policy(POLICY)),
               out, err, drain=True)
    decisions = [orjson.loads(line) for line in out.getvalue().splitlines()]
    return sorted((x["reason"], x["session"], x["at"]) for x in decisions)


EXPECTED = replay_expectation()


def test_the_canaries_mean_something():
    ids, acct, idle = CANARY_USERS
    assert [(r, s) for r, s, _ in EXPECTED] == [("account_event", f"{acct}-s"), ("idle_timeout", f"{idle}-s"),
                                                ("ids_alert", f"{ids}-s")]


# ---------------------------------------------------------------------------------------------- the driver

def _where(msg: Any) -> tuple[str, int, int]:
    return (msg.topic, msg.partition, msg.offset)


class FuzzDriver(ServiceDriver):
    """The service driver, noting every message it delivers and what the step's own decoder said
    about it (accepted or rejected), to tell "decided" from "dropped"."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, POLICY, env=ENV)
        self.msgs: list[Msg] = []
        #: messages the worker produced onto its own inputs (sightings, user-requests, adapted events)
        self.own: set[tuple[str, int, int]] = set()
        self._pumping = False
        self.accepted: dict[tuple[str, int, int], bool] = {}
        steps = self.service.steps
        current: list[Any] = []

        decode_user = steps.decode_user_message
        join_alert = steps.join_alert_message
        join_internal = steps.join_internal_message
        decode = steps.decode

        def decode_user_message(msg: Any, *args: Any) -> Any:
            out = decode_user(msg, *args)
            self.accepted[_where(msg)] = not isinstance(out, Rejected)
            return out

        def join_alert_message(msg: Any, *args: Any) -> Any:
            current.append(msg)
            try:
                return join_alert(msg, *args)
            finally:
                current.pop()

        def decode_(raw: Any, now: float) -> Any:
            out = decode(raw, now)
            if current:
                self.accepted[_where(current[-1])] = not isinstance(out, Rejected) and out.type == "alert"
            return out

        def join_internal_message(msg: Any, *args: Any) -> Any:
            out = join_internal(msg, *args)
            self.accepted[_where(msg)] = out is None
            return out

        steps.decode_user_message = decode_user_message
        steps.join_alert_message = join_alert_message
        steps.decode = decode_
        steps.join_internal_message = join_internal_message

    def message(self, topic, value, key=None, partition=None):  # type: ignore[override]
        msg = super().message(topic, value, key, partition)
        self.msgs.append(msg)
        if self._pumping:
            self.own.add(_where(msg))
        return msg

    def pipe_batch(self, items):  # type: ignore[override]
        """As the driver's; a topic ``sealed:<name>`` is ``<name>``, its value sealed with the worker's key."""
        super().pipe_batch([self._sealed(*item) for item in items])

    def _sealed(self, topic: str, value: Any, key: Any, partition: Any) -> tuple:
        if topic.startswith("sealed:"):
            topic = topic[len("sealed:"):]
            value = orjson.dumps(value) if isinstance(value, dict) else value
            key = key.encode() if isinstance(key, str) else key
            value = self.service.sealer.seal(self.topic(topic), key, value or b"")
        return topic, value, key, partition

    def pump(self, max_rounds: int = 20) -> None:
        """As the driver's, noting which messages the worker wrote itself (``own``)."""
        self._pumping = True
        try:
            super().pump(max_rounds)
        finally:
            self._pumping = False


# ---------------------------------------------------------------------------------------------- strategies
#: user, session and IP pools of the hostile records (disjoint from the canaries')
H_USERS = ("h-ann", "h-bob", "h-carol", "h-δ", "h-" + "u" * 1000)
H_SESSIONS = ("h-s1", "h-s2", "h-s3", "h-" + "s" * 1000)
H_IPS = ("203.0.113.9", "198.51.100.7", "2001:db8::7", "::ffff:203.0.113.9", "2001:DB8:0::7", "10.0.0.5")

PLACEHOLDER = "\x00HOSTILE\x00"
_PLACEHOLDER_JSON = orjson.dumps(PLACEHOLDER)


def with_raw(doc: Any, raw: bytes) -> bytes:
    """``doc`` as JSON with its placeholder string replaced by the raw JSON text ``raw`` (which may
    be what no JSON writer emits: NaN, 1e999, a lone surrogate escape, 300 levels of nesting)."""
    return orjson.dumps(doc).replace(_PLACEHOLDER_JSON, raw, 1)


def _deep(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' * depth + inner + b"}" * depth


HOSTILE_LITERALS = [
    # wrong types
    b"null", b"true", b"false", b"[]", b"{}", b'""', b'" "', b"[1,2]", b'{"x":1}', b'["admin"]', b"0",
    # numbers: negative, huge, beyond float and 64 bits, not finite (NaN / Infinity are not JSON)
    b"-1", b"-1e12", b"1e12", b"1e308", b"-1e308", b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity",
    b"9007199254740993", b"18446744073709551616", b"-9223372036854775809", b"1" + b"0" * 400, b"0.1e-400",
    b"1767225600.0000001", b"-0.0", b"4294967296", b"-2147483649",
    # times: years 0 / 1 / 9999 / 10000, no zone, impossible dates, epoch milliseconds
    b'"0000-01-01T00:00:00Z"', b'"0001-01-01T00:00:00+01:00"', b'"9999-12-31T23:59:59Z"',
    b'"9999-12-31T23:59:59-01:00"', b'"10000-01-01T00:00:00Z"', b'"2026-01-01T00:00:00"', b'"2026-01-01"',
    b'"2026-13-45T99:99:99Z"', b'"2026-01-01T00:00:00+25:00"', b"1767225600000", b'"1767225600"',
    b'"yesterday"',
    # unicode: lone surrogates escaped in JSON, NUL, a BOM, right-to-left override
    b'"\\ud800"', b'"\\udfff\\ud800"', b'"a\\ud83d"', b'"a\\u0000b"', b'"\\ufeff"', b'"\\u202e"',
    b'"h-ann\\u0000"', b'"\xef\xbb\xbfh-ann"', b'"\xff\xfe"',
    # addresses: IPv4-mapped, upper-case IPv6, networks, ports, brackets, zones, out of range
    b'"::ffff:203.0.113.9"', b'"2001:DB8::1"', b'"2001:DB8:0:0:0:0:0:1"', b'"203.0.113.0/24"',
    b'"::ffff:0:0/96"', b'"203.0.113.9:443"', b'"[2001:db8::1]"', b'"fe80::1%eth0"', b'"999.1.1.1"',
    b'"localhost"', b'"0.0.0.0"', b'"::"', b'"203.0.113.9 "', b'"203.000.113.009"',
    # severities and enumerations
    b'"CRITICAL"', b'" critical "', b'"1"', b"1", b"5", b"-1", b'"informational"',
    # deep nesting, long strings (100 KB), many roles
    _deep(300), b"[" * 300 + b"]" * 300, _deep(17), b"[" * 17 + b"]" * 17,
    b'"' + b"x" * 100_000 + b'"', b'"' + "é".encode() * 30_000 + b'"', b'"' + b"x" * 1025 + b'"',
    orjson.dumps([f"r{i}" for i in range(300)]), orjson.dumps(["admin"] * 257),
]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=12)

def jdump(value: Any) -> bytes:
    """JSON text of any value hypothesis draws (integers beyond 64 bits too)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


hostile_raw = st.one_of(
    st.sampled_from(HOSTILE_LITERALS),
    json_values.map(jdump),
    st.integers().map(lambda i: str(i).encode()),
    st.text(max_size=60).map(orjson.dumps),
    st.sampled_from(H_USERS + H_SESSIONS + H_IPS).map(orjson.dumps),
)

# a hostile record: (topic, value, key)
Item = tuple[str, bytes | None, bytes | None]

input_topic = st.sampled_from(INPUT_TOPICS)
hostile_key = st.one_of(st.none(), st.sampled_from(H_USERS + H_IPS).map(str.encode), st.binary(max_size=40),
                        st.just(b"x" * 400), st.just(b"203.0.113.9#3"), st.just(b"session:h-s1"))


@st.composite
def arbitrary_bytes(draw: Any) -> Item:
    value = draw(st.one_of(st.none(), st.binary(max_size=300),
                           st.binary(min_size=1, max_size=64).map(lambda b: b * 1100)))  # up to ~70 KB
    return draw(input_topic), value, draw(hostile_key)


@st.composite
def arbitrary_json(draw: Any) -> Item:
    value = draw(st.one_of(json_values.map(jdump),
                           st.dictionaries(st.sampled_from(["type", "ts", "user", "session", "kind", "severity",
                                                            "src_ip", "alert", "ip", "eventType", "event_type"]),
                                           json_values, max_size=6).map(jdump),
                           json_values.map(lambda v: json.dumps(v).encode())))
    return draw(input_topic), value, draw(hostile_key)


def _bases() -> dict[str, dict[str, Any]]:
    ann, s1, ip = H_USERS[0], H_SESSIONS[0], H_IPS[0]
    ident = {"user": ann, "session": s1, "ip": ip, "app": "mail", "channel": "web", "device": "Firefox/125",
             "roles": ["user"], "aal": 2, "sso_session": "h-sso-1", "geo": {"country": "PT", "lat": 38.7, "lon": -9.1}}
    return {
        "login": {"type": "login", **ident},
        "refresh": {"type": "refresh", **ident},
        "reauth": {"type": "reauth", **ident},
        "logout": {"type": "logout", "user": ann, "session": s1},
        "login_failed": {"type": "login_failed", "user": ann, "ip": ip},
        "user_disabled": {"type": "user_disabled", "user": ann},
        "credential_change": {"type": "credential_change", "user": ann},
        "role_change": {"type": "role_change", "user": ann, "roles": ["admin"]},
        "activity": {"type": "activity", "user": ann, "session": s1, "ip": ip, "action": "GET /api/x",
                     "resource": "/api/x", "bytes": 1234, "status": 200, "privileged": False, "automatic": False,
                     "channel": "web"},
        "alert": {"type": "alert", "severity": "critical", "signature": "ET TEST hostile", "src_ip": ip,
                  "dest_ip": "10.0.0.5"},
    }


BASES = _bases()
FIELDS = sorted({k for b in BASES.values() for k in b} | {"ts", "type"})
UNKNOWN_FIELDS = ["extra", "", "__proto__", "constructor", "x" * 300, "ts ", "TYPE", "user\u0000", "\ud7ff"]
TOPIC_OF = {"alert": "ids-alerts", "activity": "activity"}


@st.composite
def near_valid_event(draw: Any) -> dict[str, Any]:
    """A valid canonical event (hostile users, sessions and addresses) at a time near the worker's clock."""
    kind = draw(st.sampled_from(sorted(BASES)))
    ev = dict(BASES[kind])
    if "user" in ev:
        ev["user"] = draw(st.sampled_from(H_USERS))
    if "session" in ev:
        ev["session"] = draw(st.sampled_from(H_SESSIONS))
    for f in ("ip", "src_ip"):
        if f in ev:
            ev[f] = draw(st.sampled_from(H_IPS))
    at = T0 + draw(st.sampled_from([-7200.0, -1.0, 0.0, 0.5, 2.0, 299.0, 301.0]))
    ev["ts"] = draw(st.sampled_from([at, int(at), "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"]))
    return ev


@st.composite
def near_valid_canonical(draw: Any) -> Item:
    """A near-valid canonical event: one field set to a hostile value, removed, or one unknown field added."""
    ev = draw(near_valid_event())
    natural = TOPIC_OF.get(ev["type"], "identity")
    how = draw(st.sampled_from(["set", "set", "set", "drop", "extra", "valid"]))
    if how == "valid":
        value = orjson.dumps(ev)
    elif how == "drop":
        ev.pop(draw(st.sampled_from(sorted(ev))))
        value = orjson.dumps(ev)
    else:
        name = draw(st.sampled_from(FIELDS)) if how == "set" else draw(st.sampled_from(UNKNOWN_FIELDS))
        ev[name] = PLACEHOLDER
        value = with_raw(ev, draw(hostile_raw))
    topic = draw(st.sampled_from([natural] * 6 + ["identity", "activity", "ids-alerts", "user-requests"]))
    key = ev.get("src_ip") if topic == "ids-alerts" else ev.get("user")
    key = key.encode() if isinstance(key, str) else None
    return topic, value, draw(st.one_of(st.just(key), hostile_key))


# -- vendor records

def _vendor_records() -> dict[str, list[Any]]:
    """The adapters' fixtures (and the real samples, when present), per raw format: JSON objects,
    or text lines (Keycloak's log form)."""
    out: dict[str, list[Any]] = {f: [] for f in RAW_FORMATS}
    for fmt, name in (("okta", "okta_events.json"), ("cloudtrail", "cloudtrail_events.json"),
                      ("keycloak", "keycloak_events.json")):
        doc = json.loads((FIXTURES / name).read_text())
        out[fmt] += [v for k, v in doc.items() if not k.startswith("_")]
    for line in (FIXTURES / "suricata_eve.jsonl").read_text().splitlines():
        if line.strip():
            out["suricata"].append(json.loads(line))
    for line in (FIXTURES / "keycloak-events.log").read_text().splitlines():
        if line.strip():
            out["keycloak"].append(line)
    for fmt, name in (("okta", "okta-system-log.jsonl"), ("suricata", "suricata-eve-small.jsonl")):
        path = SAMPLES / name
        if path.exists():
            out[fmt] += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


VENDOR = _vendor_records()
#: each format's time field, set near the worker's clock so that what the adapter maps reaches the engine
NOW_FIELD = {"okta": ("published", "2026-01-01T00:00:00.000Z"), "cloudtrail": ("eventTime", "2026-01-01T00:00:00Z"),
             "keycloak": ("time", int(T0 * 1000)), "suricata": ("timestamp", "2026-01-01T00:00:00.000000+0000")}
_LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+(Z|[+-]\d\d:?\d\d)?")


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document (objects and arrays)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _set(doc: Any, path: tuple, value: Any) -> None:
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value


def _drop(doc: Any, path: tuple) -> None:
    for p in path[:-1]:
        doc = doc[p]
    del doc[path[-1]]


@st.composite
def near_valid_vendor(draw: Any) -> Item:
    """A vendor record from the fixtures, near the worker's clock, with one field made hostile."""
    fmt = draw(st.sampled_from(RAW_FORMATS))
    rec = draw(st.sampled_from(VENDOR[fmt]))
    if isinstance(rec, str):  # a Keycloak log line
        line = _LOG_TIME.sub("2026-01-01T00:00:00Z", rec)
        how = draw(st.sampled_from(["value", "insert", "cut", "valid"]))
        if how == "value":
            pairs = list(re.finditer(r"(\w+)=(\"[^\"]*\"|'[^']*'|[^,]*)", line))
            if pairs:
                m = draw(st.sampled_from(pairs))
                line = line[:m.start(2)] + draw(st.sampled_from(
                    ["", "null", '"', "'", "=", ",", "x" * 100_000, "\ud800", "::ffff:203.0.113.9", "10.0.0.0/8",
                     "-1", "99999999999999999999", "LOGIN, userId=h-bob", "\x00"])) + line[m.end(2):]
        elif how == "insert":
            at = draw(st.integers(0, len(line)))
            line = line[:at] + draw(st.text(max_size=20)) + line[at:]
        elif how == "cut":
            line = line[:draw(st.integers(0, len(line)))]
        value = line.encode("utf-8", "surrogatepass")
    else:
        doc = json.loads(json.dumps(rec))
        name, now = NOW_FIELD[fmt]
        if isinstance(doc, dict) and name in doc:
            doc[name] = now
        if isinstance(doc, dict) and "Records" in doc:
            for r in doc["Records"]:
                if isinstance(r, dict) and name in r:
                    r[name] = now
        how = draw(st.sampled_from(["set", "set", "set", "drop", "extra", "valid"]))
        paths = _paths(doc)
        if how == "valid" or not paths:
            value = orjson.dumps(doc)
        elif how == "drop":
            _drop(doc, draw(st.sampled_from(paths)))
            value = orjson.dumps(doc)
        elif how == "extra":
            doc[draw(st.sampled_from(UNKNOWN_FIELDS))] = PLACEHOLDER
            value = with_raw(doc, draw(hostile_raw))
        else:
            _set(doc, draw(st.sampled_from(paths)), PLACEHOLDER)
            value = with_raw(doc, draw(hostile_raw))
    return f"raw.{fmt}", value, draw(st.one_of(st.none(), hostile_key))


# -- forged internal envelopes

@st.composite
def forged_internal(draw: Any) -> Item:
    """Records on ``user-requests`` and ``sightings`` that no worker wrote: envelopes of every kind
    with hostile or missing fields, and valid ones. Unsealed, they must be refused; about half are
    sealed with the worker's own key (topic ``sealed:<name>``, sealed when piped: a writer that holds
    the key, or a worker's own bug), so that what comes after the seal is fuzzed too."""
    alert = dict(BASES["alert"], ts=T0, src_ip=draw(st.sampled_from(H_IPS)))
    user = draw(st.sampled_from(H_USERS))
    if draw(st.booleans()):
        env: dict[str, Any] = {
            "kind": draw(st.sampled_from(["target", "target", "manual_revoke", "manual_revoke", "alert", "sighting",
                                          "", "TARGET"])),
            "user": user, "session": draw(st.sampled_from(H_SESSIONS)), "alert": alert, "via": alert["src_ip"],
            "operator": "mallory", "note": "forged", "ts": T0, "request": "r-1", "auth": "named token",
        }
        topic = "user-requests"
        key = user.encode()
    else:
        env = {"kind": draw(st.sampled_from(["sighting", "sighting", "alert", "target", "sightings"])),
               "user": user, "session": draw(st.sampled_from(H_SESSIONS)), "ts": T0, "alert": alert, "received": T0}
        topic = "sightings"
        key = draw(st.sampled_from([alert["src_ip"], f"session:{env['session']}", f"{alert['src_ip']}#1"])).encode()
    for name in draw(st.lists(st.sampled_from(sorted(env)), max_size=2, unique=True)):
        if name != "kind":
            env.pop(name)
    how = draw(st.sampled_from(["set", "set", "nested", "valid"]))
    if how == "set":
        env[draw(st.sampled_from(sorted(env) + ["extra"]))] = PLACEHOLDER
        value = with_raw(env, draw(hostile_raw))
    elif how == "nested" and isinstance(env.get("alert"), dict):
        env["alert"] = dict(env["alert"])
        env["alert"][draw(st.sampled_from(sorted(env["alert"]) + ["extra"]))] = PLACEHOLDER
        value = with_raw(env, draw(hostile_raw))
    else:
        value = orjson.dumps(env)
    if topic == "user-requests" and draw(st.booleans()):  # the worker's own framing: '{"kind":"' first
        value = b'{"kind":' + orjson.dumps(env.get("kind", "")) + b"," + value[1:] if value[:1] == b"{" else value
    if draw(st.booleans()):
        topic = f"sealed:{topic}"
    return topic, value, draw(st.one_of(st.just(key), hostile_key))


any_hostile = st.one_of(arbitrary_bytes(), arbitrary_json(), near_valid_canonical(), near_valid_vendor(),
                        forged_internal())


# ---------------------------------------------------------------------------------------------- the scenario

def _interleave(hostile: list[Item], canaries: list[Item], slots: list[int]) -> list[tuple]:
    """``canaries`` placed among ``hostile`` at ``slots`` (positions modulo the hostile count)."""
    out: list[tuple] = [(t, v, k, None) for t, v, k in hostile]
    for c, slot in zip(canaries, slots):
        out.insert(slot % (len(out) + 1), (*c, None))
    return out


def _dead_letter_index(d: FuzzDriver) -> dict[tuple[str, int, int], list[dict]]:
    out: dict[tuple[str, int, int], list[dict]] = {}
    for dl in d.dead_letters():
        out.setdefault((dl["topic"], dl["partition"], dl["offset"]), []).append(dl)
    return out


def _refused_index(d: FuzzDriver) -> set[tuple[str, int, int]]:
    """Records refused as forged (``forged_record`` audits; once the worker seals internal records)."""
    out = set()
    for a in d.audits("forged_record"):
        det = a.get("detail") or {}
        out.add((det.get("topic"), det.get("partition"), det.get("offset")))
    return out


def check_state_matches_decisions(d: FuzzDriver) -> None:
    """No session is ended in the worker's state without its ``session_end`` audit and (but for a
    logout) its revocation published: a revocation decided and then lost with a failed record would
    leave the session live at every enforcement point."""
    published = {(x["user"], x["session"]) for x in d.decisions()}
    ends = {(a["user"], a["session"]) for a in d.audits("session_end")}
    lost = []
    for user in list(d.engine.store):
        for sid, s in d.engine.store[user].sessions.items():
            if s.ended is None:
                continue
            # a user's own logout ends a session quietly (audited, nothing to revoke); the rest are revoked
            if (user, sid) not in ends or (s.end_reason != "logout" and (user, sid) not in published):
                lost.append((user[:40], str(sid)[:40], s.end_reason))
    assert not lost, f"sessions ended in state with no decision published: {lost[:5]}"


def _fault_raws(d: FuzzDriver) -> list[bytes]:
    """The payloads (seal removed) of the records whose step raised."""
    raws = [base64.b64decode(dl["raw_b64"]) for dl in d.dead_letters() if dl.get("error")]
    return [r[OVERHEAD:] if r[:3] == MAGIC else r for r in raws]


def check_records(d: FuzzDriver, canary_values: set[bytes]) -> None:
    """(b): each record accepted by its step, or dead-lettered (or refused) with reason and stage;
    the worker's own records and the canaries always accepted; no step ever raised."""
    dls, refused = _dead_letter_index(d), _refused_index(d)
    for dl in d.dead_letters():
        assert isinstance(dl["reason"], str) and dl["reason"].strip(), dl
        assert dl["stage"] in STAGES, dl
        base64.b64decode(dl["raw_b64"], validate=True)
        assert dl["raw_bytes"] >= 0 and isinstance(dl["offset"], int)
        if dl.get("error"):  # the per-record guard of last resort caught an exception
            raise AssertionError(f"a hostile record raised inside a step: {dl['reason']}")
    prefix = d.topic("")
    for msg in d.msgs:
        where = _where(msg)
        if msg.value in canary_values:
            assert where not in dls and where not in refused, (where, dls.get(where))
            assert d.accepted.get(where) is True, where
            continue
        short = msg.topic[len(prefix):]
        if where in d.own and short in ("sightings", "user-requests"):
            assert where not in dls and where not in refused, (
                f"the worker refused a record it wrote itself: {where} key={msg.key!r:.120} "
                f"value={(msg.value or b'')[:200]!r} -> {dls.get(where)}")
        if where in dls or where in refused:
            continue
        if short.startswith("raw."):
            result = adapt(short[4:], msg.value or b"")
            assert result.error is None, (where, (msg.value or b"")[:200], result.error)
        else:
            assert d.accepted.get(where) is True, (
                f"neither decided nor dead-lettered: {where} key={msg.key!r:.120} value={(msg.value or b'')[:300]!r}")


def check_outputs(d: FuzzDriver) -> None:
    """(d): every changelog record valid JSON and within ``max_record_bytes``; every output too."""
    limit = d.service.settings.max_record_bytes
    for topic, key, value, _ in d.changelog():
        if value is not None:
            assert len(value) <= limit, (topic, key[:80] if key else key, len(value))
            orjson.loads(value)
    for topic, key, value, _ in d.service.sender.records:
        assert value is None or len(value) <= limit, (topic, len(value))


async def scenario(tmp: Path, hostile: list[Item], slots: list[int], split: int) -> FuzzDriver:
    """Two batches of hostile records with the canaries among them, the idle advance, the rest of
    the hostile records, and an advance far into the future; every property checked."""
    d = FuzzDriver(tmp)
    first, second = canary_events()
    canaries1 = [_canary_item(e) for e in first]
    canaries2 = [_canary_item(e) for e in second]
    canary_values = {v for _, v, _ in canaries1 + canaries2}
    a, b = split % (len(hostile) + 1), (split * 7) % (len(hostile) + 1)
    lo, hi = min(a, b), max(a, b)
    # (a) nothing escapes a step: the driver calls them directly
    d.pipe_batch(_interleave(hostile[:lo], canaries1, slots))
    check_state_matches_decisions(d)
    d.pipe_batch(_interleave(hostile[lo:hi], canaries2, slots[3:] + slots))
    check_state_matches_decisions(d)
    await d.advance(1860)  # past the idle canary's 30 min
    d.pipe_batch([(t, v, k, None) for t, v, k in hostile[hi:]])
    check_state_matches_decisions(d)
    await d.advance(FAR)
    await d.advance(1.0)

    check_records(d, canary_values)                                                         # (b)
    got = sorted((x["reason"], x["session"], x["at"]) for x in d.decisions() if x.get("user") in CANARY_USERS)
    assert got == EXPECTED, "the canaries are not decided as lapse replay decides them"       # (c)
    check_outputs(d)                                                                         # (d)
    return d


def _run(tmp_path_factory: Any, hostile: list[Item], slots: list[int], split: int) -> FuzzDriver:
    return asyncio.run(scenario(tmp_path_factory.mktemp("fuzz"), hostile, slots, split))


slots_st = st.lists(st.integers(0, 40), min_size=8, max_size=8)


def hostile_lists(strategy: Any, max_size: int = 10) -> Any:
    return st.lists(strategy, min_size=1, max_size=max_size)


# ---------------------------------------------------------------------------------------------- the properties

@FUZZ
@given(hostile=hostile_lists(arbitrary_bytes()), slots=slots_st, split=st.integers(0, 40))
@example(hostile=[(t, v, b"k") for t in INPUT_TOPICS for v in (None, b"", b"\xff\xfe\x00", b"x" * 70_000)],
         slots=[0, 9, 27, 3, 44, 18, 5, 61], split=13)
def test_arbitrary_bytes_on_every_topic(tmp_path_factory, hostile, slots, split):
    _run(tmp_path_factory, hostile, slots, split)


@FUZZ
@given(hostile=hostile_lists(arbitrary_json()), slots=slots_st, split=st.integers(0, 40))
@example(hostile=[(t, v, b"k") for t in INPUT_TOPICS for v in (b"null", b"[]", b"{}", b'"x"', b"NaN", b"1e999")],
         slots=[1, 2, 3, 4, 5, 6, 7, 8], split=20)
def test_arbitrary_json_on_every_topic(tmp_path_factory, hostile, slots, split):
    _run(tmp_path_factory, hostile, slots, split)


@FUZZ
@given(hostile=hostile_lists(near_valid_canonical(), 12), slots=slots_st, split=st.integers(0, 40))
@example(hostile=[("activity", b'{"type":"activity","ts":-1e12,"user":"h-ann","session":"h-s1","action":"GET /"}',
                   b"h-ann")], slots=[0] * 8, split=0)
@example(hostile=[("identity", b'{"type":"login","ts":"0001-01-01T00:00:00+01:00","user":"h-ann","session":"h-s1"}',
                   b"h-ann")], slots=[0] * 8, split=0)
@example(hostile=[("ids-alerts", b'{"type":"alert","ts":%d,"severity":"critical","src_ip":"203.0.113.9","extra":'
                   % int(T0) + _deep(300) + b"}", b"203.0.113.9")], slots=[1] * 8, split=1)
@example(hostile=[("identity", b'{"type":"login","ts":%d,"user":"h-ann","session":"h-s1","ip":"\\ud800"}' % int(T0),
                   b"h-ann"),
                  ("identity", b'{"type":"login","ts":%d,"user":"\\ud800","session":"h-s1"}' % int(T0), b"h-ann"),
                  ("ids-alerts", b'{"type":"alert","ts":%d,"severity":1,"src_ip":"::FFFF:203.0.113.9"}' % int(T0),
                   b"::FFFF:203.0.113.9"),
                  ("ids-alerts", b'{"type":"alert","ts":%d,"severity":1,"src_ip":"2001:DB8::7"}' % int(T0), b"x")],
         slots=[0, 1, 2, 3, 4, 5, 6, 7], split=2)
def test_near_valid_canonical_events(tmp_path_factory, hostile, slots, split):
    _run(tmp_path_factory, hostile, slots, split)


@FUZZ
@given(hostile=hostile_lists(near_valid_vendor()), slots=slots_st, split=st.integers(0, 40))
def test_near_valid_vendor_records(tmp_path_factory, hostile, slots, split):
    _run(tmp_path_factory, hostile, slots, split)


@FUZZ
@given(hostile=hostile_lists(forged_internal()), slots=slots_st, split=st.integers(0, 40))
def test_forged_internal_envelopes(tmp_path_factory, hostile, slots, split):
    _run(tmp_path_factory, hostile, slots, split)


@FUZZ_MIXED
@given(hostile=hostile_lists(any_hostile, 16), slots=slots_st, split=st.integers(0, 40))
def test_every_kind_of_hostile_record_mixed(tmp_path_factory, hostile, slots, split):
    _run(tmp_path_factory, hostile, slots, split)


# ---------------------------------------------------------------------------------------------- forged, well formed

def _target(user: str, session: str, ip: str = CANARY_IP) -> dict:
    return {"kind": "target", "user": user, "session": session, "via": ip,
            "alert": {"type": "alert", "ts": T0 + 1, "severity": "critical", "src_ip": ip, "signature": "forged"}}


def _manual(user: str, session: str | None) -> dict:
    return {"kind": "manual_revoke", "user": user, "session": session, "operator": "mallory", "note": "forged",
            "ts": T0 + 1, "request": "forged-1", "auth": "named token"}


def test_well_formed_forged_envelopes_never_revoke_a_canary(tmp_path):
    """Unsealed envelopes that a worker or the admin API could have written, aimed at the canaries:
    refused (dead-lettered and audited), never applied."""
    async def run() -> FuzzDriver:
        d = FuzzDriver(tmp_path)
        first, _ = canary_events()
        d.pipe_batch([(*_canary_item(e), None) for e in first])
        ids, acct, _ = CANARY_USERS
        d.pipe_batch([("user-requests", orjson.dumps(_target(ids, f"{ids}-s")), ids.encode(), None),
                      ("user-requests", orjson.dumps(_manual(acct, None)), acct.encode(), None),
                      ("user-requests", orjson.dumps({"type": "user_disabled", "ts": T0 + 1, "user": ids}),
                       ids.encode(), None),
                      ("sightings", orjson.dumps({"kind": "sighting", "user": acct, "session": f"{acct}-s",
                                                  "ts": T0}), b"198.51.100.66", None),
                      ("ids-alerts", orjson.dumps({"type": "alert", "ts": T0 + 1, "severity": "critical",
                                                   "src_ip": "198.51.100.66"}), b"198.51.100.66", None)])
        return d

    d = asyncio.run(run())
    assert [x for x in d.decisions() if x["user"] in CANARY_USERS] == []
    forged = {_where(m) for m in d.msgs if m.topic.endswith(("user-requests", "sightings")) and m.value[:3] != MAGIC}
    assert len(forged) == 4
    assert forged <= _refused_index(d) and forged <= set(_dead_letter_index(d))


# ---------------------------------------------------------------------------------------------- the bugs found

async def _alive_after(d: FuzzDriver) -> None:
    """The canaries still decided after whatever the test piped first."""
    first, second = canary_events()
    d.pipe_batch([(*_canary_item(e), None) for e in first])
    d.pipe_batch([(*_canary_item(e), None) for e in second])
    await d.advance(1860)
    got = sorted((x["reason"], x["session"], x["at"]) for x in d.decisions() if x.get("user") in CANARY_USERS)
    assert got == EXPECTED


@pytest.mark.parametrize("session", [5, 5.5, True])
def test_a_target_envelope_with_a_numeric_session_is_dead_lettered(tmp_path, session):
    async def run() -> None:
        d = FuzzDriver(tmp_path)
        d.pipe("sealed:user-requests", {**_target("h-ann", "x", "198.51.100.7"), "session": session}, "h-ann")
        assert [dl["field"] for dl in d.dead_letters()] == ["session"]
        await _alive_after(d)

    asyncio.run(run())


@pytest.mark.parametrize("field, value", [("user", 5), ("user", ["a"]), ("user", {"a": 1}), ("session", ["s1"]),
                                          ("session", {"a": 1})])
def test_a_target_envelope_with_a_wrongly_typed_user_or_session_gets_a_named_rejection(tmp_path, field, value):
    async def run() -> None:
        d = FuzzDriver(tmp_path)
        d.pipe("sealed:user-requests", {**_target("h-ann", "h-s1", "198.51.100.7"), field: value}, "h-ann")
        (dl,) = d.dead_letters()
        assert dl["error"] is None and dl["field"] == field, dl

    asyncio.run(run())


def test_a_manual_revoke_with_an_absurd_ts_never_ends_a_session_without_a_decision(tmp_path):
    async def run() -> None:
        d = FuzzDriver(tmp_path)
        d.pipe("identity", {"type": "login", "ts": T0, "user": "h-ann", "session": "h-s1"}, "h-ann")
        d.pipe("sealed:user-requests", {**_manual("h-ann", "h-s1"), "ts": -1e12}, "h-ann")
        s = d.engine.store["h-ann"].sessions["h-s1"]
        assert s.ended is None or [x["session"] for x in d.decisions()] == ["h-s1"], (
            f"session ended ({s.end_reason}) in state, decisions published: {d.decisions()}")

    asyncio.run(run())


def test_an_alert_naming_a_long_session_revokes_it(tmp_path):
    async def run() -> None:
        d = FuzzDriver(tmp_path)
        sid = "s" * 400
        d.pipe("identity", {"type": "login", "ts": T0, "user": "h-ann", "session": sid, "ip": "198.51.100.7"}, "h-ann")
        assert d.dead_letters() == []
        d.pipe("ids-alerts", {"type": "alert", "ts": T0 + 1, "severity": "critical", "session": sid}, "x")
        assert [(x["reason"], x["session"]) for x in d.decisions()] == [("ids_alert", sid)]

    asyncio.run(run())


def _big_alerts(n: int = 16) -> list[tuple]:
    """``n`` critical alerts of just under 64 KiB each (every one a valid event) on one address."""
    alert = {"type": "alert", "ts": T0, "severity": "critical", "src_ip": "198.51.100.7", "pad": ""}
    pad = 65536 - len(orjson.dumps(alert)) - 16
    return [("ids-alerts", orjson.dumps(dict(alert, ts=T0 + i, pad="x" * pad)), b"198.51.100.7", None)
            for i in range(n)]


def _long_id_logins(n: int = 1024) -> list[tuple]:
    """``n`` logins from one address with user and session ids of the longest accepted length."""
    return [("identity", orjson.dumps({"type": "login", "ts": T0 + i * 0.001, "user": f"{i:05d}" + "u" * 1019,
                                       "session": f"{i:05d}" + "s" * 1019, "ip": "198.51.100.7"}),
             (f"{i:05d}" + "u" * 1019).encode(), None) for i in range(n)]


@pytest.mark.parametrize("make", [_big_alerts, _long_id_logins], ids=["alerts", "logins"])
def test_the_ids_join_never_writes_a_changelog_record_over_the_limit(tmp_path, make):
    async def run() -> None:
        d = FuzzDriver(tmp_path)
        d.pipe_batch(make())
        limit = d.service.settings.max_record_bytes
        sizes = [len(v) for t, _, v, _ in d.changelog() if v is not None]
        assert max(sizes) <= limit, f"a changelog record of {max(sizes)} bytes (limit {limit})"

    asyncio.run(run())
