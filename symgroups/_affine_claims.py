"""Claims about the affine scalar group, their exact checks, and what they prove.

The affine prover and the affine certificate verifier share this module, as
the linear ones share :mod:`symgroups._claims`. Each claim is re-derived
with sympy under a step deadline. The reasoning that turns checked claims
into a group (:func:`deduce_affine`) rests on four facts about a
non-constant, non-affine ``sigma`` and its pairs ``g = (lam, a)``:

1. A pair with ``lam != 1`` fixes the point ``c = a / (1 - lam)``, and the
   pairs fixing ``c`` are exactly ``(lam, c (1 - lam))`` for ``lam`` in the
   linear scalar group of ``sigma_c(s) = sigma(c + s) - sigma(c)``
   (put ``s = t - c``; ``t = c`` gives ``b = sigma(c) (1 - mu)``).
2. ``breakpoints``: the points where a piecewise ``sigma`` is not analytic
   are permuted by ``t -> lam t + a``, because ``mu sigma(t) + b`` has the
   same non-analytic points as ``sigma``. An order-preserving affine map
   fixing a finite set of two or more points is the identity, so every
   element fixes the one breakpoint, or the midpoint of the outermost two.
3. ``polynomial`` of degree ``d >= 2``: comparing the coefficients of
   ``t**d`` and ``t**(d-1)`` shows every element fixes the point where the
   ``(d-1)``-th derivative vanishes, ``c = -p_(d-1) / (d p_d)``.
4. ``limit``: for a continuous ``sigma`` with finite limits at both ends, no
   pair with ``lam > 0`` other than the identity exists (iterate it towards
   its fixed point or towards infinity), so the group has at most two
   elements. With one finite and one infinite limit, ``lam > 0`` always;
   for an analytic ``sigma`` a scaling about a point would make it a
   polynomial, which has no finite limit, and a translation ``(1, a)``
   would make it grow like ``|mu|**(t/a)``, which a ``growth`` claim
   (``sigma(t) / t**m`` has a finite limit) excludes. The group is trivial.

``docs/affine.md`` gives the proofs in full.
"""

from __future__ import annotations

import logging
from typing import Any

import sympy

from ._affine_group import TRIVIAL_STABILIZER, AffineGroupDescription
from ._claims import (
    _check_affine,
    _check_not_affine,
    check_step,
    check_step_fields,
    deduce,
    sigma_at,
)
from ._claims import validate_step as validate_linear_step
from ._errors import CertificateError, SymgroupsError, VerificationError
from ._group import GroupDescription
from ._symbolic import (
    analytic_on_reals,
    breakpoints,
    expression_set_pairs,
    genuine_break_order,
    interval_parts,
    is_piecewise,
    nonzero_number,
    number_is_zero,
    prove_zero_on_reals,
)
from ._symbols import X
from ._worker import DEFAULT_STEP_TIMEOUT, call_with_deadline

logger = logging.getLogger(__name__)

#: Ends of the real line that ``limit`` and ``growth`` claims name.
ENDS = {"+oo": sympy.oo, "-oo": -sympy.oo}

#: Largest power ``m`` in a ``growth`` claim.
MAX_GROWTH_POWER = 4

_FIELDS: dict[str, dict[str, type]] = {
    "affine": {"slope": str, "intercept": str},
    "not_affine": {"points": list},
    "exp_type": {"rate": str, "scale": str, "offset": str},
    "breakpoints": {"points": list},
    "polynomial": {"degree": int, "center": str},
    "analytic": {},
    "limit": {"end": str, "value": str},
    "growth": {"end": str, "power": int, "value": str},
    "stabilizer": {"center": str, "value": str, "group": dict, "steps": list},
    "element": {"lam": str, "a": str, "mu": str, "b": str},
}

AFFINE_CLAIMS = tuple(_FIELDS)


def _number(text: Any, where: str) -> sympy.Expr:
    from ._parse import parse_number

    if not isinstance(text, str):
        raise CertificateError(f"{where} must be an exact number as text, got {text!r}")
    try:
        return parse_number(text)
    except ValueError as exc:
        raise CertificateError(f"{where}: {exc}") from None


def _limit_value(text: Any, where: str) -> sympy.Expr:
    if text == "oo":
        return sympy.oo
    if text == "-oo":
        return -sympy.oo
    return _number(text, where)


def validate_affine_step(step: Any, index: int) -> None:
    """Check that a step has the fields and JSON types of its claim."""
    check_step_fields(step, index, _FIELDS)
    if step["claim"] == "stabilizer":
        for inner, nested in enumerate(step["steps"]):
            validate_linear_step(nested, inner)


# ----------------------------------------------------------------------
# Checks


def check_affine_step(
    expr: sympy.Expr, step: dict[str, Any], seconds: float = DEFAULT_STEP_TIMEOUT
) -> None:
    """Re-derive one affine claim about ``sigma = expr``.

    Raises :class:`VerificationError` when the claim is false or could not
    be re-derived within the step deadline.
    """
    checker = {
        "affine": _check_affine,
        "not_affine": _check_not_affine,
        "exp_type": _check_exp_type,
        "breakpoints": _check_breakpoints,
        "polynomial": _check_polynomial,
        "analytic": _check_analytic,
        "limit": _check_limit,
        "growth": _check_growth,
        "stabilizer": _check_stabilizer,
        "element": _check_element,
    }[step["claim"]]
    checker(expr, step, seconds)


def _check_exp_type(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    rate = _number(step["rate"], "exp_type rate")
    scale = _number(step["scale"], "exp_type scale")
    offset = _number(step["offset"], "exp_type offset")
    if not (nonzero_number(rate, seconds) and nonzero_number(scale, seconds)):
        raise VerificationError("exp_type needs a nonzero rate and a nonzero scale")
    difference = expr - scale * sympy.exp(rate * X) - offset
    if not prove_zero_on_reals(difference, X, seconds):
        raise VerificationError(
            f"could not prove sigma(x) = {scale}*exp({rate}*x) + {offset}"
        )


def genuine_breakpoints(
    expr: sympy.Expr, seconds: float = DEFAULT_STEP_TIMEOUT
) -> list[sympy.Expr] | None:
    """Return every point where a piecewise ``sigma`` is not analytic.

    Every piece must be analytic on all of R, so that the candidates from
    the partition contain every non-analytic point; each candidate must be
    proved genuine. Returns None when either fails.
    """
    pairs = expression_set_pairs(expr, X, seconds)
    if pairs is None:
        return None
    for piece, domain in pairs:
        for part in interval_parts(domain):
            if not (
                isinstance(part, (sympy.Interval, sympy.FiniteSet))
                or part is sympy.S.EmptySet
            ):
                return None
        if not analytic_on_reals(piece, X, seconds):
            return None
    candidates = breakpoints(expr, X, seconds)
    if candidates is None:
        return None
    points = []
    for b, left, right, value in candidates:
        if genuine_break_order(b, left, right, value, X, seconds=seconds) is None:
            return None
        points.append(b)
    return points


def _check_breakpoints(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    claimed = [_number(v, "breakpoint") for v in step["points"]]
    if not claimed:
        raise CertificateError("a breakpoints claim needs at least one point")
    found = genuine_breakpoints(expr, seconds)
    if found is None:
        raise VerificationError(
            "could not prove the complete set of breakpoints of sigma"
        )
    if len(found) != len(claimed) or not all(
        number_is_zero(a - b, seconds)
        for a, b in zip(
            sorted(found, key=float), sorted(claimed, key=float), strict=True
        )
    ):
        raise VerificationError(
            f"the breakpoints of sigma are {[str(v) for v in found]}, not "
            f"{step['points']}"
        )


def _polynomial(expr: sympy.Expr, seconds: float) -> sympy.Poly | None:
    if is_piecewise(expr):
        return None

    def build() -> sympy.Poly | None:
        if not expr.is_polynomial(X):
            return None
        return sympy.Poly(sympy.expand(expr), X)

    ok, poly = call_with_deadline(build, seconds=seconds)
    return poly if ok else None


def polynomial_center(
    poly: sympy.Poly, seconds: float = DEFAULT_STEP_TIMEOUT
) -> sympy.Expr:
    """Return ``-p_(d-1) / (d p_d)`` for a polynomial of degree ``d``."""
    degree = poly.degree()
    coefficients = poly.all_coeffs()
    center = -coefficients[1] / (degree * coefficients[0])
    ok, simplified = call_with_deadline(lambda: sympy.simplify(center), seconds=seconds)
    return simplified if ok else center


def _check_polynomial(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    degree = step["degree"]
    if degree < 2:
        raise CertificateError(f"a polynomial claim needs degree >= 2, got {degree}")
    poly = _polynomial(expr, seconds)
    if poly is None or poly.degree() != degree:
        raise VerificationError(f"sigma is not a polynomial of degree {degree}")
    center = _number(step["center"], "polynomial center")
    actual = polynomial_center(poly, seconds)
    if not number_is_zero(actual - center, seconds):
        raise VerificationError(f"the centre of sigma is {actual}, not {center}")


def _check_analytic(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    if is_piecewise(expr) or not analytic_on_reals(expr, X, seconds):
        raise VerificationError("sigma is not provably real-analytic on all of R")


def _limit(expr: sympy.Expr, end: str, seconds: float) -> sympy.Expr | None:
    if end not in ENDS:
        raise CertificateError(f"end must be '+oo' or '-oo', got {end!r}")
    try:
        ok, value = call_with_deadline(
            lambda: sympy.limit(expr, X, ENDS[end]), seconds=seconds
        )
    except (NotImplementedError, ValueError, TypeError) as exc:
        logger.info("limit of %s at %s failed: %s", expr, end, exc)
        return None
    if not ok or value is None:
        return None
    if value in (sympy.oo, -sympy.oo):
        return value
    if not isinstance(value, sympy.Expr) or value.free_symbols or not value.is_real:
        return None
    if value.has(sympy.AccumBounds, sympy.Limit, sympy.zoo, sympy.nan):
        return None
    return value


def _same_limit(actual: sympy.Expr | None, claimed: sympy.Expr, seconds: float) -> bool:
    if actual is None:
        return False
    if claimed in (sympy.oo, -sympy.oo) or actual in (sympy.oo, -sympy.oo):
        return actual == claimed
    return number_is_zero(actual - claimed, seconds)


def _check_limit(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    claimed = _limit_value(step["value"], "limit value")
    actual = _limit(expr, step["end"], seconds)
    if not _same_limit(actual, claimed, seconds):
        raise VerificationError(
            f"the limit of sigma at {step['end']} is {actual}, not {step['value']}"
        )


def _check_growth(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    power = step["power"]
    if not 1 <= power <= MAX_GROWTH_POWER:
        raise CertificateError(
            f"growth power must be 1..{MAX_GROWTH_POWER}, got {power}"
        )
    claimed = _number(step["value"], "growth value")
    actual = _limit(expr / X**power, step["end"], seconds)
    if actual in (sympy.oo, -sympy.oo) or not _same_limit(actual, claimed, seconds):
        raise VerificationError(
            f"the limit of sigma(x)/x**{power} at {step['end']} is {actual}, not "
            f"{step['value']}"
        )


def centered_expression(expr: sympy.Expr, center: sympy.Expr) -> sympy.Expr:
    """Return ``sigma_c(x) = sigma(c + x) - sigma(c)``."""
    if center == 0:
        return expr - sigma_at(expr, center)
    return expr.subs(X, X + center) - sigma_at(expr, center)


def _check_stabilizer(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    center = _number(step["center"], "stabilizer center")
    value = _number(step["value"], "stabilizer value")
    if not number_is_zero(sigma_at(expr, center) - value, seconds):
        raise VerificationError(f"sigma({center}) is not {value}")
    try:
        claimed = GroupDescription.from_json(step["group"])
    except SymgroupsError as exc:
        raise CertificateError(f"stabilizer group is invalid: {exc}") from None
    shifted = centered_expression(expr, center)
    for index, nested in enumerate(step["steps"]):
        try:
            check_step(shifted, nested, seconds)
        except VerificationError as exc:
            raise VerificationError(
                f"nested step {index} ({nested['claim']}) about sigma_c: {exc}"
            ) from None
    proved = deduce(step["steps"]).group
    if proved is None or proved != claimed:
        raise VerificationError(
            "the nested steps do not prove the stabilizer "
            f"{claimed.describe()} of sigma_c"
        )
    if proved.kind != "monomial":
        raise VerificationError(f"the stabilizer must be monomial, got {proved.kind}")


def _check_element(expr: sympy.Expr, step: dict[str, Any], seconds: float) -> None:
    lam = _number(step["lam"], "element lam")
    a = _number(step["a"], "element a")
    mu = _number(step["mu"], "element mu")
    b = _number(step["b"], "element b")
    if number_is_zero(lam, seconds):
        raise VerificationError("an element needs lam != 0")
    difference = expr.subs(X, lam * X + a) - mu * expr - b
    if not prove_zero_on_reals(difference, X, seconds):
        raise VerificationError(
            f"could not prove sigma({lam}*x + {a}) = {mu}*sigma(x) + {b}"
        )


# ----------------------------------------------------------------------
# Deduction


def _stabilizer_at(
    by_claim: dict[str, list[dict[str, Any]]], center: sympy.Expr
) -> dict[str, Any] | None:
    for step in by_claim.get("stabilizer", []):
        if number_is_zero(_number(step["center"], "stabilizer center") - center):
            return step
    return None


def _centered(step: dict[str, Any]) -> AffineGroupDescription:
    return AffineGroupDescription(
        "centered",
        center=_number(step["center"], "stabilizer center"),
        center_value=_number(step["value"], "stabilizer value"),
        stabilizer=GroupDescription.from_json(step["group"]),
    )


def forced_center(steps: list[dict[str, Any]]) -> tuple[sympy.Expr, str] | None:
    """Return the point every element must fix, with the claim that forces it.

    Breakpoints and polynomials force one; so do two finite limits when the
    group contains a reflection (its centre is found by search). Returns
    None when no claim forces a point.
    """
    for step in steps:
        if step["claim"] == "breakpoints":
            points = sorted(
                (_number(v, "breakpoint") for v in step["points"]), key=float
            )
            if len(points) == 1:
                return points[0], "breakpoints"
            return sympy.simplify((points[0] + points[-1]) / 2), "breakpoints"
        if step["claim"] == "polynomial" and step["degree"] >= 2:
            return _number(step["center"], "polynomial center"), "polynomial"
    return None


def _limits(by_claim: dict[str, list[dict[str, Any]]]) -> dict[str, sympy.Expr]:
    return {
        step["end"]: _limit_value(step["value"], "limit value")
        for step in by_claim.get("limit", [])
    }


def deduce_affine(steps: list[dict[str, Any]]) -> AffineGroupDescription | None:
    """Combine checked steps into the affine group they prove, or None.

    Raises :class:`VerificationError` when the steps contradict each other.
    """
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        by_claim.setdefault(step["claim"], []).append(step)
    affine = by_claim.get("affine", [])
    if affine:
        if "not_affine" in by_claim:
            raise VerificationError("steps claim sigma is both affine and not affine")
        slope = _number(affine[0]["slope"], "slope")
        if number_is_zero(slope):
            raise VerificationError("sigma is constant, so it has no affine group")
        intercept = _number(affine[0]["intercept"], "intercept")
        return AffineGroupDescription("full", slope=slope, intercept=intercept)
    if "not_affine" not in by_claim:
        return None
    exp_type = by_claim.get("exp_type", [])
    if exp_type:
        step = exp_type[0]
        return AffineGroupDescription(
            "translations",
            rate=_number(step["rate"], "exp_type rate"),
            scale=_number(step["scale"], "exp_type scale"),
            offset=_number(step["offset"], "exp_type offset"),
        )
    forced = forced_center(steps)
    if forced is not None:
        stabilizer = _stabilizer_at(by_claim, forced[0])
        return None if stabilizer is None else _centered(stabilizer)
    if "analytic" not in by_claim:
        return None
    limits = _limits(by_claim)
    if len(limits) != 2:
        return None
    finite = [end for end, value in limits.items() if value.is_finite]
    if len(finite) == 2:
        # At most one reflection: a stabilizer that contains -1 is all of it.
        for step in by_claim.get("stabilizer", []):
            group = GroupDescription.from_json(step["group"])
            if group.scalars == "sign":
                return _centered(step)
        return None
    if len(finite) == 1:
        infinite_end = "-oo" if finite[0] == "+oo" else "+oo"
        if any(s["end"] == infinite_end for s in by_claim.get("growth", [])):
            return AffineGroupDescription(
                "centered",
                center=sympy.Integer(0),
                center_value=sympy.Integer(0),
                stabilizer=TRIVIAL_STABILIZER,
            )
    return None
