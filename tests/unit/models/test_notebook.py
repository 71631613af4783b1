"""The tuning notebooks execute end to end on a small stream (so they cannot rot)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "tune_adaptive.ipynb"


@pytest.mark.slow
def test_tuning_notebook_runs_and_writes_a_valid_policy(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from models.evaluate import adaptive_policy

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    policy = adaptive_policy(str(tmp_path / "tuned_policy.toml"))
    assert 0 < policy.adaptive.step_up_at <= policy.adaptive.revoke_at <= 1


@pytest.mark.slow
def test_activity_tuning_notebook_runs_and_writes_rules_that_catch_exfiltration(tmp_path):
    """Its last cell asserts that bytes_over tightens most exfiltration sessions and few benign ones."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from streams.engine import load_policy

    nb = nbformat.read(NOTEBOOK.with_name("tune_activity.ipynb"), as_version=4)
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    policy = load_policy(str(tmp_path / "tuned_activity_policy.toml"))
    rules = {r.name: r for r in policy.rules}
    assert rules["bulk"].bytes_over > 0 and rules["chatty"].rate_over > 0
    assert rules["privileged-use"].privileged is True
