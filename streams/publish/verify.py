"""Verification of lapse SETs. The implementation lives in :mod:`enforce.verify` so enforcement
points can use it without the engine; this module is the publish layer's name for it."""

from enforce.verify import (  # noqa: F401
    BadEvents,
    ForbiddenClaim,
    ForgedSignature,
    InvalidClaim,
    JwksError,
    MalformedToken,
    SetVerificationError,
    SetVerifier,
    UnknownKey,
    WrongAlgorithm,
    WrongAudience,
    WrongIssuer,
    WrongType,
    load_jwks,
    subject_member,
    the_event,
)

__all__ = [
    "BadEvents", "ForbiddenClaim", "ForgedSignature", "InvalidClaim", "JwksError", "MalformedToken",
    "SetVerificationError", "SetVerifier", "UnknownKey", "WrongAlgorithm", "WrongAudience",
    "WrongIssuer", "WrongType", "load_jwks", "subject_member", "the_event",
]
