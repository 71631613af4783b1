"""Admin token parsing and checking (fast, no broker)."""

from __future__ import annotations

import pytest

from streams.config import ConfigError
from streams.service.web.admin import AdminRequest, Tokens, parse_request, revoke_envelope

import orjson


def test_no_token_configured_disables_the_api():
    t = Tokens.from_env({})
    assert not t.enabled
    assert t.check("Bearer anything-at-all-here") == (503, None)


def test_missing_malformed_and_wrong_tokens_are_401():
    t = Tokens.from_env({"LAPSE_ADMIN_TOKEN": "s3cret-token-0123456789"})
    assert t.check(None) == (401, None)
    assert t.check("") == (401, None)
    assert t.check("s3cret-token-0123456789") == (401, None)  # no "Bearer " scheme
    assert t.check("Basic s3cret-token-0123456789") == (401, None)
    assert t.check("Bearer s3cret-token-012345678") == (401, None)  # a prefix is not the token
    assert t.check("Bearer s3cret-token-01234567890") == (401, None)
    assert t.check("Bearer s3cret-token-0123456789") == (200, None)  # shared: no identity


def test_named_tokens_from_a_file_carry_the_operator_identity(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("# operators\nann:ann-token-0123456789abc\nbob@corp:bob-token-0123456789abc\n\n")
    t = Tokens.from_env({"LAPSE_ADMIN_TOKEN_FILE": str(f)})
    assert t.check("Bearer ann-token-0123456789abc") == (200, "ann")
    assert t.check("Bearer bob-token-0123456789abc") == (200, "bob@corp")
    assert t.check("Bearer ann-token-0123456789ab") == (401, None)
    # the environment wins over the file
    t2 = Tokens.from_env({"LAPSE_ADMIN_TOKEN": "env-token-0123456789abc", "LAPSE_ADMIN_TOKEN_FILE": str(f)})
    assert t2.check("Bearer ann-token-0123456789abc") == (401, None)


def test_short_tokens_and_unreadable_files_are_configuration_errors(tmp_path):
    with pytest.raises(ConfigError, match="shorter than 16"):
        Tokens.from_env({"LAPSE_ADMIN_TOKEN": "short"})
    with pytest.raises(ConfigError, match="LAPSE_ADMIN_TOKEN_FILE"):
        Tokens.from_env({"LAPSE_ADMIN_TOKEN_FILE": str(tmp_path / "missing")})


def test_the_check_compares_in_constant_time():
    import inspect

    from streams.service.web import admin

    src = inspect.getsource(admin.Tokens.check)
    assert "hmac.compare_digest" in src and "break" not in src  # every token compared, no early exit


def test_revoke_envelope_round_trips_and_bad_envelopes_are_rejected():
    env = orjson.loads(revoke_envelope("u1", "s1", "ann", "why", 12.5, "r1", "named token"))
    assert env["kind"] == "manual_revoke"
    req = parse_request(env)
    assert req == AdminRequest("manual_revoke", "u1", "s1", "ann", "why", 12.5, "r1", "named token")
    assert parse_request({**env, "operator": ""}).field == "operator"
    assert parse_request({**env, "session": 3}).field == "session"
    assert parse_request({**env, "ts": "soon"}).field == "ts"
