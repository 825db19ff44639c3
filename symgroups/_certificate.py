"""Certificates: a result written so that anyone can re-verify it.

A certificate is a JSON document. Loading one never runs code from it: the
expression is a JSON tree rebuilt through the same whitelist as the
expression parser, numbers are parsed by the safe number parser, and every
claim is re-derived with sympy under a deadline.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy

from ._analysis import prove_group
from ._cache import write_json_atomic
from ._claims import check_step, deduce, validate_step
from ._errors import CertificateError, SymgroupsError, VerificationError
from ._files import OutputPathError
from ._group import GroupDescription
from ._query import QueryResult, _conflict, _evidence, evidence_supports_proof
from ._version import __version__
from ._worker import DEFAULT_STEP_TIMEOUT, DEFAULT_TOTAL_TIMEOUT, run_in_worker

logger = logging.getLogger(__name__)

SCHEMA = "symgroups.certificate/1"

#: The affine certificate format, which :func:`verify_certificate` also reads.
AFFINE_SCHEMA = "symgroups.affine-certificate/1"

#: Certificates larger than this are rejected before parsing (bytes).
MAX_CERTIFICATE_BYTES = 1_000_000

REQUIRED_FIELDS = ("schema", "expression", "group", "steps", "evidence", "software")
OPTIONAL_FIELDS = ("status", "activation", "description")


def software_versions() -> dict[str, str]:
    """Return the versions of the software that produces a certificate."""
    import numpy
    import scipy

    return {
        "symgroups": __version__,
        "sympy": sympy.__version__,
        "mpmath": _version_of("mpmath"),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


def _version_of(module: str) -> str:
    try:
        return __import__(module).__version__
    except (ImportError, AttributeError):
        return "unknown"


def certificate_of(result: QueryResult) -> dict[str, Any]:
    """Build the certificate of a result.

    Only ``proved`` and ``numerically_verified`` results can be certified.
    """
    from ._exprjson import expression_to_json
    from ._parse import expression_text

    if result.group is None:
        raise SymgroupsError(
            f"cannot certify {result.activation.text}: its group is undecided "
            f"({'; '.join(result.notes) or 'no proof and no numeric answer'})"
        )
    return {
        "schema": SCHEMA,
        "status": result.status,
        "activation": {
            "name": result.activation.name,
            "params": {k: str(v) for k, v in result.activation.params.items()},
            "text": expression_text(result.activation.expr),
        },
        "expression": expression_to_json(result.activation.expr),
        "group": result.group.to_json(),
        "description": result.group.describe(),
        "steps": result.steps,
        "evidence": result.evidence,
        "software": software_versions(),
    }


def write_certificate(result: QueryResult, path: str | Path) -> dict[str, Any]:
    """Write the certificate of ``result`` to ``path`` atomically and return it."""
    certificate = certificate_of(result)
    try:
        write_json_atomic(Path(path), certificate)
    except OutputPathError as exc:
        raise SymgroupsError(f"cannot write certificate: {exc}") from None
    except OSError as exc:
        raise SymgroupsError(
            f"cannot write certificate {str(path)!r}: {exc.strerror or exc}; check "
            "that the folder exists and is writable"
        ) from None
    return certificate


@dataclass(frozen=True)
class VerificationReport:
    """A verified certificate: what it proves and how each step fared."""

    status: str
    group: GroupDescription
    expression: sympy.Expr
    checked_steps: int
    evidence_passed: bool

    def summary(self) -> str:
        return (
            f"verified: {self.status}, {self.group.describe()} "
            f"({self.checked_steps} steps re-derived, numeric evidence "
            f"{'passed' if self.evidence_passed else 'not required'})"
        )


def load_certificate(path: str | Path) -> dict[str, Any]:
    """Read a certificate file; raises :class:`CertificateError` if unreadable."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CertificateError(
            f"cannot read certificate {str(path)!r}: {exc.strerror}"
        ) from None
    if size > MAX_CERTIFICATE_BYTES:
        raise CertificateError(
            f"certificate {str(path)!r} is {size} bytes; at most "
            f"{MAX_CERTIFICATE_BYTES} are accepted"
        )
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise CertificateError(
            f"cannot read certificate {str(path)!r}: {exc}"
        ) from None
    except json.JSONDecodeError as exc:
        raise CertificateError(
            f"certificate {str(path)!r} is not valid JSON: {exc.msg} at line "
            f"{exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise CertificateError(
            f"certificate {str(path)!r} is nested too deeply"
        ) from None


def parse_certificate(
    certificate: Any,
    *,
    schema: str = SCHEMA,
    group_type: Any = GroupDescription,
    validate: Any = validate_step,
) -> tuple[sympy.Expr, Any, str, list[dict[str, Any]]]:
    """Validate the structure of a certificate and rebuild its objects.

    ``schema``, ``group_type`` (a class with ``from_json``) and ``validate``
    (the per-step structure check) select the format; the defaults read
    linear certificates, and the affine format passes its own.
    """
    from ._exprjson import expression_from_json

    if not isinstance(certificate, dict):
        raise CertificateError(
            f"a certificate must be a JSON object, got {type(certificate).__name__}"
        )
    missing = [f for f in REQUIRED_FIELDS if f not in certificate]
    if missing:
        raise CertificateError(f"certificate is missing the fields {missing}")
    unknown = sorted(set(certificate) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise CertificateError(f"certificate has unknown fields {unknown}")
    if certificate["schema"] != schema:
        raise CertificateError(
            f"certificate schema {certificate['schema']!r} is not supported; "
            f"expected {schema!r}"
        )
    try:
        expr = expression_from_json(certificate["expression"])
    except SymgroupsError as exc:
        raise CertificateError(f"certificate expression is invalid: {exc}") from None
    try:
        group = group_type.from_json(certificate["group"])
    except SymgroupsError as exc:
        raise CertificateError(f"certificate group is invalid: {exc}") from None
    status = certificate.get("status", "proved")
    if status not in ("proved", "numerically_verified"):
        raise CertificateError(
            f"certificate status must be 'proved' or 'numerically_verified', "
            f"got {status!r}"
        )
    steps = certificate["steps"]
    if not isinstance(steps, list):
        raise CertificateError("certificate steps must be a list")
    for index, step in enumerate(steps):
        validate(step, index)
    evidence = certificate["evidence"]
    if not isinstance(evidence, dict):
        raise CertificateError("certificate evidence must be an object")
    if not isinstance(certificate["software"], dict):
        raise CertificateError("certificate software must be an object")
    return expr, group, status, steps


def _check_descriptive_fields(
    certificate: dict[str, Any], expr: sympy.Expr, group: GroupDescription
) -> None:
    """Reject readable copies that disagree with what is verified.

    ``activation.text`` and ``description`` are for people; a file whose
    text names another function or group than the one verified would
    mislead its reader.
    """
    from ._parse import expression_text

    activation = certificate.get("activation")
    if activation is not None:
        if not isinstance(activation, dict):
            raise CertificateError("certificate activation must be an object")
        text = activation.get("text")
        if text is not None and text != expression_text(expr):
            raise VerificationError(
                f"activation.text {text!r} does not match the expression "
                f"{expression_text(expr)!r}"
            )
    description = certificate.get("description")
    if description is not None and description != group.describe():
        raise VerificationError(
            f"description {description!r} does not match the group ({group.describe()})"
        )


def check_steps(
    check: Any, expr: sympy.Expr, steps: list[dict[str, Any]], step_timeout: float
) -> None:
    """Re-derive every step with ``check(expr, step, step_timeout)``.

    A failure is re-raised with the step's index and claim in the message.
    """
    for index, step in enumerate(steps):
        try:
            check(expr, step, step_timeout)
        except VerificationError as exc:
            raise VerificationError(
                f"step {index} ({step['claim']}) failed: {exc}", step=index
            ) from None
        except CertificateError as exc:
            raise CertificateError(f"step {index} ({step['claim']}): {exc}") from None


def _verify_parsed(
    expr: sympy.Expr,
    group: GroupDescription,
    status: str,
    steps: list[dict[str, Any]],
    evidence: dict[str, Any],
    step_timeout: float,
) -> VerificationReport:
    check_steps(check_step, expr, steps, step_timeout)
    deduction = deduce(steps)
    if status == "proved":
        if deduction.group is None:
            raise VerificationError(
                "the steps do not determine a group, but the status is proved"
            )
        if deduction.group != group:
            raise VerificationError(
                f"the steps prove {deduction.group.describe()}, but the certificate "
                f"claims {group.describe()}"
            )
    elif deduction.group is not None and deduction.group != group:
        raise VerificationError(
            f"the steps prove {deduction.group.describe()}, but the certificate "
            f"claims {group.describe()}"
        )
    else:
        # A numeric claim is only evidence, so it must at least survive the
        # exact search: floats cannot see a term such as 1e-20*x**2.
        analysis = prove_group(expr, step_timeout)
        if analysis.group is not None and analysis.group != group:
            raise VerificationError(
                f"the group is provably {analysis.group.describe()}, but the "
                f"certificate claims {group.describe()}"
            )
        conflict = _conflict(analysis, group)
        if conflict:
            raise VerificationError(
                f"the claimed group contradicts a proved fact: {conflict}"
            )
    evidence_passed = False
    if group.kind != "degenerate":
        seed = evidence.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise CertificateError(f"evidence.seed must be an integer, got {seed!r}")
        rerun = _evidence(expr, group, seed)
        supported = (
            evidence_supports_proof(rerun)
            if status == "proved"
            else rerun.get("passed")
        )
        if not supported:
            raise VerificationError(
                "the numeric evidence re-run with seed "
                f"{seed} fails for the claimed group: {_evidence_summary(rerun)}"
            )
        evidence_passed = True
    return VerificationReport(status, group, expr, len(steps), evidence_passed)


def _evidence_summary(evidence: dict[str, Any]) -> str:
    keys = [k for k in evidence if "residual" in k or k == "tolerance"]
    return ", ".join(f"{k}={evidence[k]}" for k in keys) or "no residuals recorded"


def verify_certificate(
    certificate: dict[str, Any] | str | Path,
    *,
    timeout: float = DEFAULT_TOTAL_TIMEOUT,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
) -> VerificationReport:
    """Re-derive every claim of a certificate.

    Raises :class:`CertificateError` for a malformed document and
    :class:`VerificationError` (with ``step`` set) when a claim is false, the
    steps do not add up to the stated group, or the numeric evidence fails.
    An affine certificate (schema ``symgroups.affine-certificate/1``) is
    checked by :func:`symgroups._affine_certificate.verify_affine_certificate`
    and returns its report. The checks run in a worker process with a hard
    deadline of ``timeout`` seconds.
    """
    if isinstance(certificate, (str, Path)):
        certificate = load_certificate(certificate)
    if isinstance(certificate, dict) and certificate.get("schema") == AFFINE_SCHEMA:
        from ._affine_certificate import verify_affine_certificate

        return verify_affine_certificate(
            certificate, timeout=timeout, step_timeout=step_timeout
        )
    parsed = parse_certificate(certificate)
    return run_verification(_verify_parsed, certificate, parsed, timeout, step_timeout)


def run_verification(
    verify: Any,
    certificate: dict[str, Any],
    parsed: tuple[sympy.Expr, Any, str, list[dict[str, Any]]],
    timeout: float,
    step_timeout: float,
) -> Any:
    """Run ``verify(expr, group, status, steps, evidence, step_timeout)`` in a worker.

    The worker is terminated after ``timeout`` seconds. A deadline or a crash
    becomes a :class:`VerificationError`; the descriptive fields are checked
    after the claims pass.
    """
    from . import _numeric  # noqa: F401  (imported once, inherited by the worker)

    expr, group, status, steps = parsed
    outcome = run_in_worker(
        verify,
        expr,
        group,
        status,
        steps,
        certificate["evidence"],
        step_timeout,
        timeout=timeout,
    )
    if outcome.status == "ok":
        # The readable copies are compared last, so that a false claim is
        # reported as such rather than as a stale description.
        _check_descriptive_fields(certificate, expr, group)
        return outcome.value
    if outcome.status == "error" and isinstance(outcome.error, SymgroupsError):
        raise outcome.error
    if outcome.status == "timeout":
        raise VerificationError(
            f"verification did not finish within {timeout:g} s; raise --timeout"
        )
    raise VerificationError(f"verification failed: {outcome.detail.strip()}")
