"""The installed ``symgroups`` console script and its contract."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess

import pytest

SCRIPT = shutil.which("symgroups")

pytestmark = pytest.mark.skipif(
    SCRIPT is None,
    reason="the symgroups console script is not installed (pip install -e .)",
)


def run(*args, check_code=None):
    completed = subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, timeout=300
    )
    if check_code is not None:
        assert completed.returncode == check_code, completed.stderr
    return completed


def query_json(*args):
    completed = run("query", *args, "--json", check_code=0)
    return json.loads(completed.stdout)


def test_query_relu_json_contract():
    payload = query_json("relu")
    assert payload["status"] == "proved"
    assert payload["expression"] == "Max(0, x)"
    assert payload["group"] == {
        "kind": "monomial",
        "scalars": "positive",
        "generators": [],
        "character": {"sign_exponent": 0, "power": "1"},
    }


@pytest.mark.parametrize(
    ("spec", "kind", "scalars"),
    [
        ("tanh", "monomial", "sign"),
        ("gelu", "monomial", "trivial"),
        ("identity", "general_linear", None),
        ("2*x + 1", "affine_stabilizer", None),
        ("Max(x, 0.2*x)", "monomial", "positive"),
        ("x*tanh(log(1+exp(x)))", "monomial", "trivial"),
        ("exp(-x**2)", "monomial", "sign"),
    ],
)
def test_query_groups(spec, kind, scalars):
    payload = query_json(spec)
    assert payload["group"]["kind"] == kind
    assert payload["group"]["scalars"] == scalars
    assert payload["status"] == "proved"


def test_query_power_character():
    payload = query_json("power", "--param", "d=3")
    assert payload["group"]["character"] == {"sign_exponent": 1, "power": "3"}
    assert payload["params"] == {"d": "3"}


def test_query_constant_is_degenerate():
    payload = query_json("3 + 0*x")
    assert payload["group"]["kind"] == "degenerate"
    assert payload["group"]["scalars"] is None
    assert payload["group"]["character"] is None
    assert "constant" in payload["description"]


def test_query_dim_shows_example():
    payload = query_json("relu", "--dim", "3")
    assert payload["dimension"] == 3
    assert len(payload["example"]["A"]) == 3


def test_query_readable_output():
    completed = run(
        "query", "leaky_relu", "--param", "negative_slope=0.2", check_code=0
    )
    assert "positively scaled permutation matrices" in completed.stdout
    assert "status" in completed.stdout


def test_list_covers_catalogue():
    completed = run("list", "--json", check_code=0)
    rows = json.loads(completed.stdout)
    names = {row["name"] for row in rows}
    assert {
        "relu",
        "gelu",
        "gelu_tanh",
        "logsigmoid",
        "hardswish",
        "threshold",
    } <= names
    assert len(rows) >= 25


BAD_INPUT = [
    (("query", "rellu"), "unknown activation"),
    (("query", "__import__('os').system('true')"), "not allowed|unknown|attribute"),
    (("query", "y + x"), "unknown name 'y'"),
    (("query", "x +"), "invalid syntax|syntax"),
    (("query", "relu", "--param", "alpha=2"), "parameter"),
    (("query", "leaky_relu", "--param", "negative_slope=abc"), "negative_slope"),
    (("query", "leaky_relu", "--param", "oops"), "NAME=VALUE"),
    (("query", "relu", "--dim", "0"), "dimension"),
    (("query", "relu", "--dim", "two"), "dimension"),
    (("query", "log(x)"), "not real|not defined"),
    (("query", "1/x"), "not defined"),
    (("nosuchcommand",), "invalid choice"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_exits_2_with_one_line(args, message):
    completed = run(*args)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert re.search(message, lines[0], re.IGNORECASE), lines[0]
    assert "Traceback" not in completed.stderr


def test_certify_and_verify(tmp_path):
    path = tmp_path / "relu.json"
    run("certify", "relu", "-o", str(path), check_code=0)
    completed = run("verify", str(path), check_code=0)
    assert "verified" in completed.stdout


def test_verify_edited_certificate_exits_1(tmp_path):
    path = tmp_path / "relu.json"
    run("certify", "relu", "-o", str(path), check_code=0)
    cert = json.loads(path.read_text())
    cert["group"]["scalars"] = "nonzero"
    path.write_text(json.dumps(cert))
    completed = run("verify", str(path))
    assert completed.returncode == 1
    assert "steps prove" in completed.stderr


def test_verify_false_step_names_it(tmp_path):
    path = tmp_path / "tanh.json"
    run("certify", "tanh", "-o", str(path), check_code=0)
    cert = json.loads(path.read_text())
    index = next(i for i, s in enumerate(cert["steps"]) if s["claim"] == "reflection")
    cert["steps"][index]["mu"] = "1"
    path.write_text(json.dumps(cert))
    completed = run("verify", str(path))
    assert completed.returncode == 1
    assert f"step {index} (reflection)" in completed.stderr


def test_verify_malformed_exits_2(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[1, 2")
    completed = run("verify", str(path))
    assert completed.returncode == 2
    assert "not valid JSON" in completed.stderr


def test_verify_missing_file_exits_2(tmp_path):
    completed = run("verify", str(tmp_path / "missing.json"))
    assert completed.returncode == 2
    assert "cannot read" in completed.stderr


def test_certify_into_missing_folder_exits_2(tmp_path):
    completed = run("certify", "relu", "-o", str(tmp_path / "missing" / "relu.json"))
    assert completed.returncode == 2
    assert "cannot write certificate" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_certify_keeps_special_files(tmp_path, kind):
    target = tmp_path / "target"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        (tmp_path / "real.json").write_text("{}")
        target.symlink_to(tmp_path / "real.json")
    else:
        target.mkdir()
    completed = run("certify", "relu", "-o", str(target))
    assert completed.returncode == 2
    assert "invalid output path" in completed.stderr
    assert os.path.lexists(target)
    if kind == "fifo":
        assert stat.S_ISFIFO(os.lstat(target).st_mode)
    elif kind == "symlink":
        assert target.is_symlink()
        assert (tmp_path / "real.json").read_text() == "{}"


def test_certificate_is_readable_by_others(tmp_path):
    path = tmp_path / "relu.json"
    run("certify", "relu", "-o", str(path), check_code=0)
    assert path.stat().st_mode & 0o044 == 0o044


def test_catalogue_names_are_normalised():
    payload = query_json("Leaky-ReLU")
    assert payload["name"] == "leaky_relu"


def test_edited_description_fails(tmp_path):
    path = tmp_path / "relu.json"
    run("certify", "relu", "-o", str(path), check_code=0)
    cert = json.loads(path.read_text())
    cert["description"] = "all invertible matrices GL_n, phi(A) = A"
    path.write_text(json.dumps(cert))
    completed = run("verify", str(path))
    assert completed.returncode == 1
    assert "does not match the group" in completed.stderr


def test_list_into_closed_pipe_is_quiet():
    completed = subprocess.run(
        f"{SCRIPT} list | head -n 1", shell=True, capture_output=True, text=True
    )
    assert completed.returncode == 0
    assert "Traceback" not in completed.stderr


def test_expression_with_leading_minus():
    payload = query_json("-tanh(x)")
    assert payload["group"]["scalars"] == "sign"


def test_value_at_zero_settles_positive_scalings():
    # ReLU with sigma(0) = 5: mu must be 1, but the right side has degree 1.
    payload = query_json("Piecewise((x, x > 0), (0, x < 0), (5, True))")
    assert payload["status"] == "proved"
    assert payload["group"]["scalars"] == "trivial"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--seed", "-1", "invalid seed '-1'"),
        ("--timeout", "-1", "invalid number of seconds '-1'"),
    ],
)
def test_negative_option_values_named(option, value, message):
    completed = run("query", "relu", option, value)
    assert completed.returncode == 2
    assert f"argument {option}: {message}" in completed.stderr
