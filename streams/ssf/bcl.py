"""OpenID Connect Back-Channel Logout 1.0 delivery: a revoked session becomes a logout token
POSTed to every registered relying party (RP) that it concerns.

Clients are registered in the TOML file named by ``LAPSE_SSF_BCL_FILE``::

    [[client]]
    client_id = "crm"                                   # the RP's client_id at the OP: the token's aud
    backchannel_logout_uri = "https://crm.example.com/backchannel-logout"
    issuer = "https://idp.example.com/"                 # the OP's issuer: the token's iss (BCL 2.6 step 3)
    key_file = "/run/secrets/op-bcl.pem"                # a key the OP publishes at its jwks_uri
    apps = ["crm"]                                      # only sessions of these apps (default: every one)
    sid = "auto"                                        # auto (sso_session, else session) | sso_session | session
    sub = false                                         # also send sub = the user id (when it is the OP's sub)

``issuer`` and ``key_file`` default to ``LAPSE_SSF_BCL_ISSUER`` and ``LAPSE_SSF_BCL_KEY_FILE``:
the OP's issuer and a signing key of the OP's (where lapse acts for the OP, the OP's own key).
An RP validates a logout token against the OP it trusts (BCL 1.0 section 2.6): iss must be the
OP's issuer and the signature must verify with a key from the OP's JWKS, so lapse never signs
logout tokens as itself.

Each token (section 2.4): header ``typ: logout+jwt``, ``alg`` of the key (RS256 for RSA), ``kid``;
claims ``iss``, ``aud`` = client_id, ``iat``, ``exp`` = iat + ``LAPSE_SSF_BCL_LIFETIME_S`` (120 s),
``jti``, ``events`` = ``{"http://schemas.openid.net/event/backchannel-logout": {}}``, ``sid``
and/or ``sub``; never ``nonce``. It is signed when sent, so a retried logout still has a fresh
``exp``; its ``jti`` stays the same across retries, and is one per (client, sid, sub, txn), so
the sessions one SSO logout ended give each RP one token. POSTed as
``application/x-www-form-urlencoded`` ``logout_token=...``; 200 or 204 is success (section 2.8),
400 means the RP refused the token (kept in ``failed``), anything else is retried.

The ``sid`` is the ended session's SSO session (the OP's session id) from the decision; the
decision copy on the revocations topic is unsigned, so it is used only when its id, session and
user match the verified SET.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enforce import wire
from enforce.verify import subject_member
from streams.config import ConfigError
from streams.publish.keys import KeyConfigError, SigningKey, load_signing_key
from streams.publish.set import SetSigner
from streams.ssf.config import SsfSettings, load_toml
from streams.ssf.delivery import Outcome, read_error
from streams.ssf.model import BadRequest, check_url

SID_MODES = ("auto", "sso_session", "session")


@dataclass(frozen=True)
class BclClient:
    client_id: str
    uri: str
    issuer: str
    key: SigningKey
    apps: tuple[str, ...] | None = None
    sid: str = "auto"
    sub: bool = False

    @property
    def target(self) -> str:
        return "bcl:" + self.client_id

    def item(self, claims: dict[str, Any], decision: dict[str, Any] | None) -> dict[str, Any] | None:
        """What to queue for this client for a verified session-revoked SET, or None when the
        session does not concern it or cannot be named (no sid and no sub)."""
        session = subject_member(claims, "session")
        user = subject_member(claims, "user")
        d = decision if _bound(decision, claims, session, user) else {}
        if self.apps is not None and d.get("app") not in self.apps:
            return None
        sso = d.get("sso_session") if isinstance(d.get("sso_session"), str) and d.get("sso_session") else None
        sid = {"auto": sso or session, "sso_session": sso, "session": session}[self.sid]
        sub = user if self.sub else None
        if not sid and not sub:
            return None
        txn = claims.get("txn") or claims["jti"]
        jti = hashlib.blake2b("\x1f".join([self.client_id, sid or "", sub or "", str(txn)]).encode(),
                              digest_size=16).hexdigest()
        out: dict[str, Any] = {"jti": jti}
        if sid:
            out["sid"] = sid
        if sub:
            out["sub"] = sub
        return out

    def token(self, item: dict[str, Any], now: float, lifetime_s: float) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.client_id, "iat": int(now), "exp": int(now + lifetime_s),
            "jti": item["jti"], "events": {wire.BACKCHANNEL_LOGOUT: {}},
        }
        if "sub" in item:
            claims["sub"] = item["sub"]
        if "sid" in item:
            claims["sid"] = item["sid"]
        signer = SetSigner(self.key, self.issuer, self.client_id)
        return signer.sign_claims(claims, {"typ": wire.LOGOUT_TYP})


def _bound(decision: dict[str, Any] | None, claims: dict[str, Any], session: str | None, user: str | None) -> bool:
    """The unsigned decision copy describes the signed SET (same id, session and user)."""
    return (isinstance(decision, dict) and decision.get("id") == claims.get("jti")
            and decision.get("session") == session and (user is None or decision.get("user") == user))


def load_clients(ssf: SsfSettings) -> list[BclClient]:
    """The clients of ``LAPSE_SSF_BCL_FILE`` (none without it). Raises ConfigError."""
    if not ssf.bcl_file:
        return []
    doc = load_toml(ssf.bcl_file, "LAPSE_SSF_BCL_FILE")
    entries = doc.get("client", [])
    if not isinstance(entries, list):
        raise ConfigError("LAPSE_SSF_BCL_FILE: expected [[client]] tables")
    keys: dict[str, SigningKey] = {}
    out: list[BclClient] = []
    seen: set[str] = set()
    for i, e in enumerate(entries):
        where = f"LAPSE_SSF_BCL_FILE client[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(f"{where}: expected a table")
        cid = e.get("client_id")
        if not isinstance(cid, str) or not cid:
            raise ConfigError(f"{where}.client_id: required")
        if cid in seen:
            raise ConfigError(f"{where}.client_id: {cid!r} appears twice")
        seen.add(cid)
        try:
            uri = check_url(e.get("backchannel_logout_uri"), "backchannel_logout_uri", allow_http=ssf.allow_http_push)
        except BadRequest as exc:
            raise ConfigError(f"{where}: {exc}") from None
        issuer = e.get("issuer") or ssf.bcl_issuer
        if not isinstance(issuer, str) or not issuer:
            raise ConfigError(f"{where}.issuer: required (the OP's issuer), or set LAPSE_SSF_BCL_ISSUER")
        key_file = e.get("key_file") or ssf.bcl_key_file
        if not key_file:
            raise ConfigError(f"{where}.key_file: required (a signing key the OP publishes), or set LAPSE_SSF_BCL_KEY_FILE")
        if key_file not in keys:
            try:
                keys[key_file] = load_signing_key(path=Path(key_file), kid=e.get("kid"), env={})
            except KeyConfigError as exc:
                raise ConfigError(f"{where}.key_file: {exc}") from None
        apps = e.get("apps")
        if apps is not None and (not isinstance(apps, list) or not all(isinstance(a, str) for a in apps)):
            raise ConfigError(f"{where}.apps: expected a list of app names")
        sid = e.get("sid", "auto")
        if sid not in SID_MODES:
            raise ConfigError(f"{where}.sid: expected one of {SID_MODES}")
        sub = e.get("sub", False)
        if not isinstance(sub, bool):
            raise ConfigError(f"{where}.sub: expected true or false")
        if sid == "sso_session" and not sub:
            pass  # a session without an SSO session is then simply not sent to this client
        out.append(BclClient(cid, uri, issuer, keys[key_file], tuple(apps) if apps is not None else None, sid, sub))
    return out


async def send_logout(http: Any, client: BclClient, payload: str, lifetime_s: float, timeout_s: float) -> Outcome:
    import aiohttp

    token = client.token(json.loads(payload), time.time(), lifetime_s)
    async with http.post(client.uri, data={"logout_token": token},
                         headers={"Accept": "application/json", "Cache-Control": "no-store"},
                         timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False) as resp:
        if resp.status in (200, 204):
            return Outcome("ok", resp.status)
        err, desc = await read_error(resp)
        if resp.status == 400:
            return Outcome("reject", 400, err or "invalid_request", desc)
        from streams.ssf.delivery import parse_retry_after

        return Outcome("retry", resp.status, err, desc, parse_retry_after(resp.headers.get("Retry-After")))
