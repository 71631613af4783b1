"""Feed heartbeats: signed "the worker was alive at ``iat``" records for the revocations topic.

An enforcement point with ``max_feed_age_s`` refuses requests once its view of the topic is
older than that bound. Without heartbeats a quiet topic (nobody revoked) would look exactly like
a dead one, so the worker puts one heartbeat on **every partition** every few seconds: the client
reads every partition and is as fresh as its stalest one.

Record::

    key     wire.HEARTBEAT_KEY (b"\\xfflapse-heartbeat": not UTF-8, so never a session key, and
            compaction keeps just the newest heartbeat per partition)
    value   {"heartbeat": "<compact JWS>"}
    header  {"alg": <the SET key's>, "typ": "lapse-heartbeat+jwt", "kid": <the SET key's kid>}
    claims  iss, aud  as in the SETs
            iat       the signing time (epoch seconds, millisecond precision)
            partition the partition the record is produced to (when given; recommended)

Signed with the same key as the SETs, so enforcement points verify it with the JWKS they already
have. Its ``typ`` differs from a SET's, it has no ``events`` and no ``sub_id``: no SET verifier
accepts it, and the SDK reads heartbeat-keyed records only as heartbeats.

>>> from joserfc.jwk import OKPKey
>>> from enforce import SetVerifier
>>> from enforce.wire import decode_heartbeat
>>> from streams.publish.keys import SigningKey, build_jwks
>>> key = SigningKey(OKPKey.generate_key("Ed25519"), kid="k1", alg="EdDSA")
>>> signer = SetSigner(key, "https://lapse.example.com/", "https://gw.example.com/")
>>> k, v = heartbeat_message(signer, 1_800_000_000.25, partition=2)
>>> k
b'\\xfflapse-heartbeat'
>>> verifier = SetVerifier(build_jwks(key), "https://lapse.example.com/", "https://gw.example.com/",
...                        clock=lambda: 1_800_000_001.0)
>>> claims = verifier.verify_heartbeat(decode_heartbeat(v))
>>> claims["iat"], claims["partition"]
(1800000000.25, 2)
"""

from __future__ import annotations

import math
from typing import Any

from enforce import wire
from streams.publish.set import SetSigner

__all__ = ["heartbeat_claims", "heartbeat_message"]


def heartbeat_claims(signer: SetSigner, now: float, *, partition: int | None = None) -> dict[str, Any]:
    """The claims of one heartbeat (``iss`` and ``aud`` are the signer's, as in its SETs)."""
    if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now) or now <= 0:
        raise ValueError(f"heartbeat time must be epoch seconds, not {now!r}")
    claims: dict[str, Any] = {"iss": signer.issuer, "aud": signer.audience, "iat": round(float(now), 3)}
    if partition is not None:
        if isinstance(partition, bool) or not isinstance(partition, int) or partition < 0:
            raise ValueError(f"heartbeat partition must be a non-negative integer, not {partition!r}")
        claims["partition"] = partition
    return claims


def heartbeat_message(signer: SetSigner, now: float, *, partition: int | None = None) -> tuple[bytes, bytes]:
    """The (key, value) of one heartbeat record signed at ``now`` (epoch seconds).

    Produce it with an explicit partition, once per partition of the revocations topic every
    few seconds (well under the enforcement points' ``max_feed_age_s``). Pass that ``partition``
    so the heartbeat is bound to it: the client then refuses a copy found on another partition,
    which could otherwise make a partition the worker no longer reaches look alive.
    """
    token = signer.sign_claims(heartbeat_claims(signer, now, partition=partition), {"typ": wire.HEARTBEAT_TYP})
    return wire.HEARTBEAT_KEY, wire.encode_heartbeat(token)
