"""The publish layer: sign decisions as CAEP Security Event Tokens and export the JWKS.

Pure: no Kafka. ``streams.service`` puts :func:`encode_message` output on the revocations topic.
"""

from streams.publish.keys import (
    KeyConfigError,
    SigningKey,
    build_jwks,
    generate_key,
    load_signing_key,
    previous_public_keys,
)
from streams.publish.set import InvalidDecision, SetSigner, encode_message
from streams.publish.verify import SetVerificationError, SetVerifier

__all__ = [
    "InvalidDecision", "KeyConfigError", "SetSigner", "SetVerificationError", "SetVerifier",
    "SigningKey", "build_jwks", "encode_message", "generate_key", "load_signing_key",
    "previous_public_keys",
]
