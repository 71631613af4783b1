"""Signing keys: sources, refusals, kid, JWKS for rotation, the `lapse keys` commands."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from enforce.verify import JwksError, load_jwks
from streams.publish.keys import (
    KeyConfigError, build_jwks, generate_key, load_signing_key, previous_public_keys,
)
from streams.cli.keys import keys_cmd


def _pem(private) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def test_generate_ed25519_file_mode_and_kid(tmp_path):
    out = tmp_path / "s" / "signing.pem"
    key = generate_key(out)
    assert key.alg == "EdDSA" and key.kty == "OKP"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    loaded = load_signing_key(out, env={})
    assert loaded.kid == key.kid == key.key.thumbprint()  # RFC 7638 thumbprint
    assert "d" not in loaded.public_jwk() and loaded.public_jwk()["use"] == "sig"
    assert "PRIVATE" not in repr(loaded)
    with pytest.raises(KeyConfigError, match="already exists"):
        generate_key(out)


def test_generate_refuses_unignored_repo_path():
    repo_file = os.path.join(os.path.dirname(__file__), "never-a-key.pem")
    with pytest.raises(KeyConfigError, match="git"):
        generate_key(repo_file)
    assert not os.path.exists(repo_file)
    new_dir = os.path.join(os.path.dirname(__file__), "not-a-dir-yet", "k.pem")
    with pytest.raises(KeyConfigError, match="git"):
        generate_key(new_dir)
    assert not os.path.exists(os.path.dirname(new_dir))


def test_env_sources(tmp_path):
    path = tmp_path / "k.pem"
    key = generate_key(path)
    pem = path.read_text()
    assert load_signing_key(env={"LAPSE_SIGNING_KEY_FILE": str(path)}).kid == key.kid
    assert load_signing_key(env={"LAPSE_SIGNING_KEY": pem}).kid == key.kid
    assert load_signing_key(env={"LAPSE_SIGNING_KEY": pem.replace("\n", "\\n")}).kid == key.kid
    assert load_signing_key(env={"LAPSE_SIGNING_KEY": pem, "LAPSE_SIGNING_KEY_ID": "k-2026"}).kid == "k-2026"
    assert load_signing_key(env={"LAPSE_SIGNING_KEY": pem, "LAPSE_SIGNING_ALG": "Ed25519"}).alg == "Ed25519"
    with pytest.raises(KeyConfigError, match="LAPSE_SIGNING_KEY_FILE"):
        load_signing_key(env={})
    with pytest.raises(KeyConfigError, match="only one"):
        load_signing_key(env={"LAPSE_SIGNING_KEY_FILE": str(path), "LAPSE_SIGNING_KEY": pem})
    with pytest.raises(KeyConfigError, match="does not exist"):
        load_signing_key(env={"LAPSE_SIGNING_KEY_FILE": str(tmp_path / "nope.pem")})


def test_refusals(tmp_path):
    with pytest.raises(KeyConfigError, match="too short"):
        load_signing_key(pem=_pem(rsa.generate_private_key(65537, 1024)), env={})
    with pytest.raises(KeyConfigError, match="not supported"):
        load_signing_key(pem=_pem(ec.generate_private_key(ec.SECP256R1())), env={})
    pub = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(KeyConfigError, match="public key"):
        load_signing_key(pem=pub, env={})
    with pytest.raises(KeyConfigError, match="not a PEM"):
        load_signing_key(pem="hello", env={})
    with pytest.raises(KeyConfigError, match="at least 2048"):
        generate_key(tmp_path / "r.pem", kty="rsa", bits=1024)
    with pytest.raises(KeyConfigError, match="RS256"):
        load_signing_key(pem=_pem(rsa.generate_private_key(65537, 2048)), alg="EdDSA", env={})
    enc = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(KeyConfigError, match="LAPSE_SIGNING_KEY_PASSWORD"):
        load_signing_key(pem=enc, env={})
    assert load_signing_key(pem=enc, env={"LAPSE_SIGNING_KEY_PASSWORD": "pw"}).alg == "EdDSA"


def test_rsa_key(tmp_path):
    key = generate_key(tmp_path / "r.pem", kty="rsa", bits=2048)
    assert key.alg == "RS256" and key.public_jwk()["kty"] == "RSA"


def test_jwks_with_previous_keys(tmp_path):
    old = generate_key(tmp_path / "old.pem")
    new = generate_key(tmp_path / "new.pem")
    vdir = tmp_path / "verify"
    vdir.mkdir()
    # previous key kept as a public JWK (keeps a custom kid) and as a public PEM (kid = thumbprint)
    (vdir / "old.json").write_text(json.dumps({**old.public_jwk(), "kid": "old-2025"}))
    older = ed25519.Ed25519PrivateKey.generate().public_key()
    (vdir / "older.pem").write_bytes(older.public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    prev = previous_public_keys(env={"LAPSE_VERIFY_KEYS_DIR": str(vdir)})
    doc = build_jwks(new, prev + [new.public_jwk()])  # duplicate of the current key collapses
    kids = [k["kid"] for k in doc["keys"]]
    assert kids[0] == new.kid and "old-2025" in kids and len(kids) == 3
    assert all("d" not in k for k in doc["keys"])
    assert set(load_jwks(doc)) == set(kids)  # the verifier accepts what we export
    with pytest.raises(KeyConfigError, match="share kid"):
        build_jwks(new, [{**old.public_jwk(), "kid": new.kid}])
    with pytest.raises(KeyConfigError, match="not a directory"):
        previous_public_keys(env={"LAPSE_VERIFY_KEYS_DIR": str(tmp_path / "missing")})
    (vdir / "leak.json").write_text(json.dumps(old.key.as_dict(private=True) | {"kid": "x"}))
    with pytest.raises(KeyConfigError, match="private"):
        previous_public_keys(env={"LAPSE_VERIFY_KEYS_DIR": str(vdir)})


def test_verifier_refuses_bad_jwks():
    with pytest.raises(JwksError, match="kty|key type"):
        load_jwks({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})
    with pytest.raises(JwksError, match="no kid"):
        load_jwks({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})
    with pytest.raises(JwksError, match="no keys"):
        load_jwks({"keys": []})
    with pytest.raises(JwksError, match="not JSON"):
        load_jwks("{nope")


def test_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "secrets" / "signing.pem"
    res = runner.invoke(keys_cmd, ["generate", "--out", str(out)])
    assert res.exit_code == 0, res.output
    kid = json.loads(res.stdout.splitlines()[0])["kid"]
    res = runner.invoke(keys_cmd, ["jwks"], env={"LAPSE_SIGNING_KEY_FILE": str(out)})
    assert res.exit_code == 0, res.output
    assert [k["kid"] for k in json.loads(res.stdout)["keys"]] == [kid]
    res = runner.invoke(keys_cmd, ["jwks"], env={"LAPSE_SIGNING_KEY_FILE": "", "LAPSE_SIGNING_KEY": ""})
    assert res.exit_code != 0 and "no signing key" in res.output
    res = runner.invoke(keys_cmd, ["generate", "--out", str(out)])
    assert res.exit_code != 0 and "already exists" in res.output
