"""Proof steps: the claims a proof is made of, how each is checked, and what
a set of checked claims proves.

A step is a JSON object with a ``claim`` field. The prover builds steps and
checks each with :func:`check_step` before keeping it; the certificate
verifier runs the same checks on steps it reads from a file, and
:func:`deduce` turns checked steps into the group they prove. The argument
behind each claim:

``affine``
    ``sigma(x) = slope x + intercept`` identically. A constant ``sigma`` is
    degenerate, a linear one has all of ``GL_n``, an affine one the matrices
    with ``A 1 = 1``.
``not_affine``
    Three points ``a < b < c`` with ``b`` the midpoint and
    ``sigma(a) - 2 sigma(b) + sigma(c) != 0``. A non-affine ``sigma`` has only
    monomial intertwiners, so the group is fixed by the scalar group
    ``Lambda`` and the character ``mu``.
``taylor``
    Nonzero Taylor coefficients ``a_k`` at 0 of ``sigma`` (``side="both"``) or
    of ``u -> sigma(u)`` / ``u -> sigma(-u)`` on small ``u > 0`` (``"right"``,
    ``"left"``), each side analytic at 0. ``sigma(lam t) = mu sigma(t)`` near 0
    gives ``a_k lam^k = mu a_k`` for every ``k``, so two nonzero degrees
    ``k1 < k2`` force ``lam^(k2 - k1) = 1``.
``kink``
    A point ``b != 0`` where ``sigma``, piecewise analytic with finitely many
    pieces each analytic on all of R, is not analytic. Scaling by ``lam`` in
    ``Lambda`` maps the finite set of such points onto itself, so ``Lambda`` is
    finite, hence inside ``{1, -1}``.
``positive_scaling``
    ``sigma(lam x) = lam^power sigma(x)`` for all ``x`` and all ``lam > 0``:
    every positive number is in ``Lambda``, with ``mu(lam) = lam^power``.
``reflection``
    ``sigma(-x) = mu sigma(x)`` for all ``x``, with ``mu = +-1``: ``-1`` is in
    ``Lambda``.
``nonzero_at_zero``
    ``sigma(0) != 0``. Then ``sigma(lam 0) = mu sigma(0)`` forces ``mu = 1`` on
    all of ``Lambda``, so a nonzero Taylor coefficient of degree ``k >= 1`` on
    a side gives ``lam^k = 1``: no positive ``lam`` other than 1, and no
    negative one either when the germ is two-sided and ``k`` is odd.
``no_reflection``
    Points ``q1``, ``q2`` with ``sigma(-q1) != sigma(q1)`` and
    ``sigma(-q2) != -sigma(q2)``. Since ``sigma(-x) = mu sigma(x)`` forces
    ``mu = +-1``, ``-1`` is not in ``Lambda``; then no negative number is
    (its square root ratio with a positive element would give ``-1``, or its
    square would be a positive element other than 1).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import sympy

from ._errors import CertificateError, VerificationError
from ._group import Character, GroupDescription, exact_text
from ._symbolic import (
    analytic_at,
    analytic_on_reals,
    breakpoints,
    expression_set_pairs,
    genuine_break_order,
    interval_parts,
    nonzero_number,
    number_is_zero,
    prove_zero_on_reals,
    side_expression,
    taylor_coefficients,
)
from ._symbols import LAM, P, X
from ._worker import DEFAULT_STEP_TIMEOUT

logger = logging.getLogger(__name__)

CLAIMS = (
    "affine",
    "not_affine",
    "taylor",
    "kink",
    "positive_scaling",
    "reflection",
    "nonzero_at_zero",
    "no_reflection",
)

#: The fields each claim must have (besides ``claim``), with their JSON types.
_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "affine": {"slope": str, "intercept": str},
    "not_affine": {"points": list},
    "taylor": {"side": str, "coefficients": dict},
    "kink": {"point": str},
    "positive_scaling": {"power": str},
    "reflection": {"mu": str},
    "nonzero_at_zero": {},
    "no_reflection": {"points": list},
}

#: Optional fields that carry explanations only; they are not checked.
_NOTES = ("note",)


def _number(text: Any, where: str) -> sympy.Expr:
    from ._parse import parse_number

    if not isinstance(text, str):
        raise CertificateError(f"{where} must be an exact number as text, got {text!r}")
    try:
        return parse_number(text)
    except ValueError as exc:
        raise CertificateError(f"{where}: {exc}") from None


def validate_step(step: Any, index: int) -> None:
    """Check that a step has the fields and types of its claim."""
    check_step_fields(step, index, _FIELDS)


def check_step_fields(
    step: Any, index: int, fields_of: dict[str, dict[str, Any]]
) -> None:
    """Check ``step`` against ``fields_of[claim]``, its fields and JSON types.

    Besides those fields a step may carry only ``claim`` and the notes of
    :data:`_NOTES`. A JSON ``true`` does not count as an integer.
    """
    where = f"steps[{index}]"
    if not isinstance(step, dict):
        raise CertificateError(f"{where} must be an object, got {type(step).__name__}")
    claim = step.get("claim")
    if claim not in fields_of:
        raise CertificateError(
            f"{where}.claim must be one of {list(fields_of)}, got {claim!r}"
        )
    fields = fields_of[claim]
    missing = sorted(set(fields) - set(step))
    extra = sorted(set(step) - set(fields) - {"claim", *_NOTES})
    if missing or extra:
        raise CertificateError(
            f"{where} ({claim}) needs the fields {sorted(fields)}; "
            f"missing {missing}, unexpected {extra}"
        )
    for name, kind in fields.items():
        value = step[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CertificateError(
                f"{where}.{name} must be of JSON type {kind.__name__}, got {value!r}"
            )


def sigma_at(expr: sympy.Expr, value: sympy.Expr) -> sympy.Expr:
    """Return ``sigma(value)``, rejecting points where it is not a real number."""
    result = expr.subs(X, value)
    if result.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I):
        raise VerificationError(f"sigma is not finite and real at x = {value}")
    return result


def check_step(
    expr: sympy.Expr, step: dict[str, Any], seconds: float = DEFAULT_STEP_TIMEOUT
) -> None:
    """Re-derive one claim about ``sigma = expr``.

    Raises :class:`VerificationError` when the claim is false or could not
    be re-derived within the step deadline; returns None when it holds.
    """
    claim = step["claim"]
    checker = {
        "affine": _check_affine,
        "not_affine": _check_not_affine,
        "taylor": _check_taylor,
        "kink": _check_kink,
        "positive_scaling": _check_positive_scaling,
        "reflection": _check_reflection,
        "nonzero_at_zero": _check_nonzero_at_zero,
        "no_reflection": _check_no_reflection,
    }[claim]
    checker(expr, step, seconds)


def _check_affine(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    slope = _number(step["slope"], "slope")
    intercept = _number(step["intercept"], "intercept")
    if not prove_zero_on_reals(expr - slope * X - intercept, X, seconds):
        raise VerificationError(
            f"could not prove sigma(x) = {slope}*x + {intercept} for all real x"
        )


def _check_not_affine(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    points = step["points"]
    if len(points) != 3:
        raise CertificateError(f"not_affine needs three points, got {points!r}")
    a, b, c = (_number(v, "not_affine point") for v in points)
    if not number_is_zero(2 * b - a - c, seconds):
        raise VerificationError(f"{b} is not the midpoint of {a} and {c}")
    second_difference = sigma_at(expr, a) - 2 * sigma_at(expr, b) + sigma_at(expr, c)
    if not nonzero_number(second_difference, seconds):
        raise VerificationError(
            f"sigma({a}) - 2 sigma({b}) + sigma({c}) is not provably nonzero"
        )


def side_function(expr: sympy.Expr, side: str, seconds: float) -> sympy.Expr:
    """Return the analytic germ at 0 that a ``taylor`` claim is about."""
    germ = side_expression(expr, side)
    if germ is None:
        raise VerificationError(f"sigma has no piece-free form near 0 on side {side!r}")
    if not analytic_at(germ, X, sympy.Integer(0), seconds):
        raise VerificationError(
            f"the {side} germ {germ} of sigma is not provably analytic at 0"
        )
    return germ


def _check_taylor(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    side = step["side"]
    if side not in ("both", "right", "left"):
        raise CertificateError(f"taylor side must be both, right or left, got {side!r}")
    claimed: dict[int, sympy.Expr] = {}
    for key, value in step["coefficients"].items():
        if not (isinstance(key, str) and re.fullmatch(r"[0-9]{1,4}", key)):
            raise CertificateError(f"taylor degrees must be digits, got {key!r}")
        claimed[int(key)] = _number(value, f"taylor coefficient {key}")
    if not claimed:
        raise CertificateError("a taylor claim needs at least one coefficient")
    germ = side_function(expr, side, seconds)
    result = taylor_coefficients(germ, X, max(claimed) + 1, seconds)
    if result is None:
        raise VerificationError(f"could not expand sigma ({side}) in a series at 0")
    for degree, value in claimed.items():
        actual = result.nonzero.get(degree)
        if actual is None:
            raise VerificationError(
                f"the degree-{degree} coefficient of sigma ({side}) is not provably "
                f"nonzero (claimed {value})"
            )
        if not number_is_zero(actual - value, seconds):
            raise VerificationError(
                f"the degree-{degree} coefficient of sigma ({side}) is {actual}, "
                f"not {value}"
            )


def _check_kink(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    point = _number(step["point"], "kink point")
    if number_is_zero(point, seconds):
        raise VerificationError("a kink claim needs a nonzero point")
    pairs = expression_set_pairs(expr, X, seconds)
    if pairs is None:
        raise VerificationError("could not split sigma into pieces")
    for piece, domain in pairs:
        if not all(
            isinstance(part, (sympy.Interval, sympy.FiniteSet))
            or part is sympy.S.EmptySet
            for part in interval_parts(domain)
        ):
            raise VerificationError(
                f"the piece {piece} lives on a set {domain} that "
                "is not a finite union of intervals and points"
            )
        if not analytic_on_reals(piece, X, seconds):
            raise VerificationError(
                f"the piece {piece} of sigma is not provably analytic on all of R"
            )
    candidates = breakpoints(expr, X, seconds) or []
    for b, left, right, value in candidates:
        if number_is_zero(b - point, seconds):
            witness = genuine_break_order(b, left, right, value, X, seconds=seconds)
            if witness is None:
                raise VerificationError(
                    f"sigma is not provably non-analytic at {point}"
                )
            return
    raise VerificationError(f"{point} is not a breakpoint of sigma")


def _check_positive_scaling(
    expr: sympy.Expr, step: dict[str, Any], seconds: float
) -> None:
    power = _number(step["power"], "positive_scaling power")
    difference = expr.subs(X, LAM * X) - LAM**power * expr
    for value in (P, -P, sympy.Integer(0)):
        side = sympy.expand(difference.subs(X, value))
        if not prove_zero_on_reals(side, X, seconds):
            raise VerificationError(
                f"could not prove sigma(lam x) = lam**{power} sigma(x) for all "
                f"lam > 0 (failed at x = {value})"
            )


def _check_reflection(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    mu = _number(step["mu"], "reflection mu")
    if mu not in (1, -1):
        raise VerificationError(f"sigma(-x) = mu sigma(x) needs mu = 1 or -1, got {mu}")
    if not prove_zero_on_reals(expr.subs(X, -X) - mu * expr, X, seconds):
        raise VerificationError(f"could not prove sigma(-x) = {mu} sigma(x)")


def _check_nonzero_at_zero(
    expr: sympy.Expr, step: dict[str, Any], seconds: float
) -> None:
    value = sigma_at(expr, sympy.Integer(0))
    if not nonzero_number(value, seconds):
        raise VerificationError(f"sigma(0) = {value} is not provably nonzero")


def _check_no_reflection(
    expr: sympy.Expr, step: dict[str, Any], seconds: float
) -> None:
    points = step["points"]
    if len(points) != 2:
        raise CertificateError(f"no_reflection needs two points, got {points!r}")
    q1, q2 = (_number(v, "no_reflection point") for v in points)
    if not nonzero_number(sigma_at(expr, -q1) - sigma_at(expr, q1), seconds):
        raise VerificationError(f"sigma(-{q1}) != sigma({q1}) is not provable")
    if not nonzero_number(sigma_at(expr, -q2) + sigma_at(expr, q2), seconds):
        raise VerificationError(f"sigma(-{q2}) != -sigma({q2}) is not provable")


@dataclass(frozen=True)
class Deduction:
    """What a set of checked steps proves.

    ``group`` is the proved group, or None when the steps leave part of it
    open; ``positive`` is ``"all"``, ``"trivial"`` or None (the positive part
    of ``Lambda``), ``reflection`` the proved ``mu(-1)`` or ``"none"`` or None.
    """

    group: GroupDescription | None
    positive: str | None
    power: sympy.Expr | None
    reflection: str | None


def deduce(steps: list[dict[str, Any]]) -> Deduction:
    """Combine checked steps into the group they prove.

    Raises :class:`VerificationError` when two steps contradict each other.
    """
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        by_claim.setdefault(step["claim"], []).append(step)
    for step in by_claim.get("affine", []):
        slope = _number(step["slope"], "slope")
        intercept = _number(step["intercept"], "intercept")
        if "not_affine" in by_claim:
            raise VerificationError("steps claim sigma is both affine and not affine")
        if number_is_zero(slope):
            group = GroupDescription("degenerate")
        elif number_is_zero(intercept):
            group = GroupDescription("general_linear")
        elif nonzero_number(intercept) and nonzero_number(slope):
            group = GroupDescription("affine_stabilizer")
        else:
            return Deduction(None, None, None, None)
        return Deduction(group, None, None, None)
    if "not_affine" not in by_claim:
        return Deduction(None, None, None, None)

    positive: str | None = None
    power: sympy.Expr | None = None
    reflection: str | None = None

    def settle_positive(value: str) -> None:
        nonlocal positive
        if positive not in (None, value):
            raise VerificationError(
                "steps contradict each other about positive scalings"
            )
        positive = value

    def settle_reflection(value: str) -> None:
        nonlocal reflection
        if reflection not in (None, value):
            raise VerificationError("steps contradict each other about sigma(-x)")
        reflection = value

    if by_claim.get("kink"):
        settle_positive("trivial")
    degrees: dict[str, list[int]] = {}
    for step in by_claim.get("taylor", []):
        degrees.setdefault(step["side"], []).extend(
            int(k) for k in step["coefficients"]
        )
    for side, found in degrees.items():
        found = sorted(set(found))
        if len(found) >= 2:
            settle_positive("trivial")
            if side == "both" and any((b - a) % 2 for a in found for b in found):
                settle_reflection("none")
    if by_claim.get("nonzero_at_zero"):
        # mu = 1 on Lambda, so a nonzero degree k >= 1 gives lam**k = 1.
        for side, found in degrees.items():
            positive_degrees = [k for k in found if k >= 1]
            if positive_degrees:
                settle_positive("trivial")
            if side == "both" and any(k % 2 for k in positive_degrees):
                settle_reflection("none")
    right, left = set(degrees.get("right", ())), set(degrees.get("left", ()))
    if right and left and (right | left) != (right & left):
        settle_positive("trivial")
    for step in by_claim.get("positive_scaling", []):
        value = _number(step["power"], "positive_scaling power")
        settle_positive("all")
        if power is not None and not number_is_zero(power - value):
            raise VerificationError("steps give two different powers for mu")
        power = value
    for step in by_claim.get("reflection", []):
        settle_reflection(exact_text(_number(step["mu"], "reflection mu")))
    if by_claim.get("no_reflection"):
        settle_reflection("none")

    if positive is None or reflection is None:
        return Deduction(None, positive, power, reflection)
    sign_exponent = 1 if reflection == "-1" else 0
    if positive == "all":
        scalars = "positive" if reflection == "none" else "nonzero"
        character = Character(sign_exponent, power)
    else:
        scalars = "trivial" if reflection == "none" else "sign"
        character = Character(sign_exponent, 0)
    return Deduction(
        GroupDescription("monomial", scalars, character=character),
        positive,
        power,
        reflection,
    )
