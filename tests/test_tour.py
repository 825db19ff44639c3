"""The README's main job: ``symgroups tour`` end to end."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest

from nn_bridge.tour import permute_minilm_feedforward
from symgroups._tour import EMBEDDING_TOLERANCE, run_tour


def test_tour_without_network(tmp_path):
    out = io.StringIO()
    assert run_tour(workdir=str(tmp_path), skip_network=True, out=out) == 0
    text = out.getvalue()
    assert "relu" in text
    assert "verified: proved" in text
    assert "is rejected" in text
    assert (tmp_path / "relu.certificate.json").exists()


def test_minilm_feedforward_permutation_keeps_embeddings():
    report = permute_minilm_feedforward(seed=1)
    assert len(report.sites) == 6
    assert report.units == 6 * 1536
    assert report.moved_units > report.units // 2
    assert report.max_abs_deviation <= EMBEDDING_TOLERANCE


@pytest.mark.skipif(shutil.which("symgroups") is None, reason="console script missing")
def test_tour_console_script(tmp_path):
    completed = subprocess.run(
        ["symgroups", "tour", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    match = re.search(r"max \|delta\| = ([0-9.e+-]+)", completed.stdout)
    assert match, completed.stdout
    assert float(match.group(1)) <= EMBEDDING_TOLERANCE
