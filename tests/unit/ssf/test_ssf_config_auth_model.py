"""Settings (loopback / TLS rule), receiver tokens and scopes, stream configuration checks and
subject matching: pure, no broker."""

from __future__ import annotations

import pytest

from enforce import wire
from streams.config import ConfigError
from streams.ssf.auth import Tokens
from streams.ssf.config import SsfSettings
from streams.ssf.model import (
    POLL, PUSH, BadRequest, Stream, event_keys, matches, receiver_config, subject_id,
)

TOK = "t" * 40


def test_listens_on_loopback_by_default_and_refuses_plain_http_beyond_it(tmp_path):
    s = SsfSettings.load({})
    assert s.host == "127.0.0.1" and s.public_url == "http://127.0.0.1:6070" and s.issuer == s.public_url
    with pytest.raises(ConfigError, match="beyond loopback without TLS"):
        SsfSettings.load({"LAPSE_SSF_HOST": "0.0.0.0"})
    assert SsfSettings.load({"LAPSE_SSF_HOST": "0.0.0.0", "LAPSE_SSF_ALLOW_INSECURE": "1"}).host == "0.0.0.0"
    with pytest.raises(ConfigError, match="go together"):
        SsfSettings.load({"LAPSE_SSF_TLS_CERT": "c.pem"})
    tls = SsfSettings.load({"LAPSE_SSF_HOST": "0.0.0.0", "LAPSE_SSF_TLS_CERT": "c", "LAPSE_SSF_TLS_KEY": "k",
                            "LAPSE_SSF_PUBLIC_URL": "https://ssf.example.com/tenant/"})
    assert tls.public_url == "https://ssf.example.com/tenant" and tls.path_prefix() == "/tenant"
    with pytest.raises(ConfigError, match="cannot load"):
        tls.ssl_context()
    with pytest.raises(ConfigError, match="LAPSE_SSF_DEFAULT_SUBJECTS"):
        SsfSettings.load({"LAPSE_SSF_DEFAULT_SUBJECTS": "SOME"})
    (tmp_path / "tokens").write_text(f"rx {TOK} ssf.read\n")
    assert "rx" in SsfSettings.load({"LAPSE_SSF_TOKENS_FILE": str(tmp_path / "tokens")}).tokens_text


def test_tokens_and_scopes():
    t = Tokens.parse(f"# receivers\nrx {TOK} ssf.manage https://a/,https://b/\nro {'r' * 40} ssf.read\n"
                     f"ops {'o' * 40} ssf.admin  # operators\n")
    rx, ro, ops = (t.check(f"Bearer {x}") for x in (TOK, "r" * 40, "o" * 40))
    assert rx.can("ssf.read") and rx.can("ssf.manage") and not rx.admin and rx.default_aud == "https://a/"
    assert ro.can("ssf.read") and not ro.can("ssf.manage") and ro.default_aud == "ro"
    assert ops.admin and ops.can("ssf.manage")
    assert t.check(f"Basic {TOK}") is None and t.check("Bearer") is None
    for bad, msg in [(f"rx short ssf.read", "shorter"), (f"rx {TOK} ssf.write", "unknown scopes"),
                     (f"rx {TOK} ssf.read\nrx {'x' * 40} ssf.read", "twice"),
                     (f"a {TOK} ssf.read\nb {TOK} ssf.read", "share one token"), ("rx", "expected")]:
        with pytest.raises(ConfigError, match=msg):
            Tokens.parse(bad)


def cfg(body, **kw):
    return receiver_config(body, allowed_aud=kw.pop("allowed", ()), default_aud="rx", allow_http=kw.pop("http", False), **kw)


def test_stream_configuration_is_checked():
    c = cfg({"delivery": {"method": PUSH, "endpoint_url": "https://rx.example.com/ssf",
                          "authorization_header": "Bearer x"}, "events_requested": [wire.SESSION_REVOKED, "urn:x"]})
    assert c["aud"] == "rx" and c["delivery"]["authorization_header"] == "Bearer x"
    assert cfg({})["delivery"] == {"method": POLL} and cfg({})["events_requested"] == []
    for body, msg in [
        ({"delivery": {"method": PUSH, "endpoint_url": "http://rx.example.com/"}}, "https"),
        ({"delivery": {"method": PUSH, "endpoint_url": "https://u:p@rx.example.com/"}}, "credentials"),
        ({"delivery": {"method": PUSH}}, "absolute URL"),
        ({"delivery": {"method": "urn:other"}}, "method"),
        ({"delivery": {"method": PUSH, "endpoint_url": "https://x/", "authorization_header": "a\r\nb"}}, "printable"),
        ({"events_requested": "all"}, "events_requested"),
        ({"aud": "https://someone-else/"}, "may use"),
        ({"description": 5}, "description"),
        ([], "JSON object"),
    ]:
        with pytest.raises(BadRequest, match=msg):
            cfg(body)
    # http only to loopback, and only when allowed
    assert cfg({"delivery": {"method": PUSH, "endpoint_url": "http://127.0.0.1:9/x"}}, http=True)
    with pytest.raises(BadRequest):
        cfg({"delivery": {"method": PUSH, "endpoint_url": "http://10.0.0.1/x"}}, http=True)
    assert cfg({"aud": ["https://a/", "https://b/"]}, allowed=("https://a/", "https://b/"))["aud"] == ["https://a/", "https://b/"]


def test_update_keeps_what_is_not_given_and_replace_resets_it():
    s = Stream("s1", "rx", "rx", [wire.SESSION_REVOKED], {"method": POLL}, "first")
    upd = cfg({"description": "second"}, base=s, partial=True)
    assert upd["events_requested"] == [wire.SESSION_REVOKED] and upd["description"] == "second"
    rep = cfg({"description": "third"}, base=s, partial=False)
    assert rep["events_requested"] == [] and rep["delivery"] == {"method": POLL}


SUB = {"format": "complex", "user": {"format": "iss_sub", "iss": "https://idp/", "sub": "ann"},
       "session": {"format": "opaque", "id": "ann-1"}}


def test_subjects_match_members_of_the_sets_subject():
    keys = event_keys(SUB)
    assert matches({"format": "iss_sub", "iss": "https://idp/", "sub": "ann"}, keys)
    assert matches({"format": "opaque", "id": "ann-1"}, keys)
    assert matches({"format": "complex", "session": {"format": "opaque", "id": "ann-1"}}, keys)
    assert not matches({"format": "complex", "user": {"format": "opaque", "id": "ann-1"}}, keys)
    assert not matches({"format": "email", "email": "ann@example.com"}, keys)
    with pytest.raises(BadRequest):
        subject_id({"format": "did", "url": "did:x"})
    s = Stream("s1", "rx", "rx", [wire.SESSION_REVOKED], {"method": POLL})
    assert s.wants(wire.SESSION_REVOKED, keys, "ALL") and not s.wants(wire.SESSION_REVOKED, keys, "NONE")
    assert not s.wants(wire.RISK_LEVEL_CHANGE, keys, "ALL")  # not requested
    s.subjects["in:" + subject_id({"format": "opaque", "id": "ann-1"})] = {"format": "opaque", "id": "ann-1"}
    assert s.wants(wire.SESSION_REVOKED, keys, "NONE")
    s.subjects["ex:" + subject_id({"format": "opaque", "id": "ann-1"})] = {"format": "opaque", "id": "ann-1"}
    assert not s.wants(wire.SESSION_REVOKED, keys, "ALL")
    s.status = "disabled"
    assert not s.wants(wire.SESSION_REVOKED, keys, "NONE")
