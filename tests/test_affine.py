"""Affine scalar groups: sigma(lam t + a) = mu sigma(t) + b, proved and certified."""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgroups import (
    AFFINE_SCHEMA,
    CATALOGUE,
    AffineGroupDescription,
    CertificateError,
    VerificationError,
    query_affine,
    verify_certificate,
    write_affine_certificate,
)
from symgroups._affine_certificate import affine_certificate_of
from symgroups._numeric import compile_numpy

SCRIPT = shutil.which("symgroups")
SCHEMA_PATH = (
    Path(__file__).resolve().parents[1] / "docs" / "affine-certificate.schema.json"
)

#: Activations whose affine groups the tests below inspect.
SPECS = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "exp": "exp",
    "identity": "identity",
    "relu": "relu",
    "relu6": "relu6",
    "softplus": "softplus",
    "gelu": "gelu",
    "power": "power",
    "softsign": "softsign",
    "steep_sigmoid": "1/(1+exp(-2*x))",
    "shifted_sigmoid": "1/(1+exp(1-x))",
    "shifted_relu": "Max(0, x - 1)",
    "shifted_square": "(x + 1)**2",
    "sine": "sin",
}

# A cache instead of a fixture keeps hypothesis reports short.
_RESULTS: dict[str, object] = {}


def result(name):
    if name not in _RESULTS:
        _RESULTS[name] = query_affine(SPECS[name])
    return _RESULTS[name]


def elements(name):
    return [tuple(str(v) for v in e) for e in result(name).group.finite_elements()]


def test_sigmoid_sign_flip_and_nothing_else():
    r = result("sigmoid")
    assert r.status == "proved"
    assert elements("sigmoid") == [("1", "0", "1", "0"), ("-1", "0", "-1", "1")]
    assert r.linear.group.scalars == "trivial"
    assert "b != 0" in r.extension


def test_tanh_flip_has_no_constant():
    r = result("tanh")
    assert r.status == "proved"
    assert elements("tanh") == [("1", "0", "1", "0"), ("-1", "0", "-1", "0")]
    assert r.extension.startswith("nothing")


def test_exp_translations():
    group = result("exp").group
    assert result("exp").status == "proved"
    assert group.kind == "translations"
    assert (group.rate, group.scale, group.offset) == (1, 1, 0)
    assert group.contains(1.0, 0.7)
    assert not group.contains(-1.0, 0.0)
    assert not group.contains(2.0, 0.0)
    mu, b = group.mu_b(1.0, 2.0)
    assert mu == pytest.approx(math.exp(2.0))
    assert b == 0.0


def test_identity_is_full():
    group = result("identity").group
    assert result("identity").status == "proved"
    assert group.kind == "full"
    assert group.contains(-3.0, 5.0)
    mu, b = group.mu_b(-3.0, 5.0)
    assert (float(mu), float(b)) == (-3.0, 5.0)


def test_relu_adds_nothing():
    r = result("relu")
    assert r.status == "proved"
    assert r.group.kind == "centered"
    assert r.group.center == 0
    assert r.group.stabilizer.scalars == "positive"
    assert r.extension.startswith("nothing")
    assert not r.group.contains(1.0, 0.5)


@pytest.mark.parametrize("name", ["softplus", "gelu"])
def test_trivial_affine_group(name):
    r = result(name)
    assert r.status == "proved"
    assert r.group.is_trivial
    assert elements(name) == [("1", "0", "1", "0")]


def test_steep_sigmoid_flip():
    assert result("steep_sigmoid").status == "proved"
    assert elements("steep_sigmoid")[1] == ("-1", "0", "-1", "1")


def test_shifted_sigmoid_point_symmetry_about_one():
    r = result("shifted_sigmoid")
    assert r.status == "proved"
    assert elements("shifted_sigmoid")[1] == ("-1", "2", "-1", "1")
    assert "t = 1" in r.extension


def test_relu6_point_symmetry_about_three():
    r = result("relu6")
    assert r.status == "proved"
    assert any(s["claim"] == "breakpoints" for s in r.steps)
    assert elements("relu6")[1] == ("-1", "6", "-1", "6")


def test_square_scalings_about_centre():
    square = result("power").group
    assert square.stabilizer.scalars == "nonzero"
    assert square.center == 0
    shifted = result("shifted_square")
    assert shifted.status == "proved"
    assert shifted.group.center == -1
    assert shifted.group.contains(3.0, -1.0 * (1 - 3.0))
    assert not shifted.group.contains(3.0, 0.0)


def test_shifted_relu_scalings_about_one():
    group = result("shifted_relu").group
    assert result("shifted_relu").status == "proved"
    assert group.stabilizer.scalars == "positive"
    assert group.contains(2.0, -1.0)
    assert not group.contains(2.0, 0.0)


def test_softsign_numeric_only():
    r = result("softsign")
    assert r.status == "numerically_verified"
    assert elements("softsign")[1] == ("-1", "0", "-1", "0")


def test_sine_periodic_group():
    r = result("sine")
    assert r.status == "numerically_verified"
    group = r.group
    assert group.kind == "periodic"
    assert group.period == sympy.pi
    assert (group.period_mu, group.period_b) == (-1, 0)
    assert group.center == 0
    assert group.contains(1.0, 2 * math.pi)
    assert group.contains(-1.0, 3 * math.pi)
    assert not group.contains(1.0, 1.0)
    mu, b = group.mu_b(1.0, 3 * math.pi)
    assert (float(mu), float(b)) == (-1.0, 0.0)
    elements = [s for s in r.steps if s["claim"] == "element"]
    assert [(s["lam"], s["a"]) for s in elements] == [("1", "pi"), ("-1", "0")]


def test_shifted_sine_constants():
    group = query_affine("sin(x) + 1").group
    assert group.kind == "periodic"
    # sin(t + pi) + 1 = -(sin(t) + 1) + 2.
    assert (group.period_mu, group.period_b) == (-1, 2)
    mu, b = group.mu_b_exact(sympy.Integer(1), 2 * sympy.pi)
    assert (mu, b) == (1, 0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(SPECS)),
    seed=st.integers(0, 2**31 - 1),
)
def test_sampled_elements_satisfy_law(name, seed):
    r = result(name)
    rng = np.random.default_rng(seed)
    lam, a = r.group.sample(rng, 4)
    mu, b = r.group.mu_b(lam, a)
    f = compile_numpy(r.activation.expr)
    t = rng.uniform(-4.0, 4.0, 50)
    for i in range(4):
        assert r.group.contains(lam[i], a[i])
        left = f(lam[i] * t + a[i])
        right = mu[i] * f(t) + b[i]
        assert np.allclose(left, right, rtol=1e-9, atol=1e-9), (name, lam[i], a[i])


def test_group_json_round_trip():
    for name in ("sigmoid", "exp", "identity", "shifted_relu", "sine"):
        group = result(name).group
        assert AffineGroupDescription.from_json(group.to_json()) == group


def test_group_json_rejects_code():
    obj = result("sigmoid").group.to_json()
    obj["center"] = "__import__('os')"
    with pytest.raises(ValueError):
        AffineGroupDescription.from_json(obj)


# ----------------------------------------------------------------------
# Certificates


@pytest.mark.parametrize(
    "name", ["sigmoid", "exp", "identity", "relu6", "gelu", "softsign", "sine"]
)
def test_certificate_round_trip(name):
    cert = affine_certificate_of(result(name))
    assert cert["schema"] == AFFINE_SCHEMA
    report = verify_certificate(cert)
    assert report.status == result(name).status
    assert report.group == result(name).group


def test_certificates_match_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for name in ("sigmoid", "exp", "identity", "relu6", "gelu", "softsign", "sine"):
        cert = affine_certificate_of(result(name))
        errors = sorted(validator.iter_errors(cert), key=str)
        assert not errors, (name, [e.message for e in errors[:3]])


def _tampered_sigmoid(edit):
    cert = copy.deepcopy(affine_certificate_of(result("sigmoid")))
    edit(cert)
    return cert


def test_wrong_b_fails():
    def edit(cert):
        cert["group"]["center_value"] = "1"
        cert.pop("description")

    with pytest.raises(VerificationError, match="steps prove"):
        verify_certificate(_tampered_sigmoid(edit))


def test_wrong_stabilizer_value_fails():
    def edit(cert):
        for step in cert["steps"]:
            if step["claim"] == "stabilizer":
                step["value"] = "1"
        cert["group"]["center_value"] = "1"
        cert.pop("description")

    with pytest.raises(VerificationError, match="sigma"):
        verify_certificate(_tampered_sigmoid(edit))


def test_wrong_lam_fails():
    def edit(cert):
        cert["group"]["stabilizer"]["scalars"] = "positive"
        cert["group"]["stabilizer"]["character"] = {
            "sign_exponent": 0,
            "power": "1",
        }
        cert.pop("description")

    with pytest.raises(VerificationError):
        verify_certificate(_tampered_sigmoid(edit))


def test_wrong_centre_fails():
    def edit(cert):
        cert["group"]["center"] = "1"
        for step in cert["steps"]:
            if step["claim"] == "stabilizer":
                step["center"] = "1"
        cert.pop("description")

    with pytest.raises(VerificationError):
        verify_certificate(_tampered_sigmoid(edit))


def test_unknown_affine_claim_rejected():
    def edit(cert):
        cert["steps"].append({"claim": "magic"})

    with pytest.raises(CertificateError, match="claim must be one of"):
        verify_certificate(_tampered_sigmoid(edit))


def test_stale_description_fails():
    def edit(cert):
        cert["description"] = "only the identity (lam, a) = (1, 0)"

    with pytest.raises(VerificationError, match="description"):
        verify_certificate(_tampered_sigmoid(edit))


# ----------------------------------------------------------------------
# Command line

cli = pytest.mark.skipif(SCRIPT is None, reason="the symgroups script is not installed")


def run(*args):
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=300)


@cli
def test_cli_query_affine_json():
    completed = run("query", "sigmoid", "--affine", "--json")
    assert completed.returncode == 0, completed.stderr
    payload = json.loads(completed.stdout)
    assert payload["status"] == "proved"
    assert payload["elements"][1] == {"lam": "-1", "a": "0", "mu": "-1", "b": "1"}
    assert payload["linear_group"]["scalars"] == "trivial"


@cli
def test_cli_query_affine_text():
    completed = run("query", "relu6", "--affine")
    assert completed.returncode == 0, completed.stderr
    assert "reflection about t = 3" in completed.stdout
    assert "extends" in completed.stdout


@cli
def test_cli_affine_with_dim_is_bad_input():
    completed = run("query", "sigmoid", "--affine", "--dim", "3")
    assert completed.returncode == 2
    assert "--dim" in completed.stderr


@cli
def test_cli_certify_verify_and_tamper(tmp_path):
    path = tmp_path / "sigmoid.json"
    completed = run("certify", "sigmoid", "--affine", "-o", str(path))
    assert completed.returncode == 0, completed.stderr
    assert run("verify", str(path)).returncode == 0
    cert = json.loads(path.read_text())
    cert["group"]["center_value"] = "2"
    cert.pop("description")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(cert))
    completed = run("verify", str(bad))
    assert completed.returncode == 1
    assert "verification failed" in completed.stderr


@cli
def test_cli_malformed_affine_certificate(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema": AFFINE_SCHEMA}))
    completed = run("verify", str(path))
    assert completed.returncode == 2
    assert "missing the fields" in completed.stderr


def test_write_affine_certificate(tmp_path):
    path = tmp_path / "exp.json"
    cert = write_affine_certificate(result("exp"), path)
    assert json.loads(path.read_text()) == cert


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue_affine_group(name):
    r = query_affine(name)
    assert r.status in ("proved", "numerically_verified")
    assert r.evidence["passed"]
    assert r.evidence["group_residual"] <= 1e-9
    # The linear scalar group sits inside the affine one, as pairs (lam, 0).
    linear = r.linear.group
    if linear is not None and linear.kind == "monomial":
        for lam in (1.0, -1.0, 2.0, 0.5):
            if linear.scalar_contains(lam):
                assert r.group.contains(lam, 0.0), (name, lam)
    if r.status == "proved":
        cert = affine_certificate_of(r)
        assert verify_certificate(cert).group == r.group
