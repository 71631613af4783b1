"""Feed freshness from signed heartbeats: verified ones refresh their partition, forged or misplaced
ones are counted and change nothing, a heartbeat is never a revocation, and the middleware fails
closed (503) on a stale feed."""

from __future__ import annotations

import math

import httpx
import orjson
import pytest

from enforce import EnforceConfigError, RevocationClient, RevocationMiddleware, session_from, wire
from enforce.state import RevocationState
from enforce.verify import SetVerifier
from streams.publish import SetSigner, build_jwks, encode_message
from streams.publish.heartbeat import heartbeat_claims, heartbeat_message
from streams.publish.keys import SigningKey
from tests.support.clock import Clock

ISS, AUD = "https://lapse.test/", "https://gateway.test/"
T0 = 1_800_000_000.0
BOUND = 15.0
GOOD = {"cookie": "sid=s-good"}


@pytest.fixture(scope="module")
def keys():
    from joserfc.jwk import OKPKey

    good = SigningKey(OKPKey.generate_key("Ed25519"), kid="k1", alg="EdDSA")
    evil = SigningKey(OKPKey.generate_key("Ed25519"), kid="k1", alg="EdDSA")  # claims our kid
    return good, evil


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def state(keys, clock):
    return RevocationState(SetVerifier(build_jwks(keys[0]), ISS, AUD, clock=clock), ttl_s=3600, clock=clock)


def decision(session: str) -> dict:
    return {"id": f"d-{session}", "action": "revoke", "reason": "ids_alert", "session": session,
            "user": "u1", "at": T0}


def test_verified_heartbeat_refreshes_its_partition(state, keys, clock):
    signer = SetSigner(keys[0], ISS, AUD, clock=clock)
    assert state.feed_age([0]) == math.inf          # never heard from: not fresh
    key, value = heartbeat_message(signer, clock(), partition=0)
    assert key == wire.HEARTBEAT_KEY
    assert state.apply_record(key, value, 0) == "heartbeats"
    clock.t += 4
    assert state.feed_age([0]) == pytest.approx(4.0)
    assert state.feed_age([0, 1]) == math.inf       # partition 1 has had no heartbeat
    assert state.feed_age(None) == math.inf and state.feed_age([]) == math.inf
    assert len(state) == 0 and state.counters["heartbeats"] == 1 and state.counters["messages"] == 1


def test_forged_or_misplaced_heartbeats_are_counted_and_ignored(state, keys, clock):
    good, evil = keys
    signer, forger = SetSigner(good, ISS, AUD), SetSigner(evil, ISS, AUD)
    k, genuine = heartbeat_message(signer, T0 - 60, partition=0)
    assert state.apply_record(k, genuine, 0) == "heartbeats"
    before = dict(state.alive_at)

    _, forged = heartbeat_message(forger, clock(), partition=0)
    _, wrong_aud = heartbeat_message(SetSigner(good, ISS, "https://other.test/"), clock(), partition=0)
    _, other_partition = heartbeat_message(signer, clock(), partition=1)
    set_token = signer.sign(decision("s-under-heartbeat-key"))
    bad = [
        forged,                                           # signature of another key
        wrong_aud,                                        # meant for another receiver
        other_partition,                                  # a genuine heartbeat copied elsewhere
        wire.encode_heartbeat(set_token),                 # a SET is not a heartbeat
        encode_message(decision("s-under-heartbeat-key"), signer),  # nor is a SET record
        b"not json", None,
        orjson.dumps({"heartbeat": signer.sign_claims({**heartbeat_claims(signer, clock()),
                                                       "events": {wire.SESSION_REVOKED: {}}},
                                                      {"typ": wire.HEARTBEAT_TYP})}),
    ]
    for value in bad:
        assert state.apply_record(wire.HEARTBEAT_KEY, value, 0) == "bad_heartbeats"
    assert state.alive_at == before                      # nothing refreshed the feed
    assert state.counters["bad_heartbeats"] == len(bad)
    assert not state.is_revoked("s-under-heartbeat-key") and len(state) == 0
    assert state.feed_age([0]) == pytest.approx(60.0)


def test_a_heartbeat_is_never_a_revocation(state, keys, clock):
    signer = SetSigner(keys[0], ISS, AUD)
    _, hb = heartbeat_message(signer, clock(), partition=0)
    token = orjson.loads(hb)["heartbeat"]
    # a heartbeat under a session key, bare or wrapped as a SET record: refused as a SET
    assert state.apply_record(b"s1", hb, 0) == "malformed"
    assert state.apply_record(b"s1", wire.encode({"session": "s1"}, token), 0) == "invalid_claims"
    assert state.last_error.startswith("wrong_typ")
    assert len(state) == 0 and state.alive_at == {}


def test_replayed_and_future_heartbeats_buy_no_freshness(state, keys, clock):
    signer = SetSigner(keys[0], ISS, AUD)
    k, recent = heartbeat_message(signer, T0 - 5, partition=0)
    state.apply_record(k, recent, 0)
    _, old = heartbeat_message(signer, T0 - 500, partition=0)
    assert state.apply_record(k, old, 0) == "heartbeats"  # genuine, but older: age unchanged
    assert state.feed_age([0]) == pytest.approx(5.0)
    _, ahead = heartbeat_message(signer, T0 + 200, partition=0)  # signer clock running ahead
    state.apply_record(k, ahead, 0)
    clock.t += 20
    assert state.feed_age([0]) == pytest.approx(20.0)    # counted from receipt, not from iat
    _, far = heartbeat_message(signer, T0 + 3600, partition=0)
    assert state.apply_record(k, far, 0) == "bad_heartbeats"  # beyond the verifier's max_future_s


def test_feed_is_as_old_as_its_stalest_partition(state, keys, clock):
    signer = SetSigner(keys[0], ISS, AUD)
    for p, at in ((0, T0), (1, T0 - 30), (2, T0 - 2)):
        state.apply_record(*heartbeat_message(signer, at, partition=p), p)
    assert state.feed_age([0, 1, 2]) == pytest.approx(30.0)
    unbound = heartbeat_message(signer, T0)             # no partition claim: good for any partition
    state.apply_record(*unbound, 1)
    assert state.feed_age([0, 1, 2]) == pytest.approx(2.0)


def test_client_freshness_option_is_validated(keys):
    jwks = build_jwks(keys[0])
    for bad in (0, -1, math.inf, math.nan, True, "10"):
        with pytest.raises(EnforceConfigError, match="max_feed_age_s"):
            RevocationClient("127.0.0.1:9", "t", jwks, ISS, AUD, ttl_s=60, max_feed_age_s=bad)
    quiet = RevocationClient("127.0.0.1:9", "t", jwks, ISS, AUD, ttl_s=60)
    assert quiet.fresh and quiet.feed_age() == math.inf   # no bound: never refused for age
    bounded = RevocationClient("127.0.0.1:9", "t", jwks, ISS, AUD, ttl_s=60, max_feed_age_s=BOUND)
    assert not bounded.fresh and bounded.counters["fresh"] == 0  # nothing read yet: not fresh


class StateBackedClient:
    """The middleware's view of a client whose freshness comes from a real RevocationState."""

    def __init__(self, state: RevocationState, partitions: list[int]) -> None:
        self.state, self.partitions, self.caught_up = state, partitions, True

    @property
    def fresh(self) -> bool:
        return self.state.feed_age(self.partitions) <= BOUND

    def is_revoked(self, s):
        return self.state.is_revoked(s)

    def requires_step_up(self, s):
        return self.state.requires_step_up(s)


async def ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_stale_feed_is_503_and_a_fresh_heartbeat_lets_requests_through(state, keys, clock):
    signer = SetSigner(keys[0], ISS, AUD)
    client = StateBackedClient(state, [0, 1])
    mw = RevocationMiddleware(ok, client, session_from(cookie="sid", header=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://gw") as c:
        r = await c.get("/", headers=GOOD)
        assert r.status_code == 503 and r.json() == {"error": "revocations_stale"}
        assert r.headers["retry-after"] == "1"
        assert (await c.get("/")).status_code == 200      # no session: the app decides, as before

        for p in (0, 1):
            state.apply_record(*heartbeat_message(signer, clock(), partition=p), p)
        assert (await c.get("/", headers=GOOD)).status_code == 200

        # forged heartbeats while the worker is gone do not keep the feed alive
        clock.t += BOUND + 1
        forger = SetSigner(keys[1], ISS, AUD)
        for p in (0, 1):
            state.apply_record(*heartbeat_message(forger, clock(), partition=p), p)
        r = await c.get("/", headers=GOOD)
        assert r.status_code == 503 and r.json() == {"error": "revocations_stale"}

        state.apply_record(*heartbeat_message(signer, clock(), partition=0), 0)
        assert (await c.get("/", headers=GOOD)).status_code == 503  # partition 1 still stale
        state.apply_record(*heartbeat_message(signer, clock(), partition=1), 1)
        assert (await c.get("/", headers=GOOD)).status_code == 200


async def test_stale_feed_closes_websockets_with_try_again_later(state):
    sent = []

    async def send(msg):
        sent.append(msg)

    async def receive():
        return {"type": "websocket.connect"}

    mw = RevocationMiddleware(ok, StateBackedClient(state, [0]), session_from(cookie="sid", header=None))
    await mw({"type": "websocket", "path": "/ws", "headers": [(b"cookie", b"sid=s1")]}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1013}]
