"""lapse enforcement SDK: verify lapse's revocation SETs and enforce them at a gateway or app.

Depends only on the wire format (``enforce.wire``), joserfc, orjson and aiokafka; never on the
engine. ``pip install 'lapse[enforce]'`` adds Starlette for the example app.
"""

from enforce.client import NotCaughtUp, RevocationClient
from enforce.middleware import RevocationMiddleware, StepUp
from enforce.sessions import (
    CookieHeaderTooLarge,
    SessionCandidatesError,
    TooManySessionCandidates,
    session_from,
)
from enforce.state import EnforceConfigError, Revocation, RevocationState
from enforce.verify import JwksError, SetVerificationError, SetVerifier

__all__ = [
    "CookieHeaderTooLarge", "EnforceConfigError", "JwksError", "NotCaughtUp", "Revocation",
    "RevocationClient", "RevocationMiddleware", "RevocationState", "SessionCandidatesError",
    "SetVerificationError", "SetVerifier", "StepUp", "TooManySessionCandidates", "session_from",
]
