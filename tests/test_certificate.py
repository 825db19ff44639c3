"""Certificates: every catalogue entry round-trips; edited ones fail."""

from __future__ import annotations

import copy
import json

import pytest

from symgroups import (
    CATALOGUE,
    SCHEMA,
    CertificateError,
    VerificationError,
    certificate_of,
    query,
    verify_certificate,
    write_certificate,
)


@pytest.fixture(scope="module")
def certificates():
    return {name: certificate_of(query(name)) for name in CATALOGUE}


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue_certificate_verifies(certificates, name):
    report = verify_certificate(certificates[name])
    assert report.status == "proved"
    assert report.group.to_json() == certificates[name]["group"]


def test_certificate_fields(certificates):
    cert = certificates["relu"]
    for field in ("schema", "expression", "group", "steps", "evidence", "software"):
        assert field in cert
    assert cert["schema"] == SCHEMA
    assert cert["expression"]["f"] == "Max"
    assert cert["software"]["sympy"]
    for field in ("seed", "dtype", "tolerance"):
        assert field in cert["evidence"]


def test_certificate_file_round_trip(tmp_path):
    path = tmp_path / "tanh.json"
    write_certificate(query("tanh"), path)
    report = verify_certificate(path)
    assert report.group.scalars == "sign"


def edited(cert, **changes):
    cert = copy.deepcopy(cert)
    for key, value in changes.items():
        cert[key] = value
    return cert


def test_wrong_group_fails(certificates):
    cert = certificates["relu"]
    group = dict(cert["group"], scalars="nonzero")
    with pytest.raises(VerificationError, match="steps prove"):
        verify_certificate(edited(cert, group=group))


def test_wrong_character_fails(certificates):
    cert = certificates["relu"]
    character = {"sign_exponent": 0, "power": "2"}
    group = dict(cert["group"], character=character)
    with pytest.raises(VerificationError, match="steps prove"):
        verify_certificate(edited(cert, group=group))


def test_tanh_claimed_trivial_fails(certificates):
    cert = certificates["tanh"]
    group = dict(cert["group"], scalars="trivial")
    with pytest.raises(VerificationError):
        verify_certificate(edited(cert, group=group))


def test_false_step_is_named(certificates):
    cert = copy.deepcopy(certificates["relu"])
    index = next(
        i for i, s in enumerate(cert["steps"]) if s["claim"] == "positive_scaling"
    )
    cert["steps"][index]["power"] = "2"
    with pytest.raises(
        VerificationError, match=f"step {index} \\(positive_scaling\\)"
    ) as info:
        verify_certificate(cert)
    assert info.value.step == index


def test_missing_step_does_not_add_up(certificates):
    cert = copy.deepcopy(certificates["relu"])
    cert["steps"] = [s for s in cert["steps"] if s["claim"] != "no_reflection"]
    with pytest.raises(VerificationError, match="do not determine"):
        verify_certificate(cert)


def test_expression_swapped_fails(certificates):
    # The steps of relu do not hold for tanh.
    cert = edited(certificates["relu"], expression=certificates["tanh"]["expression"])
    with pytest.raises(VerificationError, match="step"):
        verify_certificate(cert)


MALFORMED = [
    ({"schema": SCHEMA}, "missing the fields"),
    (["not", "an", "object"], "must be a JSON object"),
]


@pytest.mark.parametrize(("cert", "message"), MALFORMED)
def test_malformed_certificates(cert, message):
    with pytest.raises(CertificateError, match=message):
        verify_certificate(cert)


def test_unknown_schema(certificates):
    with pytest.raises(CertificateError, match="schema"):
        verify_certificate(edited(certificates["relu"], schema="other/9"))


def test_code_in_expression_is_rejected(certificates):
    payload = {"f": "__import__", "args": [{"sym": "os"}]}
    with pytest.raises(CertificateError, match="expression is invalid"):
        verify_certificate(edited(certificates["relu"], expression=payload))


def test_unknown_claim_is_rejected(certificates):
    cert = copy.deepcopy(certificates["relu"])
    cert["steps"].append({"claim": "trust_me"})
    with pytest.raises(CertificateError, match="claim must be one of"):
        verify_certificate(cert)


def test_bad_json_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{ not json")
    with pytest.raises(CertificateError, match="not valid JSON"):
        verify_certificate(path)


def test_missing_file(tmp_path):
    with pytest.raises(CertificateError, match="cannot read"):
        verify_certificate(tmp_path / "absent.json")


def test_certificate_is_plain_json(certificates):
    text = json.dumps(certificates["gelu"])
    assert json.loads(text) == certificates["gelu"]


def test_certificates_match_published_schema(certificates):
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path

    schema_path = (
        Path(__file__).resolve().parents[1] / "docs" / "certificate.schema.json"
    )
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for name, cert in certificates.items():
        errors = sorted(validator.iter_errors(cert), key=str)
        assert not errors, (name, [e.message for e in errors[:3]])


def test_numeric_claim_refuted_by_proof(certificates):
    # Floats cannot see 1e-20*x**2, but the exact search proves that the
    # function is not odd, so the claimed sign group is rejected.
    from symgroups._exprjson import expression_to_json
    from symgroups._parse import parse_expression

    cert = copy.deepcopy(certificates["tanh"])
    cert["expression"] = expression_to_json(parse_expression("tanh(x) + 1e-20*x**2"))
    cert["status"] = "numerically_verified"
    cert["steps"] = []
    del cert["activation"]
    with pytest.raises(VerificationError, match="provably"):
        verify_certificate(cert)


def test_near_linear_gl_claim_rejected(certificates):
    # float64 cannot tell x + 1e-12 |x| from x, but not_affine is exact, so
    # neither query nor verify may report the general linear group.
    from symgroups._exprjson import expression_to_json
    from symgroups._parse import parse_expression

    expr = parse_expression("x + 1e-12*Abs(x)")
    result = query(expr)
    assert result.status == "undecided"
    assert any("proved not to be affine" in note for note in result.notes)
    cert = copy.deepcopy(certificates["identity"])
    cert["expression"] = expression_to_json(expr)
    cert["status"] = "numerically_verified"
    cert["steps"] = []
    del cert["activation"]
    with pytest.raises(VerificationError, match="not to be affine"):
        verify_certificate(cert)
