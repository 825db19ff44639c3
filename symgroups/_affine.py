"""The affine query: prove the pairs with ``sigma(lam t + a) = mu sigma(t) + b``.

:func:`query_affine` runs the search in a worker process, like
:func:`symgroups.query`. The search keeps only steps that pass
:func:`symgroups._affine_claims.check_affine_step`, the check the affine
certificate verifier runs, and :func:`symgroups._affine_claims.deduce_affine`
turns them into the group. When the steps do not determine the group, a
numeric search over reflections and translations proposes one, and the
result is ``numerically_verified`` (or ``undecided`` when the proposal cannot
be written as an :class:`AffineGroupDescription`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from ._activation import Activation
from ._affine_claims import (
    MAX_GROWTH_POWER,
    centered_expression,
    check_affine_step,
    deduce_affine,
    forced_center,
    genuine_breakpoints,
    polynomial_center,
)
from ._affine_claims import _limit as limit_at
from ._affine_claims import _polynomial as as_polynomial
from ._affine_group import TRIVIAL_STABILIZER, AffineGroupDescription, _product
from ._errors import SymgroupsError, VerificationError
from ._group import GroupDescription, exact_text
from ._query import DEFAULT_SEED, QueryResult, check_real_valued, query
from ._symbolic import is_piecewise
from ._symbols import X
from ._worker import (
    DEFAULT_STEP_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    call_with_deadline,
    run_in_worker,
)

logger = logging.getLogger(__name__)

#: Relative residual below which a numeric identity counts as holding.
EVIDENCE_TOL = 1e-9

#: A near miss must fail by at least this relative residual.
NEAR_MISS_MIN = 1e-6

#: Elements and points of the numeric evidence.
EVIDENCE_ELEMENTS = 24
EVIDENCE_POINTS = 400

#: Range of the sample points ``t`` (the numeric search and the evidence).
POINT_RANGE = 6.0

#: Shifts ``a`` tried by the numeric search for reflections and translations.
SEARCH_SHIFTS = np.linspace(-12.0, 12.0, 961)

#: Relative residual of the best fit below which the search reports a pair.
SEARCH_TOL = 1e-7

#: Relative distance within which a numeric value is read as an exact guess.
GUESS_TOL = 1e-9


@dataclass(frozen=True)
class AffineQueryResult:
    """The affine scalar group of one activation, with its status and proof.

    ``status`` is ``"proved"`` (the checked ``steps`` determine ``group``),
    ``"numerically_verified"`` (``group`` rests on ``evidence``) or
    ``"undecided"`` (``group`` is None and ``notes`` gives the reason). ``linear``
    is the linear result of :func:`symgroups.query`, which ``extension``
    compares the affine group with.
    """

    activation: Activation
    status: str
    group: AffineGroupDescription | None
    linear: QueryResult | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """Describe the affine group in one line, or return ``"undecided"``."""
        return "undecided" if self.group is None else self.group.describe()

    @property
    def extension(self) -> str:
        """How the affine group extends the linear one, in one sentence."""
        linear = None if self.linear is None else self.linear.group
        return extension_text(self.group, linear)

    def to_json(self) -> dict[str, Any]:
        """Return the object that ``symgroups query --affine --json`` prints."""
        from ._parse import expression_text

        linear = None if self.linear is None else self.linear.group
        return {
            "expression": expression_text(self.activation.expr),
            "name": self.activation.name,
            "params": {k: str(v) for k, v in self.activation.params.items()},
            "status": self.status,
            "group": None if self.group is None else self.group.to_json(),
            "description": self.describe(),
            "elements": _elements_json(self.group),
            "linear_group": None if linear is None else linear.to_json(),
            "linear_status": None if self.linear is None else self.linear.status,
            "extension": self.extension,
            "steps": self.steps,
            "evidence": self.evidence,
            "notes": self.notes,
        }


def _elements_json(group: AffineGroupDescription | None) -> list[dict[str, str]] | None:
    elements = None if group is None else group.finite_elements()
    if elements is None:
        return None
    keys = ("lam", "a", "mu", "b")
    return [
        {k: exact_text(v) for k, v in zip(keys, item, strict=True)} for item in elements
    ]


def extension_text(
    group: AffineGroupDescription | None, linear: GroupDescription | None
) -> str:
    """Say what the affine group adds to the linear scalar group.

    The linear scalar group is the set of pairs ``(lam, 0)`` with ``b = 0``;
    it is always contained in the affine group.
    """
    if group is None:
        return "unknown: the affine group is undecided"
    if group.kind == "full":
        return (
            "adds every translation a != 0 to the linear group, since sigma is affine"
        )
    if group.kind == "translations":
        return (
            "adds the translations (1, a), a != 0, each with mu = "
            f"exp({_product(group.rate, 'a')}); the linear group has only a = 0"
        )
    if group.is_trivial:
        return "nothing: the affine group is trivial, like the linear one"
    if group.kind == "periodic":
        return (
            "adds the translations by multiples of "
            f"{exact_text(group.period)} (and reflections about other points)"
        )
    same_scalars = (
        linear is not None
        and linear.kind == "monomial"
        and linear.scalars == group.stabilizer.scalars
        and linear.generators == group.stabilizer.generators
    )
    needs_bias = group.center != 0 or group.center_value != 0
    if same_scalars and not needs_bias:
        return "nothing: every element has a = 0 and b = 0, so it is linear"
    if group.center != 0:
        return (
            f"adds the elements that fix t = {exact_text(group.center)} instead of "
            "t = 0; they need a bias before and after the activation"
        )
    return (
        "adds elements with b != 0 (sigma(0) != 0), which the next layer's bias "
        "absorbs; the linear group cannot use them"
    )


# ----------------------------------------------------------------------
# The search


class _AffineProver:
    """Collect checked steps; each step is kept only if its check passes."""

    def __init__(
        self, expr: sympy.Expr, linear_steps: list[dict[str, Any]], seconds: float
    ):
        self.expr = expr
        self.linear_steps = linear_steps
        self.seconds = seconds
        self.steps: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def keep(self, step: dict[str, Any]) -> bool:
        try:
            check_affine_step(self.expr, step, self.seconds)
        except VerificationError as exc:
            logger.info("affine step %s not kept: %s", step["claim"], exc)
            return False
        self.steps.append(step)
        return True

    def current(self) -> AffineGroupDescription | None:
        return deduce_affine(self.steps)

    def run(self) -> AffineGroupDescription | None:
        if not self.settle_affinity():
            self.notes.append("could not decide whether sigma is affine")
            return None
        if self.current() is not None:
            return self.current()
        if not is_piecewise(self.expr):
            self.try_exp_type()
            if self.current() is not None:
                return self.current()
            self.try_polynomial()
        else:
            self.try_breakpoints()
        forced = forced_center(self.steps)
        if forced is not None:
            self.try_stabilizer(forced[0])
            if self.current() is None:
                self.notes.append(
                    f"the {forced[1]} claim fixes the centre "
                    f"{exact_text(forced[0])}, but its stabilizer was not proved"
                )
            return self.current()
        if not is_piecewise(self.expr) and self.keep({"claim": "analytic"}):
            self.try_limits()
        return self.current()

    def settle_affinity(self) -> bool:
        for step in self.linear_steps:
            if step["claim"] in ("affine", "not_affine") and self.keep(dict(step)):
                return True
        from ._analysis import prove_group

        for step in prove_group(self.expr, self.seconds).steps:
            if step["claim"] in ("affine", "not_affine") and self.keep(dict(step)):
                return True
        return False

    def try_exp_type(self) -> None:
        derivative = sympy.diff(self.expr, X)
        if derivative == 0:
            return
        ratio = sympy.diff(derivative, X) / derivative

        def screen() -> list[float]:
            points = (sympy.Rational(1, 3), sympy.Rational(-7, 5), sympy.Integer(2))
            return [float(sympy.N(ratio.subs(X, point), 15)) for point in points]

        try:
            ok, ratios = call_with_deadline(screen, seconds=self.seconds)
        except (TypeError, ValueError):
            return
        if not ok:
            return
        spread = max(ratios) - min(ratios)
        if spread > 1e-9 * (1 + max(abs(r) for r in ratios)) or abs(ratios[0]) < 1e-12:
            return

        def components() -> tuple[sympy.Expr, sympy.Expr, sympy.Expr]:
            rate = sympy.nsimplify(
                sympy.simplify(sympy.diff(derivative, X) / derivative)
            )
            scale = sympy.simplify(derivative / (rate * sympy.exp(rate * X)))
            offset = sympy.simplify(self.expr - scale * sympy.exp(rate * X))
            return rate, scale, offset

        ok, found = call_with_deadline(components, seconds=self.seconds)
        if not ok or any(v.free_symbols for v in found):
            return
        rate, scale, offset = found
        self.keep(
            {
                "claim": "exp_type",
                "rate": exact_text(rate),
                "scale": exact_text(scale),
                "offset": exact_text(offset),
            }
        )

    def try_polynomial(self) -> None:
        poly = as_polynomial(self.expr, self.seconds)
        if poly is None or poly.degree() < 2:
            return
        self.keep(
            {
                "claim": "polynomial",
                "degree": int(poly.degree()),
                "center": exact_text(polynomial_center(poly, self.seconds)),
            }
        )

    def try_breakpoints(self) -> None:
        points = genuine_breakpoints(self.expr, self.seconds)
        if not points:
            self.notes.append(
                "sigma is piecewise, but its breakpoints could not all be proved "
                "genuine"
            )
            return
        self.keep({"claim": "breakpoints", "points": [exact_text(p) for p in points]})

    def try_stabilizer(self, center: sympy.Expr) -> bool:
        from ._analysis import prove_group
        from ._claims import sigma_at

        value = _simplified(sigma_at(self.expr, center), self.seconds)
        shifted = centered_expression(self.expr, center)
        analysis = prove_group(shifted, self.seconds)
        group = analysis.group
        if group is None or group.kind != "monomial":
            self.notes.append(
                f"the linear group of sigma(x + {exact_text(center)}) - sigma("
                f"{exact_text(center)}) was not proved: " + "; ".join(analysis.notes)
            )
            return False
        return self.keep(
            {
                "claim": "stabilizer",
                "center": exact_text(center),
                "value": exact_text(value),
                "group": group.to_json(),
                "steps": analysis.steps,
            }
        )

    def try_limits(self) -> None:
        limits = {}
        for end in ("+oo", "-oo"):
            value = limit_at(self.expr, end, self.seconds)
            if value is None:
                self.notes.append(f"the limit of sigma at {end} was not found")
                return
            text = {sympy.oo: "oo", -sympy.oo: "-oo"}.get(value) or exact_text(value)
            if not self.keep({"claim": "limit", "end": end, "value": text}):
                return
            limits[end] = value
        finite = [end for end, v in limits.items() if v.is_finite]
        if len(finite) == 2:
            center = find_reflection_center(self.expr)
            if center is None:
                self.notes.append(
                    "sigma has finite limits at both ends, so the group has at most "
                    "a reflection besides the identity, but none was found"
                )
                return
            self.try_stabilizer(center)
            return
        if len(finite) == 1:
            infinite_end = "-oo" if finite[0] == "+oo" else "+oo"
            for power in range(1, MAX_GROWTH_POWER + 1):
                value = limit_at(self.expr / X**power, infinite_end, self.seconds)
                if value is not None and value.is_finite:
                    self.keep(
                        {
                            "claim": "growth",
                            "end": infinite_end,
                            "power": power,
                            "value": exact_text(value),
                        }
                    )
                    return


def _simplified(value: sympy.Expr, seconds: float) -> sympy.Expr:
    """Return ``simplify(value)``, or ``value`` itself past the step deadline."""
    ok, simplified = call_with_deadline(lambda: sympy.simplify(value), seconds=seconds)
    return simplified if ok else value


# ----------------------------------------------------------------------
# Numerics


def _evaluator(expr: sympy.Expr) -> Any:
    from ._numeric import compile_numpy

    return compile_numpy(expr)


def _fit_residual(f: Any, lam: float, a: float, t: np.ndarray) -> tuple[float, ...]:
    """Fit ``sigma(lam t + a) ~ mu sigma(t) + b``; return ``(residual, mu, b)``.

    The residual is relative to the spread of ``sigma(lam t + a)``.
    """
    y = f(lam * t + a)
    x = f(t)
    keep = np.isfinite(y) & np.isfinite(x)
    y, x = y[keep], x[keep]
    if y.size < 8:
        return float("inf"), float("nan"), float("nan")
    design = np.stack([x, np.ones_like(x)], axis=1)
    (mu, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    spread = float(np.linalg.norm(y - y.mean()))
    if spread == 0.0:
        return float("inf"), float("nan"), float("nan")
    residual = float(np.linalg.norm(design @ np.array([mu, b]) - y)) / spread
    return residual, float(mu), float(b)


def _search_shifts(f: Any, lam: float) -> list[float]:
    """Return the shifts ``a`` at which ``(lam, a)`` numerically intertwines."""
    from scipy.optimize import minimize_scalar

    t = np.linspace(-POINT_RANGE, POINT_RANGE, 121)
    scores = np.array([_fit_residual(f, lam, a, t)[0] for a in SEARCH_SHIFTS])
    found: list[float] = []
    step = SEARCH_SHIFTS[1] - SEARCH_SHIFTS[0]
    for i in range(1, len(SEARCH_SHIFTS) - 1):
        if not (scores[i] <= scores[i - 1] and scores[i] <= scores[i + 1]):
            continue
        if scores[i] > 0.05:
            continue
        low, high = SEARCH_SHIFTS[i] - step, SEARCH_SHIFTS[i] + step
        # The residual is V-shaped at a pair; its square is smooth, so the
        # bounded Brent search converges to near machine precision.
        best = minimize_scalar(
            lambda a: _fit_residual(f, lam, a, t)[0] ** 2,
            bounds=(low, high),
            method="bounded",
            options={"xatol": 1e-12},
        )
        close = any(abs(best.x - v) < step for v in found)
        if best.fun < SEARCH_TOL**2 and not close:
            found.append(_polish(lambda a: _fit_residual(f, lam, a, t)[0] ** 2, best.x))
    return found


def _polish(square: Any, x: float, h: float = 1e-5) -> float:
    """Return the vertex of the parabola through ``square`` at ``x - h, x, x + h``.

    Near a pair the squared residual is a parabola, so the vertex is far
    more accurate than the Brent minimum, which stalls at about 1e-8.
    """
    left, middle, right = square(x - h), square(x), square(x + h)
    curvature = left - 2.0 * middle + right
    if not curvature > 0:
        return float(x)
    return float(x - h * (right - left) / (2.0 * curvature))


def _exact_guess(value: float) -> sympy.Expr:
    """Guess an exact number near ``value``: a small rational, else ``q pi``.

    The tolerance, :data:`GUESS_TOL` relative, is tight enough that 355/113
    is not taken for pi; a wrong guess fails its exact proof later.
    """
    rational = sympy.Rational(value).limit_denominator(1000)
    if abs(float(rational) - value) <= GUESS_TOL * max(1.0, abs(value)):
        return rational
    multiple = sympy.Rational(value / np.pi).limit_denominator(100)
    if abs(float(multiple) * np.pi - value) <= GUESS_TOL * max(1.0, abs(value)):
        return multiple * sympy.pi
    return rational


def find_reflection_center(expr: sympy.Expr) -> sympy.Expr | None:
    """Search numerically for a reflection ``(-1, a)`` and return ``c = a / 2``.

    The centre is guessed as an exact number (a rational or a rational
    multiple of pi) and is proved by the caller.
    """
    f = _evaluator(expr)
    shifts = _search_shifts(f, -1.0)
    if not shifts:
        return None
    shift = min(shifts, key=abs)
    return _exact_guess(shift / 2)


def numeric_candidate(
    expr: sympy.Expr, seconds: float
) -> tuple[AffineGroupDescription | None, dict[str, Any]]:
    """Propose a group from a numeric search over reflections and translations.

    Translations make a ``periodic`` candidate, generated by the smallest
    positive one and the reflection nearest to 0. Returns the candidate
    (None when a generator's ``(mu, b)`` cannot be fitted) and a record of
    the search.
    """
    f = _evaluator(expr)
    reflections = _search_shifts(f, -1.0)
    translations = [a for a in _search_shifts(f, 1.0) if abs(a) > 1e-6]
    record = {
        "method": "least-squares fit of sigma(lam t + a) by mu sigma(t) + b",
        "lam": [-1.0, 1.0],
        "shifts": [
            float(SEARCH_SHIFTS[0]),
            float(SEARCH_SHIFTS[-1]),
            len(SEARCH_SHIFTS),
        ],
        "tolerance": SEARCH_TOL,
        "reflections_at": reflections,
        "translations_by": translations,
    }
    if translations:
        return _periodic_candidate(f, translations, reflections), record
    if not reflections:
        trivial = AffineGroupDescription(
            "centered", center=0, center_value=0, stabilizer=TRIVIAL_STABILIZER
        )
        return trivial, record
    from ._analysis import prove_group
    from ._claims import sigma_at

    center = _exact_guess(min(reflections, key=abs) / 2)
    shifted = centered_expression(expr, center)
    stabilizer = prove_group(shifted, seconds).group
    if stabilizer is None or stabilizer.kind != "monomial":
        from ._numeric import discover_numerically

        stabilizer, _ = discover_numerically(shifted)
    if stabilizer.kind != "monomial":
        return None, record
    value = _simplified(sigma_at(expr, center), seconds)
    return (
        AffineGroupDescription(
            "centered", center=center, center_value=value, stabilizer=stabilizer
        ),
        record,
    )


def _periodic_candidate(
    f: Any, translations: list[float], reflections: list[float]
) -> AffineGroupDescription | None:
    t = np.linspace(-POINT_RANGE, POINT_RANGE, 121)
    period = min(a for a in translations if a > 0)
    _, period_mu, period_b = _fit_residual(f, 1.0, period, t)
    values: dict[str, Any] = {
        "period": _exact_guess(period),
        "period_mu": _exact_guess(period_mu),
        "period_b": _exact_guess(period_b),
    }
    if reflections:
        shift = min(reflections, key=abs)
        _, reflection_mu, reflection_b = _fit_residual(f, -1.0, shift, t)
        values["center"] = _exact_guess(shift / 2)
        values["reflection_mu"] = _exact_guess(reflection_mu)
        values["reflection_b"] = _exact_guess(reflection_b)
    try:
        return AffineGroupDescription("periodic", **values)
    except SymgroupsError:
        return None


def generator_steps(group: AffineGroupDescription) -> list[dict[str, Any]]:
    """Return ``element`` claims for the generators of a periodic group."""
    if group.kind != "periodic":
        return []
    pairs = [(sympy.Integer(1), group.period, group.period_mu, group.period_b)]
    if group.center is not None:
        pairs.append(
            (
                sympy.Integer(-1),
                2 * group.center,
                group.reflection_mu,
                group.reflection_b,
            )
        )
    keys = ("lam", "a", "mu", "b")
    return [
        {"claim": "element", **{k: exact_text(v) for k, v in zip(keys, p, strict=True)}}
        for p in pairs
    ]


def affine_evidence(
    expr: sympy.Expr, group: AffineGroupDescription, seed: int
) -> dict[str, Any]:
    """Check ``sigma(lam t + a) = mu sigma(t) + b`` at sampled elements and points.

    Near misses (``lam`` scaled by 1.05, ``a`` moved by 0.3) are fitted with
    their best ``(mu, b)``, and must fail by at least :data:`NEAR_MISS_MIN`,
    unless the group is ``full``, which has no outside.
    """
    rng = np.random.default_rng(seed)
    f = _evaluator(expr)
    lam, a = group.sample(rng, EVIDENCE_ELEMENTS)
    mu, b = group.mu_b(lam, a)
    t = rng.uniform(-POINT_RANGE, POINT_RANGE, EVIDENCE_POINTS)
    worst = 0.0
    for i in range(EVIDENCE_ELEMENTS):
        left = f(lam[i] * t + a[i])
        right = mu[i] * f(t) + b[i]
        scale = 1.0 + np.abs(left) + np.abs(right)
        keep = np.isfinite(left) & np.isfinite(right)
        if keep.any():
            worst = max(worst, float(np.max(np.abs(left - right)[keep] / scale[keep])))
    evidence: dict[str, Any] = {
        "method": "sampled elements and points, float64",
        "seed": seed,
        "dtype": "float64",
        "n_elements": EVIDENCE_ELEMENTS,
        "n_points": EVIDENCE_POINTS,
        "point_range": [-POINT_RANGE, POINT_RANGE],
        "tolerance": EVIDENCE_TOL,
        "group_residual": worst,
    }
    passed = worst <= EVIDENCE_TOL
    if group.kind != "full":
        misses = [
            _fit_residual(f, lam[i] * 1.05, a[i] + 0.3, t)[0]
            for i in range(min(8, EVIDENCE_ELEMENTS))
        ]
        evidence["near_miss_residual"] = float(min(misses))
        evidence["near_miss_min"] = NEAR_MISS_MIN
        evidence["near_miss_passed"] = bool(min(misses) >= NEAR_MISS_MIN)
    evidence["passed"] = bool(passed)
    return evidence


# ----------------------------------------------------------------------
# Entry points


def compute_affine_result(
    activation: Activation,
    linear: QueryResult | None,
    seed: int,
    step_timeout: float,
) -> AffineQueryResult:
    """Prove what can be proved, then back it with numeric evidence.

    Runs inside the worker process.
    """
    check_real_valued(activation.expr)
    linear_steps = [] if linear is None else linear.steps
    prover = _AffineProver(activation.expr, linear_steps, step_timeout)
    group = prover.run()
    notes = list(prover.notes)
    if group is not None:
        evidence = affine_evidence(activation.expr, group, seed)
        if not evidence["passed"]:
            notes.append(
                "the proved affine group failed its numeric check; this is a bug in "
                "symgroups or in sympy"
            )
            return AffineQueryResult(
                activation, "undecided", None, linear, prover.steps, evidence, notes
            )
        return AffineQueryResult(
            activation, "proved", group, linear, prover.steps, evidence, notes
        )
    candidate, search = numeric_candidate(activation.expr, step_timeout)
    if candidate is None:
        notes.append(
            "the numeric search found translations "
            f"{[round(v, 6) for v in search['translations_by']]}, but no exact "
            "generators fit them"
        )
        return AffineQueryResult(
            activation, "undecided", None, linear, prover.steps, search, notes
        )
    unproved = [s for s in generator_steps(candidate) if not prover.keep(s)]
    for step in unproved:
        notes.append(
            f"the generator ({step['lam']}, {step['a']}) was not proved exactly"
        )
    if candidate.kind == "periodic" and not unproved:
        # NOTE: that the period is the smallest one and that no other pairs
        # exist rests on the numeric search, so the result stays numeric.
        notes.append(
            "the generators are proved exactly; that they generate the whole group "
            "rests on the numeric search"
        )
    proved = deduce_affine(prover.steps)
    if proved is not None and proved != candidate:
        notes.append("the numeric candidate contradicts the proved steps")
        return AffineQueryResult(
            activation, "undecided", None, linear, prover.steps, search, notes
        )
    evidence = affine_evidence(activation.expr, candidate, seed)
    evidence["search"] = search
    if not (evidence["passed"] and evidence.get("near_miss_passed", True)):
        notes.append("the numerically found affine group failed its own check")
        return AffineQueryResult(
            activation, "undecided", None, linear, prover.steps, evidence, notes
        )
    return AffineQueryResult(
        activation,
        "numerically_verified",
        candidate,
        linear,
        prover.steps,
        evidence,
        notes,
    )


def query_affine(
    spec: str | sympy.Basic | Activation,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = DEFAULT_SEED,
    timeout: float = DEFAULT_TOTAL_TIMEOUT,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
) -> AffineQueryResult:
    """Compute the affine scalar group of an activation.

    The group is every pair ``(lam, a)``, ``lam != 0``, for which some
    ``(mu, b)`` gives ``sigma(lam t + a) = mu sigma(t) + b`` for all real
    ``t``. On ``R^n`` with biases, the affine intertwiners of
    ``x -> sigma(A x + c)`` are ``A = P diag(lam)`` with one such pair per
    unit (``docs/affine.md``). The linear group comes from
    :func:`symgroups.query`; the affine search runs in a worker process
    terminated after ``timeout`` seconds, each sympy call limited to
    ``step_timeout`` seconds.

    Returns
    -------
    AffineQueryResult
        With status ``proved``, ``numerically_verified`` or ``undecided``.
    """
    from ._query import resolve_activation, validate_search_arguments

    validate_search_arguments(seed, timeout, step_timeout)
    activation = resolve_activation(spec, params)
    linear = query(activation, seed=seed, timeout=timeout, step_timeout=step_timeout)
    from . import _numeric  # noqa: F401  (imported once, inherited by the worker)

    outcome = run_in_worker(
        compute_affine_result,
        activation,
        linear,
        seed,
        step_timeout,
        timeout=timeout,
    )
    if outcome.status == "ok":
        return outcome.value
    if outcome.status == "error" and isinstance(outcome.error, SymgroupsError):
        raise outcome.error
    if outcome.status == "error":
        logger.error(
            "affine analysis of %s failed: %s", activation.text, outcome.detail
        )
        note = f"the analysis failed: {outcome.detail.strip().splitlines()[-1]}"
    else:
        note = (
            f"the analysis stopped at the {timeout:g} s deadline "
            f"({outcome.detail}); raise --timeout to search longer"
        )
    return AffineQueryResult(activation, "undecided", None, linear, notes=[note])
