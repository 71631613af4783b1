"""Simulator determinism and labels; evaluation end to end through the engine."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from models.evaluate import adaptive_policy, replay_engine, report
from streams.cli.evaluate import evaluate_cmd
from models.scorer import AdaptiveScorer
from models.simulate import ATTACK_KINDS, iter_events, simulate
from streams.cli.simulate import simulate_cmd
from streams.engine import parse_event


def test_simulator_is_deterministic_per_seed_and_differs_across_seeds():
    a = simulate(users=30, hours=30, seed=5, attack_rate=0.3)
    b = simulate(users=30, hours=30, seed=5, attack_rate=0.3)
    c = simulate(users=30, hours=30, seed=6, attack_rate=0.3)
    assert a == b
    assert a[0] != c[0]
    assert list(iter_events(users=30, hours=30, seed=5, attack_rate=0.3)) == a[0]


def test_simulated_events_are_canonical_ordered_and_labels_match_them():
    events, labels = simulate(users=80, hours=40, seed=9, attack_rate=0.5)
    parsed = [parse_event(e) for e in events]  # every event is valid canonical input
    assert all(x.ts <= y.ts for x, y in zip(parsed, parsed[1:]))
    assert {lab["kind"] for lab in labels} == set(ATTACK_KINDS)
    by_session: dict = {}
    for e in parsed:
        by_session.setdefault(e.session, []).append(e)
    alerts = [e for e in parsed if e.type == "alert"]
    for lab in labels:
        evs = by_session[lab["session"]]
        assert all(e.user == lab["user"] for e in evs)
        assert any(abs(e.ts - lab["start_ts"]) < 1e-3 or e.ts >= lab["start_ts"] for e in evs)
        if lab["kind"] == "hijack":
            after = [e for e in evs if e.ts >= lab["start_ts"] and e.ip == lab["detail"]["ip"]]
            assert after and all(e.device == lab["detail"]["device"] for e in after)
            assert all(e.geo["country"] == lab["detail"]["country"] for e in after)
        if lab["kind"] == "ids_flagged":
            assert any(a.src_ip == lab["detail"]["ip"] and abs(a.ts - lab["start_ts"]) < 1e-3 for a in alerts)


def test_evaluate_through_the_engine_detects_a_hijack():
    events, labels = simulate(users=150, hours=40, seed=21, attack_rate=0.3)
    run = replay_engine(events, adaptive_policy(None, step_up_at=0.8, revoke_at=0.99), AdaptiveScorer(warmup=500))
    rep = report(run, labels)
    hij = rep["kinds"]["hijack"]
    assert hij["sessions"] >= 2
    assert hij["detected"] >= 0.9 and hij["auc"] > 0.95
    assert rep["benign_revoked_pct"] < 1.0


def test_cli_simulate_then_evaluate_json(tmp_path):
    ev, lab = tmp_path / "e.jsonl", tmp_path / "l.jsonl"
    r = CliRunner().invoke(simulate_cmd, ["--users", "60", "--hours", "30", "--seed", "4", "--attack-rate", "0.4",
                                          "--out", str(ev), "--labels", str(lab)])
    assert r.exit_code == 0, r.output
    assert ev.read_bytes().count(b"\n") > 1000 and lab.read_bytes().count(b"\n") >= 5
    r = CliRunner().invoke(evaluate_cmd, [str(ev), "--labels", str(lab), "--warmup", "300", "--json"])
    assert r.exit_code == 0, r.output
    rep = orjson.loads(r.output)
    assert rep["mode"] == "engine" and set(rep["kinds"]) <= set(ATTACK_KINDS)
    assert rep["benign_sessions"] > 50


@pytest.fixture(scope="module")
def small_stream(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    ev, lab = d / "e.jsonl", d / "l.jsonl"
    r = CliRunner().invoke(simulate_cmd, ["--users", "30", "--hours", "26", "--seed", "4", "--attack-rate", "0.4",
                                          "--out", str(ev), "--labels", str(lab)])
    assert r.exit_code == 0, r.output
    return ev, lab


@pytest.mark.parametrize("what, content, message", [
    ("policy", b"\xff\xfe[adaptive]", "not UTF-8 text"),
    ("policy", b"[adaptive]\nstep_up_at = 'x'\n", "adaptive.step_up_at: expected a number"),
    ("labels", b'{"kind": "hijack"}\n', "label 1 has no session"),
    ("labels", b'{"kind": "hijack", "session": "s", "start": "yesterday"}\n', "label 1 has no readable start_ts or start"),
    ("labels", b"[1, 2]", "labels must be JSON objects, got int"),
    ("events", b'{"type": "login"}\n{not json\n', "line 2: not JSON"),
    ("decisions", b'{"session": "s", "action": "revoke", "reason": "anomaly"}\n', "decision 1 has no readable at"),
])
def test_evaluate_refuses_a_file_it_cannot_read_by_name(tmp_path, small_stream, what, content, message):
    ev, lab = small_stream
    bad = tmp_path / f"bad-{what}"
    bad.write_bytes(content)
    args = {"policy": [str(ev), "--labels", str(lab), "--policy", str(bad)],
            "labels": [str(ev), "--labels", str(bad)],
            "events": [str(bad), "--labels", str(lab)],
            "decisions": [str(ev), "--labels", str(lab), "--decisions", str(bad)]}[what]
    r = CliRunner().invoke(evaluate_cmd, args)
    assert r.exit_code == 1 and message in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)  # a named error, not a traceback


def test_evaluate_skips_an_invalid_event_as_lapse_replay_does(tmp_path, small_stream):
    ev, lab = small_stream
    with_bad = tmp_path / "e.jsonl"
    lines = ev.read_bytes().splitlines()
    with_bad.write_bytes(b"\n".join([lines[0], b'{"type": "activity", "ts": "never"}', *lines[1:]]) + b"\n")
    clean = CliRunner().invoke(evaluate_cmd, [str(ev), "--labels", str(lab), "--json"])
    dirty = CliRunner().invoke(evaluate_cmd, [str(with_bad), "--labels", str(lab), "--json"])
    assert clean.exit_code == 0 and dirty.exit_code == 0, dirty.output
    assert "1 invalid events skipped" in dirty.stderr
    a, b = orjson.loads(clean.stdout), orjson.loads(dirty.stdout)
    assert a["kinds"] == b["kinds"] and a["by_tenure"] == b["by_tenure"]
