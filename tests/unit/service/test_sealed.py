"""Sealed internal records (streams/service/pipeline/sealed.py) and where they are opened: the policy
follower, manual-revoke envelopes from the admin API, model snapshots. Fast, no broker."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import pickle
import struct
from dataclasses import dataclass

import orjson
import pytest

from streams.config import ConfigError, Settings
from streams.engine import Engine, loads_policy, parse_event
from streams.service.pipeline import sealed
from streams.service.web.admin import AdminRequest, parse_request, produce_request, revoke_envelope
from streams.service.web.metrics import Metrics
from streams.service.web.policy_publish import POLICY_KEY, PolicyFollower, PolicyState, publish_record, seal_record
from streams.service.pipeline.sealed import ForgedRecord, Sealer, open_request, seal_request

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
KEY = b"k" * 32
REQUESTS = "lapse.user-requests"
POLICY_TOPIC = "lapse.policy"


def _clock(t: float):
    return lambda: t


# ---------------------------------------------------------------------------------------------- the format

def test_a_sealed_record_opens_on_its_topic_and_key_only():
    s = Sealer(KEY)
    v = s.seal(REQUESTS, b"u1", b'{"kind":"manual_revoke"}')
    assert s.open(REQUESTS, b"u1", v) == b'{"kind":"manual_revoke"}'
    for topic, key in [("lapse.policy", b"u1"),            # replayed onto another topic
                       ("staging.user-requests", b"u1"),   # another deployment's prefix
                       (REQUESTS, b"u2"),                  # another user's key
                       (REQUESTS, b"u"), (REQUESTS, None)]:
        with pytest.raises(ForgedRecord) as err:
            s.open(topic, key, v)
        assert err.value.reason == "bad_tag", (topic, key)


def test_a_record_sealed_with_another_key_is_refused_and_a_rotation_keeps_opening_the_old_one():
    old, new = Sealer(b"o" * 32), Sealer(b"n" * 32)
    v = old.seal(REQUESTS, b"u1", b"payload")
    with pytest.raises(ForgedRecord) as err:
        new.open(REQUESTS, b"u1", v)
    assert err.value.reason == "unknown_key" and old.key_id in str(err.value)
    rotated = Sealer(b"n" * 32, (b"o" * 32,))
    assert rotated.open(REQUESTS, b"u1", v) == b"payload"  # the old key still opens
    assert rotated.key_id == new.key_id  # the new one seals
    assert new.open(REQUESTS, b"u1", rotated.seal(REQUESTS, b"u1", b"x")) == b"x"


def test_unsealed_truncated_altered_and_unknown_version_records_are_refused_with_their_reason():
    s = Sealer(KEY)
    v = s.seal(REQUESTS, b"u1", b'{"kind":"target"}')

    def reason(value):
        with pytest.raises(ForgedRecord) as err:
            s.open(REQUESTS, b"u1", value)
        return err.value.reason

    assert reason(b'{"kind":"manual_revoke","user":"u1","operator":"alice"}') == "unsealed"
    assert reason(None) == "unsealed" and reason(b"") == "unsealed"  # a tombstone carries no seal
    assert reason(v[:47]) == "malformed"
    assert reason(v[:3] + b"\x02" + v[4:]) == "malformed"  # a format this process does not know
    assert reason(v[:-1] + b"X") == "bad_tag"  # payload altered
    assert reason(v[:8] + struct.pack(">Q", 1) + v[16:]) == "bad_tag"  # the seal time is inside the tag
    assert reason(v[:20] + bytes([v[20] ^ 1]) + v[21:]) == "bad_tag"


def test_the_tag_is_hmac_sha256_over_the_documented_layout():
    s = Sealer(KEY, clock=_clock(T0))
    v = s.seal(REQUESTS, b"u1", b"payload")
    assert v[:3] == b"\xffLS" and v[3] == 1 and len(v) == 48 + len(b"payload")
    kid = hmac.digest(KEY, b"lapse/internal-record/kid", "sha256")[:4]
    assert v[4:8] == kid and struct.unpack(">Q", v[8:16])[0] == int(T0 * 1000)
    topic = REQUESTS.encode()
    msg = v[:16] + struct.pack(">HI", len(topic), 2) + topic + b"u1" + b"payload"
    assert v[16:48] == hmac.new(KEY, msg, hashlib.sha256).digest()
    assert s.open_stamped(REQUESTS, b"u1", v) == (b"payload", T0)


def test_stale_records_are_refused_only_where_an_age_is_asked_for():
    v = Sealer(KEY, clock=_clock(T0)).seal(REQUESTS, b"u1", b"x")
    s = Sealer(KEY)
    assert s.open(REQUESTS, b"u1", v) == b"x"  # no bound: compacted topics keep old records
    got = open_request(s, REQUESTS, b"u1", v, now=T0 + sealed.REQUEST_MAX_AGE_S + 1)
    assert isinstance(got, ForgedRecord) and got.reason == "stale"
    assert open_request(s, REQUESTS, b"u1", v, now=T0 + 3600) == b"x"


def test_seal_request_and_open_request_round_trip_and_open_request_returns_the_refusal():
    s = Sealer(KEY)
    v = seal_request(s, REQUESTS, b"u1", b'{"ts":1}')
    assert open_request(s, REQUESTS, b"u1", v) == b'{"ts":1}'
    for got in (open_request(s, REQUESTS, b"u2", v), open_request(s, REQUESTS, b"u1", b'{"ts":1}')):
        assert isinstance(got, ForgedRecord)


# ---------------------------------------------------------------------------------------------- keys

def test_the_internal_key_comes_from_the_environment_or_a_file_never_a_toml_literal(tmp_path):
    secret = "s" * 40
    s = Settings.load({"LAPSE_INTERNAL_KEY": secret})
    assert s.internal_key == secret and secret not in repr(s)
    f = tmp_path / "internal.key"
    f.write_text(f"{'n' * 40}\n{secret}\n")
    assert Settings.load({"LAPSE_INTERNAL_KEY_FILE": str(f)}).internal_key.splitlines()[1] == secret
    conf = tmp_path / "lapse.toml"
    conf.write_text(f'[lapse]\ninternal_key = "{secret}"\n')
    assert Settings.load({"LAPSE_CONFIG": str(conf)}).internal_key is None
    conf.write_text(f'[lapse]\ninternal_key_file = "{f}"\n')
    assert Settings.load({"LAPSE_CONFIG": str(conf)}).internal_key is not None
    with pytest.raises(ConfigError, match="LAPSE_INTERNAL_KEY_FILE"):
        Settings.load({"LAPSE_INTERNAL_KEY_FILE": str(tmp_path / "missing")})
    # every line opens, the first seals
    two = Sealer.from_settings(Settings.load({"LAPSE_INTERNAL_KEY_FILE": str(f)}), env={})
    one = Sealer.from_settings(Settings.load({"LAPSE_INTERNAL_KEY": secret}), env={})
    assert two.open(REQUESTS, b"u", one.seal(REQUESTS, b"u", b"x")) == b"x"
    assert two.key_id != one.key_id
    with pytest.raises(ConfigError, match="shorter than 32"):
        Sealer.from_settings(Settings.load({"LAPSE_INTERNAL_KEY": "short"}), env={})


def test_without_an_internal_key_every_process_with_the_signing_key_derives_the_same_one(tmp_path):
    from streams.publish.keys import generate_key

    path = tmp_path / "signing.pem"
    generate_key(path)
    pem = path.read_text()
    settings = Settings.load({})
    by_file = Sealer.from_settings(settings, env={"LAPSE_SIGNING_KEY_FILE": str(path)})
    by_var = Sealer.from_settings(settings, env={"LAPSE_SIGNING_KEY": pem})
    squeezed = Sealer.from_settings(settings, env={"LAPSE_SIGNING_KEY": pem.replace("\n", "\\n")})
    assert by_file.key_id == by_var.key_id == squeezed.key_id
    assert by_var.open(POLICY_TOPIC, POLICY_KEY, by_file.seal(POLICY_TOPIC, POLICY_KEY, b"p")) == b"p"
    other = tmp_path / "other.pem"
    generate_key(other)
    assert Sealer.from_settings(settings, env={"LAPSE_SIGNING_KEY_FILE": str(other)}).key_id != by_file.key_id
    # an explicit internal key wins over the derived one
    explicit = Settings.load({"LAPSE_INTERNAL_KEY": "e" * 40})
    assert Sealer.from_settings(explicit, env={"LAPSE_SIGNING_KEY_FILE": str(path)}).key_id != by_file.key_id
    # the derived key is not the signing key's bytes, nor a plain hash of them
    assert hashlib.sha256(pem.encode()).digest()[:4].hex() != by_file.key_id
    with pytest.raises(ConfigError, match="LAPSE_INTERNAL_KEY.*LAPSE_SIGNING_KEY"):
        Sealer.from_settings(settings, env={})
    assert Sealer.from_env({"LAPSE_SIGNING_KEY_FILE": str(path)}).key_id == by_file.key_id
    assert Sealer.from_env({"LAPSE_INTERNAL_KEY": "e" * 40}).key_id == Sealer.from_settings(explicit, env={}).key_id


# ---------------------------------------------------------------------------------------------- metrics, audit

def test_refusals_are_counted_under_a_fixed_label_set_and_audited_with_topic_partition_offset():
    m = Metrics()
    text = m.exposition().decode()
    for topic in sealed.SEALED_TOPICS:
        for reason in sealed.REASONS:
            assert f'lapse_forged_records_total{{reason="{reason}",topic="{topic}"}} 0.0' in text
    out = sealed.refuse(m, "lapse.policy", 0, 17, b"current", ForgedRecord("unsealed", "no seal"), T0)
    sealed.refuse(m, "anything", 3, 1, None, ForgedRecord("bad_tag"), T0)
    assert m.registry.get_sample_value("lapse_forged_records_total", {"topic": "policy", "reason": "unsealed"}) == 1
    assert m.registry.get_sample_value("lapse_forged_records_total", {"topic": "other", "reason": "bad_tag"}) == 1
    assert out.kind == "audit" and out.key == "internal:policy"
    assert out.value["kind"] == "forged_record"
    assert {k: out.value["detail"][k] for k in ("topic", "partition", "offset", "reason", "key")} == {
        "topic": "lapse.policy", "partition": 0, "offset": 17, "reason": "unsealed", "key": "current"}
    again = sealed.refuse(None, "lapse.policy", 0, 17, b"current", ForgedRecord("unsealed"), T0 + 5)
    assert again.value["id"] == out.value["id"]  # every worker refusing it writes the same id


# ---------------------------------------------------------------------------------------------- policy follower

POLICY = """
[defaults]
idle = "{idle}"
absolute = "12h"
"""


@dataclass
class Rec:
    """What the follower reads from aiokafka (a ConsumerRecord's fields it uses)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class FollowedService:
    """The parts of a Service the policy follower touches; publish keeps what a step publishes."""

    def __init__(self, sealer: Sealer) -> None:
        self.settings = Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:1"})
        self.engine = Engine(loads_policy(POLICY.format(idle="1h")))
        self.metrics = Metrics()
        self.ready = True
        self.deciding = asyncio.Lock()
        self.sealer = sealer
        self.now = T0 + 60
        self.published: list = []

    def clock(self) -> float:
        return self.now

    async def publish(self, outputs, now) -> None:
        self.published.extend(outputs)


def _followed(sealer: Sealer | None = None) -> tuple[FollowedService, PolicyFollower]:
    svc = FollowedService(sealer or Sealer(KEY))
    svc.engine.handle(parse_event({"type": "login", "ts": T0, "user": "u1", "session": "s1"}), T0)
    state = PolicyState(version=svc.engine.policy.version, text=None, source="file:test", applied_at=T0)
    follower = PolicyFollower(svc, state, sealer=svc.sealer)
    follower.caught_up = True
    return svc, follower


def _policy_value(sealer: Sealer, idle: str, topic: str = POLICY_TOPIC, operator: str = "ann") -> bytes:
    text = POLICY.format(idle=idle)
    return seal_record(sealer, topic, publish_record(loads_policy(text), text, "p.toml", operator, T0))


def _forged(svc: FollowedService, reason: str) -> float | None:
    return svc.metrics.registry.get_sample_value("lapse_forged_records_total", {"topic": "policy", "reason": reason})


async def test_a_forged_policy_record_is_refused_counted_and_audited_and_the_old_policy_stays():
    svc, follower = _followed()
    before = svc.engine.policy.version
    text = POLICY.format(idle="0.001s")  # would end every session at once
    forged = orjson.dumps({"version": loads_policy(text).version, "text": text, "source": "x", "operator": "mallory"})
    follower._take(Rec(POLICY_TOPIC, 0, 7, POLICY_KEY, forged))
    await follower.maybe_apply()
    assert svc.engine.policy.version == before and follower.state.version == before
    assert _forged(svc, "unsealed") == 1
    assert svc.metrics.registry.get_sample_value("lapse_policy_reloads_total", {"result": "applied"}) is None
    [audit] = svc.published
    assert audit.value["kind"] == "forged_record"
    assert {k: audit.value["detail"][k] for k in ("topic", "partition", "offset", "reason")} == {
        "topic": POLICY_TOPIC, "partition": 0, "offset": 7, "reason": "unsealed"}
    assert follower.state.rejected[-1]["offset"] == 7 and follower.state.rejected[-1]["reason"] == "unsealed"
    # enforcement goes on under the old policy: the session, idle for a minute, is still live
    assert [o for o in svc.engine.expire(T0 + 120) if o.kind == "decision"] == []
    assert svc.engine.store.get("u1").sessions["s1"].ended is None


async def test_policy_records_sealed_with_another_key_or_moved_from_another_topic_or_key_are_refused():
    svc, follower = _followed()
    before = svc.engine.policy.version
    follower._take(Rec(POLICY_TOPIC, 0, 1, POLICY_KEY, _policy_value(Sealer(b"x" * 32), "1s")))
    follower._take(Rec(POLICY_TOPIC, 0, 2, POLICY_KEY, _policy_value(svc.sealer, "1s", topic=REQUESTS)))
    follower._take(Rec(POLICY_TOPIC, 0, 3, b"other", _policy_value(svc.sealer, "1s")))
    await follower.maybe_apply()
    assert svc.engine.policy.version == before
    assert (_forged(svc, "unknown_key"), _forged(svc, "bad_tag")) == (1, 2)
    assert [o.value["detail"]["offset"] for o in svc.published] == [1, 2, 3]


async def test_a_good_sealed_policy_is_applied_and_a_replay_of_an_older_one_is_refused():
    sealer_then = Sealer(KEY, clock=_clock(T0))
    lax = _policy_value(sealer_then, "2h")  # sealed first
    svc, follower = _followed(Sealer(KEY, clock=_clock(T0 + 30)))
    tight = _policy_value(svc.sealer, "30s", operator="ann")
    follower._take(Rec(POLICY_TOPIC, 0, 4, POLICY_KEY, tight))
    await follower.maybe_apply()
    assert svc.engine.policy.version == loads_policy(POLICY.format(idle="30s")).version
    assert follower.state.operator == "ann" and follower.state.source == "topic"
    decisions = [o.value for o in svc.published if o.kind == "decision"]
    assert [(d["session"], d["reason"]) for d in decisions] == [("s1", "idle_timeout")]  # idle 60 s > 30 s
    assert svc.metrics.registry.get_sample_value("lapse_policy_reloads_total", {"result": "applied"}) == 1
    # the older, laxer record re-produced onto the topic: genuine seal, but older than the one taken
    follower._take(Rec(POLICY_TOPIC, 0, 5, POLICY_KEY, lax))
    await follower.maybe_apply()
    assert svc.engine.policy.version == loads_policy(POLICY.format(idle="30s")).version
    assert _forged(svc, "stale") == 1


# ---------------------------------------------------------------------------------------------- manual revoke

class Sending:
    """The Service's raw producer path, recorded (what produce_request hands to Kafka)."""

    def __init__(self, sealer: Sealer) -> None:
        self.settings = Settings.load({"LAPSE_BOOTSTRAP": "127.0.0.1:1"})
        self.sealer = sealer
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def _send(self, topic, key, value, partition=None):
        self.sent.append((topic, key.encode() if isinstance(key, str) else key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def test_the_admin_api_seals_manual_revokes_and_the_operator_comes_from_the_opened_payload():
    svc = Sending(Sealer(KEY))
    await produce_request(svc, "u1", revoke_envelope("u1", "s1", "ann", "stolen", T0, "r1", "named token"))
    [(topic, key, value)] = svc.sent
    assert (topic, key) == (REQUESTS, b"u1")
    payload = open_request(svc.sealer, topic, key, value)
    assert parse_request(orjson.loads(payload)) == AdminRequest("manual_revoke", "u1", "s1", "ann", "stolen", T0,
                                                                "r1", "named token")
    # the same sealed revoke copied under another user's key does not open
    assert isinstance(open_request(svc.sealer, topic, b"victim", value), ForgedRecord)


def test_a_forged_manual_revoke_naming_an_operator_is_refused():
    forged = orjson.dumps({"kind": "manual_revoke", "user": "victim", "session": None, "operator": "alice",
                           "note": "", "ts": T0, "request": "r", "auth": "named token"})
    got = open_request(Sealer(KEY), REQUESTS, b"victim", forged)
    assert isinstance(got, ForgedRecord) and got.reason == "unsealed"
    # sealed by someone holding another key: refused too
    other = seal_request(Sealer(b"m" * 32), REQUESTS, b"victim", forged)
    assert open_request(Sealer(KEY), REQUESTS, b"victim", other).reason == "unknown_key"


def test_parse_request_takes_only_what_the_admin_api_writes():
    env = orjson.loads(revoke_envelope("u1", None, "ann", "", T0, "r1", "shared token"))
    assert parse_request(env).auth == "shared token"
    assert parse_request({**env, "auth": "root"}).field == "auth"
    assert parse_request({k: v for k, v in env.items() if k != "auth"}).field == "auth"
    assert parse_request({**env, "operator": "alice; admin"}).field == "operator"


# ---------------------------------------------------------------------------------------------- snapshots

def test_snapshots_are_sealed_to_their_topic_and_app_and_a_forged_pickle_is_never_returned():
    from streams.service.state import snapshots

    s = Sealer(KEY)
    topic = "lapse.model-snapshots"
    v = snapshots.seal_snapshot(s, topic, "lapse", pickle.dumps({"w": 1}))
    assert pickle.loads(snapshots.open_snapshot(s, topic, "lapse", v).payload) == {"w": 1}
    for value in (pickle.dumps({"evil": 1}), Sealer(b"x" * 32).seal(topic, b"lapse", b"p"),
                  s.seal(REQUESTS, b"lapse", b"p")):
        assert isinstance(snapshots._open_any(s, topic, "lapse", value), ForgedRecord)
    assert isinstance(snapshots._open_any(s, topic, "another-app", v), ForgedRecord)
    # the calls the worker makes today go through the same Sealer
    legacy = snapshots.snapshot_key(snapshots.key_material_from_env({"LAPSE_INTERNAL_KEY": "k" * 40}))
    blob = snapshots._open_any(legacy, topic, "lapse", snapshots.seal(b"model", legacy))
    assert blob.payload == b"model"
