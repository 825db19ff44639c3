"""The main entry point: the intertwiner group of an activation, with its status."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy

from . import _cache
from ._activation import Activation
from ._analysis import prove_group
from ._errors import ParameterError, SymgroupsError, UnknownActivationError
from ._group import GroupDescription, IntertwinerGroup
from ._worker import DEFAULT_STEP_TIMEOUT, DEFAULT_TOTAL_TIMEOUT, run_in_worker

logger = logging.getLogger(__name__)

STATUSES = ("proved", "numerically_verified", "undecided")

#: Seed of the numeric evidence unless the caller gives one.
DEFAULT_SEED = 0


@dataclass(frozen=True)
class QueryResult:
    """The intertwiner group of one activation, with its status and proof.

    ``status`` is ``"proved"`` (every step of ``steps`` was checked exactly
    and they determine ``group``), ``"numerically_verified"`` (``group`` rests
    on the numeric ``evidence``, possibly with some proved steps) or
    ``"undecided"`` (``group`` is None; ``notes`` says what stayed open, and
    ``evidence`` may hold a numeric candidate).
    """

    activation: Activation
    status: str
    group: GroupDescription | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def matrix_group(self, n: int) -> IntertwinerGroup:
        """Return the group acting on ``R^n``; raises when none was found."""
        if self.group is None:
            raise SymgroupsError(
                f"the group of {self.activation.text} is undecided: "
                + "; ".join(self.notes)
            )
        return self.group.matrix_group(n)

    def describe(self) -> str:
        """Describe the group and phi in one line, or say that it is undecided."""
        if self.group is None:
            return "undecided"
        return self.group.describe()

    def to_json(self) -> dict[str, Any]:
        """Return the object that ``symgroups query --json`` prints."""
        from ._parse import expression_text

        return {
            "expression": expression_text(self.activation.expr),
            "name": self.activation.name,
            "params": {k: str(v) for k, v in self.activation.params.items()},
            "status": self.status,
            "group": None if self.group is None else self.group.to_json(),
            "description": self.describe(),
            "steps": self.steps,
            "evidence": self.evidence,
            "notes": self.notes,
        }


def resolve_activation(
    spec: str | sympy.Basic | Activation | Callable[..., Any],
    params: Mapping[str, Any] | None = None,
) -> Activation:
    """Turn a catalogue name, an expression text or a sympy expression into an
    :class:`Activation`.

    A string is a catalogue name when it is one; otherwise it is parsed as
    an expression in ``x`` with the safe parser. ``params`` applies only to
    catalogue names. A ``torch.nn.Module`` or a function of one tensor is
    traced and translated (see :func:`symgroups._fx.activation_from_code`),
    which raises ExpressionError when some operation has no translation.
    """
    from ._catalogue import CATALOGUE, get_activation
    from ._fx import activation_from_code, is_code
    from ._parse import check_expression, parse_expression

    if is_code(spec):
        if params:
            raise ParameterError("params apply only to catalogue names")
        return activation_from_code(spec)
    if isinstance(spec, Activation):
        if params:
            raise ParameterError("params apply only to catalogue names")
        return spec
    if isinstance(spec, sympy.Basic):
        if params:
            raise ParameterError("params apply only to catalogue names")
        return Activation("custom", check_expression(spec))
    if not isinstance(spec, str):
        raise UnknownActivationError(
            f"expected a catalogue name, an expression in x or a sympy expression, "
            f"got {spec!r}"
        )
    name = spec.strip()
    normalised = name.lower().replace("-", "_")
    if name in CATALOGUE or normalised in CATALOGUE:
        return get_activation(normalised, params)
    if params:
        raise ParameterError(
            f"--param applies only to catalogue names, and {name!r} is not one "
            "(see 'symgroups list')"
        )
    if name.isidentifier() and name not in ("x", "pi", "E"):
        # A bare word that is not in the catalogue is most likely a typo.
        return get_activation(name, None)
    return Activation("custom", parse_expression(name))


def query(
    spec: str | sympy.Basic | Activation | Callable[..., Any],
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = DEFAULT_SEED,
    timeout: float = DEFAULT_TOTAL_TIMEOUT,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
    use_cache: bool = True,
) -> QueryResult:
    """Compute the intertwiner group of an activation.

    The group ``G`` is every invertible ``A`` with ``sigma(A x) = B sigma(x)``
    for some ``B = phi(A)`` and all ``x``. The symbolic search runs in a
    worker process terminated after ``timeout`` seconds, each sympy call
    limited to ``step_timeout`` seconds; numeric evidence with ``seed`` backs
    every result. Proved catalogue results at default parameters come from a
    cache shipped with the package, tied to the package and sympy versions.

    Parameters
    ----------
    spec
        A catalogue name (``"relu"``), an expression in ``x``
        (``"Max(x, 0.2*x)"``), a sympy expression, an :class:`Activation`,
        or PyTorch code: an ``nn.Module`` or a function of one tensor. Code
        is traced with ``torch.fx`` and translated to an expression; when
        some operation has no translation, a warning lists it and the group
        is found by black-box numeric discovery of the code instead
        (status ``numerically_verified`` at best).
    params
        Catalogue parameters, for example ``{"negative_slope": "1/5"}``.

    Returns
    -------
    QueryResult
        With status ``proved``, ``numerically_verified`` or ``undecided``.
    """
    validate_search_arguments(seed, timeout, step_timeout)
    from ._fx import is_code, query_code

    if is_code(spec):
        if params:
            raise ParameterError("params apply only to catalogue names")
        return query_code(
            spec,
            seed=seed,
            timeout=timeout,
            step_timeout=step_timeout,
            use_cache=use_cache,
        )
    activation = resolve_activation(spec, params)
    if use_cache and seed == DEFAULT_SEED:
        cached = _cache.lookup(activation)
        if cached is not None:
            return cached
    # Import the numeric stack here, once, so that forked workers inherit it
    # instead of each paying for scipy's import.
    from . import _numeric  # noqa: F401

    outcome = run_in_worker(
        compute_result, activation, seed, step_timeout, timeout=timeout
    )
    if outcome.status == "ok":
        return outcome.value
    if outcome.status == "error" and isinstance(outcome.error, SymgroupsError):
        raise outcome.error
    if outcome.status == "error":
        logger.error("analysis of %s failed: %s", activation.text, outcome.detail)
        note = f"the analysis failed: {outcome.detail.strip().splitlines()[-1]}"
    else:
        note = (
            f"the analysis stopped at the {timeout:g} s deadline "
            f"({outcome.detail}); raise --timeout to search longer"
        )
    return QueryResult(activation, "undecided", None, notes=[note])


def validate_search_arguments(seed: Any, timeout: Any, step_timeout: Any) -> None:
    """Raise :class:`ParameterError` for an invalid seed or deadline.

    Deadlines are positive finite seconds, and the seed is an integer 0 or
    more; ``bool`` is rejected although it is an ``int``.
    """
    for label, value in (("timeout", timeout), ("step_timeout", step_timeout)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value < float("inf")
        ):
            raise ParameterError(
                f"{label} must be a positive number of seconds, got {value!r}"
            )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed must be a nonnegative integer, got {seed!r}")


def compute_result(
    activation: Activation, seed: int, step_timeout: float
) -> QueryResult:
    """Prove what can be proved, then back it with numeric evidence.

    Runs inside the worker process.
    """
    from ._numeric import discover_numerically

    check_real_valued(activation.expr)
    analysis = prove_group(activation.expr, step_timeout)
    notes = list(analysis.notes)
    group = analysis.group
    if group is not None:
        evidence = _evidence(activation.expr, group, seed)
        if evidence.get("passed", True):
            return QueryResult(
                activation, "proved", group, analysis.steps, evidence, notes
            )
        if evidence_supports_proof(evidence):
            notes.append(
                "the numeric near-miss checks could not tell some matrices outside "
                "the group from its elements in float64 (an activation whose values "
                "span many orders of magnitude does this); the proof does not "
                "depend on them"
            )
            return QueryResult(
                activation, "proved", group, analysis.steps, evidence, notes
            )
        notes.append(
            "the proved group failed its numeric check; this is a bug in symgroups "
            "or in sympy, please report it with this expression"
        )
        return QueryResult(
            activation, "undecided", None, analysis.steps, evidence, notes
        )
    candidate, discovery = discover_numerically(activation.expr, seed=seed)
    if analysis.timed_out:
        discovery = dict(discovery)
        discovery["candidate_group"] = candidate.to_json()
        return QueryResult(
            activation, "undecided", None, analysis.steps, discovery, notes
        )
    conflict = _conflict(analysis, candidate)
    if conflict:
        notes.append(f"numeric discovery disagrees with a proved step: {conflict}")
        discovery = dict(discovery)
        discovery["candidate_group"] = candidate.to_json()
        return QueryResult(
            activation, "undecided", None, analysis.steps, discovery, notes
        )
    evidence = _evidence(activation.expr, candidate, seed)
    evidence["discovery"] = discovery
    if candidate.kind != "degenerate" and not evidence.get("passed", False):
        notes.append("the numerically discovered group failed its own check")
        evidence["candidate_group"] = candidate.to_json()
        return QueryResult(
            activation, "undecided", None, analysis.steps, evidence, notes
        )
    return QueryResult(
        activation, "numerically_verified", candidate, analysis.steps, evidence, notes
    )


def evidence_supports_proof(evidence: dict[str, Any]) -> bool:
    """Whether numeric evidence agrees with a proved group.

    Sampled group elements must satisfy the law; near misses that float64
    cannot separate from the group are tolerated, because a proof rests on its
    steps, not on them.
    """
    if evidence.get("passed"):
        return True
    failures = evidence.get("failures", [])
    return bool(failures) and all(f.startswith("near miss") for f in failures)


def _evidence(expr: sympy.Expr, group: GroupDescription, seed: int) -> dict[str, Any]:
    from ._numeric import numeric_evidence

    if group.kind == "degenerate":
        return {"method": "none", "reason": "a constant activation has no phi"}
    return numeric_evidence(expr, group, seed=seed)


def _conflict(analysis: Any, candidate: GroupDescription) -> str:
    """Name a proved fact that the numeric candidate contradicts, if any."""
    proved_claims = {step.get("claim") for step in analysis.steps}
    if candidate.kind != "monomial" and "not_affine" in proved_claims:
        # A constant, linear or affine candidate comes from float64 samples
        # that cannot separate sigma from an affine map, such as
        # x + 1e-12 Abs(x); the exact step wins.
        return "sigma is proved not to be affine"
    deduction = analysis.deduction
    if deduction is None or candidate.kind != "monomial":
        return ""
    scalars = candidate.scalars
    if deduction.positive == "all" and scalars not in ("positive", "nonzero"):
        return "every positive scaling is proved to intertwine"
    if deduction.positive == "trivial" and scalars in ("positive", "nonzero"):
        return "positive scalings other than 1 are proved not to intertwine"
    has_negative = candidate.has_negative_scalars
    if deduction.reflection == "none" and has_negative:
        return "-1 is proved not to be in the scalar group"
    if deduction.reflection in ("1", "-1") and not has_negative:
        return "sigma(-x) = +-sigma(x) is proved"
    return ""


def check_real_valued(expr: sympy.Expr) -> None:
    """Reject an expression that is not a real number at some sample point."""
    from ._errors import ExpressionError
    from ._symbols import X

    for value in (
        -10,
        -2,
        -1,
        sympy.Rational(-1, 2),
        0,
        sympy.Rational(1, 2),
        1,
        2,
        10,
    ):
        result = expr.subs(X, value)
        if result.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise ExpressionError(
                f"sigma is not defined at x = {value} (got {result}); an activation "
                "must be a real number at every real x"
            )
        approx = complex(sympy.N(result, 15))
        if abs(approx.imag) > 1e-12 * max(1.0, abs(approx.real)):
            raise ExpressionError(
                f"sigma is not real at x = {value} (got {sympy.N(result, 6)}); an "
                "activation must be real-valued; write odd roots of negative "
                "numbers with Piecewise, for example "
                "Piecewise((-(-x)**(1/3), x < 0), (x**(1/3), True))"
            )
