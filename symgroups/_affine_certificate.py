"""Affine certificates: the affine scalar group of an activation, re-verifiable.

The format ``symgroups.affine-certificate/1`` has the fields of the linear
certificate (``symgroups.certificate/1``), with an affine ``group``, affine
``steps`` (:mod:`symgroups._affine_claims`) and the affine numeric evidence.
``docs/affine-certificate.schema.json`` describes its structure. Loading one
runs no code from it: the expression is a JSON tree rebuilt through the
parser's whitelist and numbers go through the safe number parser.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy

from ._affine import AffineQueryResult, affine_evidence, numeric_candidate
from ._affine_claims import check_affine_step, deduce_affine, validate_affine_step
from ._affine_group import AffineGroupDescription
from ._cache import write_json_atomic
from ._certificate import (
    AFFINE_SCHEMA,
    check_steps,
    load_certificate,
    parse_certificate,
    run_verification,
    software_versions,
)
from ._errors import CertificateError, SymgroupsError, VerificationError
from ._files import OutputPathError
from ._worker import DEFAULT_STEP_TIMEOUT, DEFAULT_TOTAL_TIMEOUT

logger = logging.getLogger(__name__)


def affine_certificate_of(result: AffineQueryResult) -> dict[str, Any]:
    """Build the certificate of an affine result (not an undecided one)."""
    from ._exprjson import expression_to_json
    from ._parse import expression_text

    if result.group is None:
        raise SymgroupsError(
            f"cannot certify the affine group of {result.activation.text}: it is "
            f"undecided ({'; '.join(result.notes) or 'no proof and no candidate'})"
        )
    return {
        "schema": AFFINE_SCHEMA,
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


def write_affine_certificate(
    result: AffineQueryResult, path: str | Path
) -> dict[str, Any]:
    """Write the affine certificate of ``result`` atomically and return it."""
    certificate = affine_certificate_of(result)
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
class AffineVerificationReport:
    """A verified affine certificate: what it proves and how it was checked."""

    status: str
    group: AffineGroupDescription
    expression: sympy.Expr
    checked_steps: int
    evidence_passed: bool

    def summary(self) -> str:
        return (
            f"verified: {self.status}, affine group: {self.group.describe()} "
            f"({self.checked_steps} steps re-derived, numeric evidence passed)"
        )


def parse_affine_certificate(
    certificate: Any,
) -> tuple[sympy.Expr, AffineGroupDescription, str, list[dict[str, Any]]]:
    """Validate the structure of an affine certificate and rebuild its objects."""
    return parse_certificate(
        certificate,
        schema=AFFINE_SCHEMA,
        group_type=AffineGroupDescription,
        validate=validate_affine_step,
    )


def _verify_parsed(
    expr: sympy.Expr,
    group: AffineGroupDescription,
    status: str,
    steps: list[dict[str, Any]],
    evidence: dict[str, Any],
    step_timeout: float,
) -> AffineVerificationReport:
    check_steps(check_affine_step, expr, steps, step_timeout)
    proved = deduce_affine(steps)
    if status == "proved" and proved is None:
        raise VerificationError(
            "the steps do not determine an affine group, but the status is proved"
        )
    if proved is not None and proved != group:
        raise VerificationError(
            f"the steps prove {proved.describe()}, but the certificate claims "
            f"{group.describe()}"
        )
    if proved is None:
        # Numeric evidence only: the claim must agree with a fresh search,
        # which floats can fool, but not with a different exact centre.
        candidate, _ = numeric_candidate(expr, step_timeout)
        if candidate is None or candidate != group:
            found = "none" if candidate is None else candidate.describe()
            raise VerificationError(
                f"a fresh numeric search finds {found}, but the certificate claims "
                f"{group.describe()}"
            )
    seed = evidence.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise CertificateError(f"evidence.seed must be an integer, got {seed!r}")
    rerun = affine_evidence(expr, group, seed)
    if not rerun["passed"]:
        raise VerificationError(
            f"the numeric evidence re-run with seed {seed} fails for the claimed "
            f"group: max residual {rerun['group_residual']:.3g} above "
            f"{rerun['tolerance']:g}"
        )
    return AffineVerificationReport(status, group, expr, len(steps), True)


def verify_affine_certificate(
    certificate: dict[str, Any] | str | Path,
    *,
    timeout: float = DEFAULT_TOTAL_TIMEOUT,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
) -> AffineVerificationReport:
    """Re-derive every claim of an affine certificate.

    Raises :class:`CertificateError` for a malformed document and
    :class:`VerificationError` when a claim is false, the steps prove another
    group, or the numeric evidence fails. The checks run in a worker process
    with a hard deadline of ``timeout`` seconds.
    """
    if isinstance(certificate, (str, Path)):
        certificate = load_certificate(certificate)
    parsed = parse_affine_certificate(certificate)
    return run_verification(_verify_parsed, certificate, parsed, timeout, step_timeout)
