"""Packaging contracts: light import, the shipped cache, the docs build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import symgroups
from symgroups._cache import _load, prove_catalogue

ROOT = Path(__file__).resolve().parents[1]


def test_import_does_not_load_torch():
    code = "import sys, symgroups; print('torch' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "False"


def test_public_api_is_listed():
    for name in symgroups.__all__:
        assert hasattr(symgroups, name), name


def test_cache_matches_a_fresh_proof():
    cached = _load()
    assert cached, (
        "symgroups/data/catalogue.json is missing or stale: run tools/build_cache.py"
    )
    results, _ = prove_catalogue()
    for result in results:
        entry = cached[result.activation.cache_key()]
        assert result.status == "proved", result.notes
        assert entry["status"] == result.status, result.activation.name
        assert entry["group"] == result.group.to_json(), result.activation.name
        assert entry["steps"] == result.steps, result.activation.name


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs is not installed")
def test_docs_build_strictly(tmp_path):
    completed = subprocess.run(
        ["mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
