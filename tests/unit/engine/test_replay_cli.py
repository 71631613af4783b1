from __future__ import annotations

import orjson
from click.testing import CliRunner

from streams.cli.policy import policy_cmd
from streams.cli.replay import replay_cmd

LINES = [
    {"type": "login", "ts": "2026-01-01T00:00:00Z", "user": "u1", "session": "s1", "ip": "10.0.0.5"},
    {"type": "login", "ts": "2026-01-01T00:00:05Z", "user": "u2", "session": "s2", "ip": "10.0.0.6"},
    "this is not json",
    {"type": "activity", "ts": "2026-01-01T00:10:00Z", "user": "u2"},
    {"type": "alert", "ts": "2026-01-01T00:20:00Z", "severity": 1, "src_ip": "10.0.0.6", "signature": "x"},
]
POLICY = '[defaults]\nidle = "15m"\nabsolute = "12h"\n'


def _jsonl():
    return "\n".join(x if isinstance(x, str) else orjson.dumps(x).decode() for x in LINES) + "\n"


def test_replay_writes_decisions_in_order_of_at_and_reports_invalid_lines(tmp_path):
    (tmp_path / "p.toml").write_text(POLICY)
    (tmp_path / "e.jsonl").write_text(_jsonl())
    r = CliRunner().invoke(replay_cmd, [str(tmp_path / "e.jsonl"), "--policy", str(tmp_path / "p.toml")])
    assert r.exit_code == 0, r.output
    out = [orjson.loads(x) for x in r.stdout.splitlines()]
    assert [(d["reason"], d["session"], d["at"]) for d in out] == [
        ("idle_timeout", "s1", "2026-01-01T00:15:00Z"), ("idle_timeout", "s2", "2026-01-01T00:15:05Z")]
    assert "line 3: invalid event: not valid JSON" in r.stderr
    assert "line 4: invalid event (session): missing (required for activity)" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("replay: 5 lines, 3 events, 2 invalid, 2 decisions")


def test_replay_reads_stdin_and_drains(tmp_path):
    (tmp_path / "p.toml").write_text(POLICY)
    data = orjson.dumps(LINES[0]) + b"\n"
    r = CliRunner().invoke(replay_cmd, ["-", "--policy", str(tmp_path / "p.toml")], input=data)
    assert r.exit_code == 0 and r.stdout == ""
    r = CliRunner().invoke(replay_cmd, ["-", "--policy", str(tmp_path / "p.toml"), "--drain"], input=data)
    assert [orjson.loads(x)["at"] for x in r.stdout.splitlines()] == ["2026-01-01T00:15:00Z"]


def test_replay_with_a_broken_policy_names_the_key(tmp_path):
    (tmp_path / "p.toml").write_text('[defaults]\nidle = 5\n')
    r = CliRunner().invoke(replay_cmd, ["-", "--policy", str(tmp_path / "p.toml")], input=b"")
    assert r.exit_code != 0 and 'defaults.idle: expected a duration like "15m", got 5' in r.output


def test_replay_with_a_policy_that_is_not_text_names_the_file(tmp_path):
    (tmp_path / "p.toml").write_bytes(b"[defaults]\nidle = \"\xd0\x15m\"\n\x00\xff")
    r = CliRunner().invoke(replay_cmd, ["-", "--policy", str(tmp_path / "p.toml")], input=b"")
    assert r.exit_code == 1 and "p.toml: not UTF-8 text (byte 19)" in r.output, r.output


def test_policy_check_and_explain_with_activity_conditions():
    r = CliRunner().invoke(policy_cmd, ["check", "streams/policy.default.toml"])
    assert r.exit_code == 0 and "admins: when roles=['admin'] -> idle 15m, absolute 8h" in r.output
    ev = '{"type":"activity","ts":0,"user":"u","session":"s","ip":"10.0.0.1","action":"admin.users.delete"}'
    r = CliRunner().invoke(policy_cmd, ["explain", "streams/policy.default.toml", "--event", ev])
    assert r.exit_code == 0, r.output
    assert "limits: idle 15m (by privileged-use)" in r.output
    assert "activity condition privileged of rule privileged-use holds (from this activity event)" in r.output
    assert "[no   ] admins" in r.output
