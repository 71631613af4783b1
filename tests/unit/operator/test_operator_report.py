"""``lapse policy report``: effective limits per context and the standards each meets (fast)."""

from __future__ import annotations

from click.testing import CliRunner

from streams.compliance import STANDARDS, build_report, meets, render_html, render_markdown
from streams.engine import default_policy, loads_policy
from streams.cli.policy import policy_cmd

POLICY = """
[defaults]
preset = "nist-800-63b-aal2"

[networks]
corporate = ["10.0.0.0/8"]

[[rules]]
name = "admins"
roles = ["admin"]
idle = "15m"
absolute = "8h"

[[rules]]
name = "payments"
app = "payments"
idle = "5m"

[[rules]]
name = "off-network"
network = "!corporate"
idle = "20m"

[[rules]]
name = "privileged-use"
privileged = true
idle = "10m"
"""


def _std(key):
    return next(s for s in STANDARDS if s.key == key)


def test_standard_figures_and_citations():
    by = {s.key: s for s in STANDARDS}
    assert (by["nist-800-63b-3-aal2"].idle, by["nist-800-63b-3-aal2"].absolute) == (1800.0, 43200.0)
    assert (by["nist-800-63b-3-aal3"].idle, by["nist-800-63b-3-aal3"].absolute) == (900.0, 43200.0)
    assert by["nist-800-63b-3-aal1"].absolute == 30 * 86400.0 and by["nist-800-63b-3-aal1"].idle is None
    assert (by["nist-800-63b-4-aal2"].idle, by["nist-800-63b-4-aal2"].absolute) == (3600.0, 86400.0)
    assert by["pci-dss-4-8.2.8"].idle == 900.0 and "8.2.8" in by["pci-dss-4-8.2.8"].citation
    assert by["psd2-rts-4"].idle == 300.0 and "2018/389" in by["psd2-rts-4"].citation
    assert by["owasp-high-value"].idle == 300.0 and by["owasp-low-risk"].idle == 1800.0
    assert all(s.citation for s in STANDARDS)


def test_meets_needs_every_figure_and_unlimited_never_meets_a_figure():
    assert meets(_std("pci-dss-4-8.2.8"), 900.0, None)
    assert not meets(_std("pci-dss-4-8.2.8"), 901.0, None)
    assert not meets(_std("pci-dss-4-8.2.8"), None, 3600.0)
    assert meets(_std("nist-800-63b-3-aal2"), 1800.0, 43200.0)
    assert not meets(_std("nist-800-63b-3-aal2"), 1800.0, None)


def test_report_rows_are_the_engines_effective_limits_per_context():
    p = loads_policy(POLICY)
    rep = build_report(p, "p.toml")
    rows = {(r["role"], r["network"], r["channel"], r["app"]): r for r in rep["rows"]}
    base = rows[("any", "corporate", "any", "any")]
    assert (base["idle"], base["absolute"], base["idle_by"]) == (1800.0, 43200.0, "defaults")
    assert base["meets"]["nist-800-63b-3-aal2"] and not base["meets"]["pci-dss-4-8.2.8"]
    adm = rows[("admin", "corporate", "any", "any")]
    assert (adm["idle"], adm["absolute"]) == (900.0, 28800.0) and adm["meets"]["pci-dss-4-8.2.8"]
    pay = rows[("any", "outside named networks", "any", "payments")]
    assert pay["idle"] == 300.0 and pay["meets"]["psd2-rts-4"] and pay["meets"]["owasp-high-value"]
    assert rows[("any", "outside named networks", "any", "any")]["idle"] == 1200.0
    # cross-check every row against the policy engine itself
    ip = {"corporate": "10.0.0.1", "outside named networks": "203.0.113.10"}
    for (role, net, ch, app), r in rows.items():
        lim = p.static_limits(None if role == "any" else (role,), ip[net], None if ch == "any" else ch,
                              None if app == "any" else app, None)
        assert (lim.idle, lim.absolute) == (r["idle"], r["absolute"])
    [cond] = rep["conditional"]
    assert cond["rule"] == "privileged-use" and "pci-dss-4-8.2.8" in cond["meets"]
    summary = {s["standard"]: s for s in rep["summary"]}
    assert summary["nist-800-63b-3-aal1"]["all"] and not summary["psd2-rts-4"]["all"]
    assert summary["psd2-rts-4"]["meets"] == 4  # the payments app in each role x network


def test_markdown_and_html_name_the_version_the_limits_and_the_citations():
    p = default_policy()
    rep = build_report(p, "policy.default.toml")
    md = render_markdown(rep)
    assert p.version in md and "| admin | corporate | any | any | any | 15m | 8h | admins |" in md
    assert "PCI DSS v4.0 (March 2022) requirement 8.2.8" in md and "2018/389" in md and "OWASP" in md
    html = render_html(rep)
    assert html.startswith("<!doctype html>") and p.version in html and 'class="miss"' in html
    assert "<script" not in html


def test_cli_writes_markdown_and_html_and_refuses_a_bad_file(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(POLICY)
    out, html = tmp_path / "r.md", tmp_path / "r.html"
    res = CliRunner().invoke(policy_cmd, ["report", str(f), "--out", str(out), "--html", str(html)])
    assert res.exit_code == 0, res.output
    assert "payments" in out.read_text() and "<table>" in html.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\nname = "x"\nidle = "soon"\n')
    res = CliRunner().invoke(policy_cmd, ["report", str(bad)])
    assert res.exit_code != 0 and "rules[0].idle" in res.output
    res = CliRunner().invoke(policy_cmd, ["publish", str(bad)])
    assert res.exit_code != 0 and "rules[0].idle" in res.output
