"""Black-box discovery of intertwiner groups, and the Lie-algebra check.

:func:`discover` finds the intertwiner group of an elementwise function given
only as code (a numpy function, a torch function or a ``torch.nn.Module``)
from float64 samples, with the scan of
:func:`symgroups._numeric.discover_callable`. Its status is at best
``numerically_verified``: the samples are evidence, not proof.

:func:`lie_algebra_check` is an independent check of the continuous part of
a group. Differentiating ``sigma((I + eps X) x) = (I + eps Y) sigma(x)`` at
``eps = 0`` gives, for every output ``i`` and every ``x`` in ``R^n``,

    sigma'(x_i) * sum_j X_ij x_j - sum_j Y_ij sigma(x_j) = 0,

a linear system in the ``2 n^2`` unknowns ``(X, Y)``. Its null space over
enough sample points is the Lie algebra of the group of pairs ``(A, phi(A))``,
and its dimension must match the one the group description implies (see
:func:`expected_lie_dimension`).

torch is imported only when a torch callable is evaluated.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy

from ._activation import Activation
from ._errors import ExpressionError, ParameterError, SymgroupsError
from ._group import GroupDescription
from ._symbols import X

logger = logging.getLogger(__name__)

#: The undefined function that stands for a black-box activation in results.
BLACK_BOX = sympy.Function("sigma")

#: Backends of :func:`as_float64_function`.
BACKENDS = ("auto", "numpy", "torch")

#: Dimension ``n`` of the layer in the Lie-algebra check unless given.
DEFAULT_LIE_DIM = 3

#: Sample vectors ``x`` in ``R^n`` of the Lie-algebra check unless given.
DEFAULT_LIE_SAMPLES = 400

#: Magnitude range of the coordinates of the Lie-check samples (log-uniform,
#: both signs). Wide enough to see both the kink region and the tails of the
#: common activations, narrow enough that exp(x) stays far from overflow.
LIE_MAGNITUDES = (1e-2, 10.0)

#: A singular value ``s`` of the equilibrated Lie system counts as 0 when
#: ``s <= LIE_RTOL * s_max``. The five-point derivative below has a relative
#: error of about 1e-11 on smooth functions (truncation ``h^4`` with
#: ``h = 1e-3`` plus rounding ``eps / h``). Measured with n = 3 and seed 0
#: (``benchmarks/bench_custom.py`` prints them), the singular values of true
#: null directions stay below 1e-12 and the smallest nonzero one of common
#: activations is above 0.1, so 1e-6 leaves a wide margin on both sides. An
#: activation that is within 1e-6 of having a symmetry (``x**3 + 1e-9 x``)
#: is reported as having it.
LIE_RTOL = 1e-6

#: Relative step of the finite differences: ``h = LIE_STEP * min(1, |x|)``.
#: A step proportional to ``|x|`` near 0 never crosses a kink at 0.
LIE_STEP = 1e-3

#: A point is dropped from the Lie system when its one-sided derivatives
#: differ by more than this, relative to the size of ``sigma`` around it,
#: because the stencil then straddles a kink.
KINK_TOL = 1e-4

#: Relative tolerance of the elementwise check in :func:`discover`.
ELEMENTWISE_TOL = 1e-12


# --------------------------------------------------------------------------
# Evaluating code in float64
# --------------------------------------------------------------------------


def _is_torch_module(fn: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(fn, torch.nn.Module)


def _callable_name(fn: object) -> str:
    target = type(fn) if _is_torch_module(fn) else fn
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if name is None:
        return repr(fn)
    return f"{module}.{name}" if module else name


class Float64Function:
    """An elementwise function evaluated in float64 on numpy arrays.

    ``f(x)`` takes a float array of any shape and returns a new float64
    array of the same shape. ``backend`` is ``"numpy"`` (``fn`` is called on
    the numpy array) or ``"torch"`` (``fn`` is called on a float64 tensor
    copy of it, under ``torch.no_grad()``). A torch module is copied and
    converted to float64 when it has parameters or buffers of another float
    type, so the caller's module is never changed; it is evaluated in the
    mode (train or eval) it was given in. Floating-point warnings are
    silenced, and points where ``fn`` is undefined give NaN as ``fn`` returns.
    """

    def __init__(self, fn: Callable[..., Any], backend: str, name: str) -> None:
        self.fn = fn
        self.backend = backend
        self.name = name
        self._torch_fn: Callable[..., Any] | None = None

    def __call__(self, x: Any) -> np.ndarray:
        array = np.array(x, dtype=np.float64)  # a copy: fn may work in place
        if self.backend == "torch":
            value = self._call_torch(array)
        else:
            with np.errstate(all="ignore"):
                value = self.fn(array)
            value = _as_array(value, self.name)
        if value.shape != array.shape:
            if value.size == 1:
                return np.full(array.shape, float(value.reshape(-1)[0]))
            raise ExpressionError(
                f"{self.name} returned shape {value.shape} for input shape "
                f"{array.shape}; an activation must act elementwise"
            )
        return value

    def _call_torch(self, array: np.ndarray) -> np.ndarray:
        import torch

        fn = self._torch_function()
        with torch.no_grad():
            value = fn(torch.from_numpy(array))
        if not isinstance(value, torch.Tensor):
            raise ExpressionError(
                f"{self.name} returned {type(value).__name__}, not a tensor"
            )
        return value.detach().to(device="cpu", dtype=torch.float64).numpy().copy()

    def _torch_function(self) -> Callable[..., Any]:
        if self._torch_fn is None:
            self._torch_fn = _float64_module(self.fn)
        return self._torch_fn

    def __repr__(self) -> str:
        return f"Float64Function({self.name}, backend={self.backend!r})"


def _float64_module(fn: Callable[..., Any]) -> Callable[..., Any]:
    import torch

    if not isinstance(fn, torch.nn.Module):
        return fn
    tensors = list(fn.parameters()) + list(fn.buffers())
    needs_cast = any(
        t.is_floating_point() and t.dtype != torch.float64 for t in tensors
    )
    if not needs_cast:
        return fn
    return copy.deepcopy(fn).to(torch.float64)


def _as_array(value: Any, name: str) -> np.ndarray:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().to(device="cpu", dtype=torch.float64).numpy()
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ExpressionError(
            f"{name} returned {type(value).__name__}, which is not an array of "
            f"real numbers ({error})"
        ) from None


def as_float64_function(
    fn: Callable[..., Any], backend: str = "auto", *, name: str | None = None
) -> Float64Function:
    """Wrap ``fn`` as an elementwise float64 function on numpy arrays.

    With ``backend="auto"`` a ``torch.nn.Module`` uses torch; any other
    callable is first called on a small numpy array, and uses numpy when
    that returns an array of the same shape, torch otherwise. The law is
    ``as_float64_function(fn)(t) == fn(t)`` up to the float64 conversion.

    Raises
    ------
    ParameterError
        When ``fn`` is not callable or ``backend`` is not in :data:`BACKENDS`.
    ExpressionError
        When ``fn`` fails on both backends.
    """
    if not callable(fn):
        raise ParameterError(f"expected a callable activation, got {fn!r}")
    if backend not in BACKENDS:
        raise ParameterError(f"backend must be one of {BACKENDS}, got {backend!r}")
    label = name or _callable_name(fn)
    if backend != "auto":
        return Float64Function(fn, backend, label)
    if _is_torch_module(fn):
        module_fn = Float64Function(fn, "torch", label)
        try:
            # 13 points: a length that a layer with a fixed width rarely has.
            module_fn(np.linspace(-2.0, 2.0, 13))
        except Exception as error:  # user code: report it in one line
            raise ExpressionError(
                f"cannot evaluate {label} on a float64 tensor of 13 values "
                f"({type(error).__name__}: {error}); expected an elementwise "
                "activation"
            ) from None
        return module_fn
    probe = np.linspace(-2.0, 2.0, 9)
    numpy_error: Exception | None = None
    try:
        with np.errstate(all="ignore"):
            value = fn(probe.copy())
        if isinstance(value, np.ndarray) and value.shape == probe.shape:
            return Float64Function(fn, "numpy", label)
    except Exception as error:  # a failed numpy call selects torch
        numpy_error = error
    torch_fn = Float64Function(fn, "torch", label)
    try:
        torch_fn(probe)
    except Exception as error:
        reason = f"numpy: {numpy_error}; torch: {error}" if numpy_error else error
        raise ExpressionError(
            f"cannot evaluate {label} on a float64 numpy array or tensor ({reason})"
        ) from None
    return torch_fn


def check_elementwise(f: Callable[[np.ndarray], np.ndarray], name: str) -> None:
    """Raise unless ``f`` gives each entry the same value however it is batched.

    The values of ``f`` on a vector must equal those on its two halves and
    on the vector reshaped to a column, as they do for an elementwise map.
    Softmax, normalisations and other maps that mix entries fail this check.
    """
    t = np.linspace(-3.0, 3.0, 12) + 0.1
    whole = f(t)
    halves = np.concatenate([f(t[:5]), f(t[5:])])
    column = f(t.reshape(-1, 1)).reshape(-1)
    for other in (halves, column):
        same = np.isclose(other, whole, rtol=ELEMENTWISE_TOL, atol=0.0)
        same |= np.isnan(other) & np.isnan(whole)
        if not np.all(same):
            raise ExpressionError(
                f"{name} is not elementwise: its value at an entry depends on the "
                "other entries of the input; the intertwiner group is defined for "
                "activations that act on each entry separately"
            )


# --------------------------------------------------------------------------
# Black-box discovery
# --------------------------------------------------------------------------


def black_box_activation(name: str) -> Activation:
    """Return the :class:`Activation` that stands for code without an expression.

    Its expression is the undefined function ``sigma(x)``, so it cannot be
    proved or certified, only examined numerically.
    """
    return Activation(name, BLACK_BOX(X))


def discover(
    fn: Callable[..., Any],
    *,
    seed: int = 0,
    breakpoints: Sequence[float] = (),
    backend: str = "auto",
    name: str | None = None,
    lie_dim: int = DEFAULT_LIE_DIM,
    timeout: float | None = None,
    notes: Sequence[str] = (),
) -> Any:
    """Find the intertwiner group of elementwise code from float64 samples.

    ``fn`` is a numpy function, a torch function or a ``torch.nn.Module``
    (see :func:`as_float64_function`). The scan of
    :func:`symgroups._numeric.discover_callable` finds the scalar group
    (continuous parts, discrete generators such as the 2 of
    ``x*(2 + sin(2*pi*log2|x|))``) and the character; the group found is
    then checked like a proved one, by
    :func:`symgroups._numeric.callable_evidence`, and its Lie algebra by
    :func:`lie_algebra_check` in dimension ``lie_dim``. ``breakpoints`` are
    points where ``fn`` changes form, if known; they add sample points.

    The work runs in a worker process stopped after ``timeout`` seconds
    (default: the worker's total timeout), so slow code cannot hang.

    Returns
    -------
    QueryResult
        Status ``numerically_verified`` when the group found passes its
        checks, ``undecided`` otherwise. Its activation is named ``name``
        (default ``"callable: <qualified name>"``) and has the expression
        ``sigma(x)``. ``evidence["discovery"]`` is the scan record and
        ``evidence["lie_algebra"]`` the Lie check; ``notes`` gets a line when
        the Lie check disagrees.
    """
    from ._query import QueryResult
    from ._worker import DEFAULT_TOTAL_TIMEOUT, run_in_worker

    _validate_seed(seed)
    f = as_float64_function(fn, backend)
    label = name or f"callable: {f.name}"
    activation = black_box_activation(label)
    limit = DEFAULT_TOTAL_TIMEOUT if timeout is None else timeout
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
        raise ParameterError(f"timeout must be a positive number, got {timeout!r}")
    points = [float(b) for b in breakpoints]
    outcome = run_in_worker(
        _discover_result, f, activation, seed, points, lie_dim, list(notes),
        timeout=limit,
    )  # fmt: skip
    if outcome.status == "ok":
        return outcome.value
    if outcome.status == "error" and isinstance(outcome.error, SymgroupsError):
        raise outcome.error
    if outcome.status == "error":
        logger.error("black-box discovery of %s failed: %s", label, outcome.detail)
        note = f"the discovery failed: {outcome.detail.strip().splitlines()[-1]}"
    else:
        note = f"the discovery stopped at the {limit:g} s deadline ({outcome.detail})"
    return QueryResult(activation, "undecided", None, notes=[*notes, note])


def _validate_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed must be a nonnegative integer, got {seed!r}")


def _discover_result(
    f: Float64Function,
    activation: Activation,
    seed: int,
    breakpoints: list[float],
    lie_dim: int,
    notes: list[str],
) -> Any:
    """Discover, check and Lie-check the group of ``f``; runs in the worker."""
    from ._numeric import callable_evidence, discover_callable
    from ._query import QueryResult

    check_elementwise(f, f.name)
    candidate, discovery = discover_callable(
        f, label=f.name, breakpoints=breakpoints, seed=seed
    )
    if candidate.kind == "degenerate":
        evidence: dict[str, Any] = {
            "method": "none",
            "reason": "a constant activation has no phi",
        }
    else:
        evidence = callable_evidence(
            f, candidate, label=f.name, breakpoints=breakpoints, seed=seed
        )
    evidence["discovery"] = discovery
    lie = lie_algebra_check(f, candidate, n=lie_dim, seed=seed, breakpoints=breakpoints)
    evidence["lie_algebra"] = lie
    if not lie["agrees"]:
        notes.append(lie["note"])
    if candidate.kind != "degenerate" and not evidence.get("passed", False):
        notes.append("the numerically discovered group failed its own check")
        evidence["candidate_group"] = candidate.to_json()
        return QueryResult(activation, "undecided", None, [], evidence, notes)
    return QueryResult(
        activation, "numerically_verified", candidate, [], evidence, notes
    )


# --------------------------------------------------------------------------
# The Lie-algebra check
# --------------------------------------------------------------------------


def expected_lie_dimension(
    group: GroupDescription, n: int, constant: float | None = None
) -> int:
    """Return the dimension of the Lie algebra of pairs ``(A, phi(A))`` on ``R^n``.

    * ``general_linear`` (``sigma = a x``): every ``X`` with ``Y = X``, so ``n^2``.
    * ``affine_stabilizer`` (``sigma = a x + c``): ``X 1 = 0`` and ``Y = X``,
      so ``n^2 - n``.
    * ``monomial`` with ``positive`` or ``nonzero`` scalars: diagonal ``X``
      (the identity component of the scalings), so ``n``; with ``trivial``,
      ``sign`` or ``discrete`` scalars the group is discrete, so 0.
    * ``degenerate`` (``sigma = c``): ``phi`` is not unique and every ``X``
      works with every ``Y`` that has ``Y 1 = 0`` (``c != 0``) or any ``Y``
      (``c = 0``), so ``2 n^2 - n`` or ``2 n^2``; ``constant`` is ``c``.
    """
    if group.kind == "general_linear":
        return n * n
    if group.kind == "affine_stabilizer":
        return n * n - n
    if group.kind == "degenerate":
        if constant is None:
            raise ParameterError("a degenerate group needs the constant value")
        return 2 * n * n - (0 if constant == 0 else n)
    return n if group.scalars in ("positive", "nonzero") else 0


def _derivatives(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``sigma(x)``, ``sigma'(x)`` and a kink flag, elementwise.

    ``sigma'`` is the five-point central difference with step ``h = LIE_STEP
    * min(1, |x|)``. A point is flagged when the second-order one-sided
    differences from the left and from the right differ by more than
    ``KINK_TOL`` relative to the size of ``sigma`` and ``sigma'`` there.
    """
    h = LIE_STEP * np.minimum(1.0, np.abs(x))
    h = np.where(h > 0.0, h, LIE_STEP)
    offsets = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]).reshape((5,) + (1,) * x.ndim)
    values = f(x[None, ...] + offsets * h[None, ...])
    m2, m1, zero, p1, p2 = values
    with np.errstate(all="ignore"):
        central = (m2 - 8.0 * m1 + 8.0 * p1 - p2) / (12.0 * h)
        left = (3.0 * zero - 4.0 * m1 + m2) / (2.0 * h)
        right = (-3.0 * zero + 4.0 * p1 - p2) / (2.0 * h)
        size = np.maximum.reduce(
            [
                np.abs(central),
                np.abs(zero) / np.maximum(np.abs(x), 1.0),
                np.ones_like(x),
            ]
        )
        kink = ~(np.abs(left - right) <= KINK_TOL * size)
    return zero, central, kink


def _lie_system(value: np.ndarray, slope: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Return the rows of ``sigma'(x_i) (X x)_i - (Y sigma(x))_i = 0``.

    ``x``, ``value`` and ``slope`` have shape ``(m, n)``. The unknowns are
    ``X`` then ``Y``, each flattened row by row. Row ``i`` of an equation
    only involves row ``i`` of ``X`` and ``Y``, so the matrix is block
    diagonal; it is built whole anyway, because that is the system the law
    states.
    """
    m, n = x.shape
    rows = np.zeros((m * n, 2 * n * n))
    for i in range(n):
        block = slice(i * m, (i + 1) * m)
        rows[block, i * n : (i + 1) * n] = slope[:, i : i + 1] * x
        rows[block, n * n + i * n : n * n + (i + 1) * n] = -value
    return rows


def lie_algebra_check(
    f: Callable[[np.ndarray], np.ndarray],
    group: GroupDescription | None,
    *,
    n: int = DEFAULT_LIE_DIM,
    n_samples: int = DEFAULT_LIE_SAMPLES,
    seed: int = 0,
    breakpoints: Sequence[float] = (),
    rtol: float = LIE_RTOL,
) -> dict[str, Any]:
    """Compare the Lie algebra of the intertwiners with the group's, numerically.

    Samples ``n_samples`` vectors ``x`` in ``R^n`` (coordinates of both signs,
    log-uniform magnitudes in :data:`LIE_MAGNITUDES`), and stacks the
    linearised law ``sigma'(x_i) sum_j X_ij x_j - sum_j Y_ij sigma(x_j) = 0``
    for every output ``i`` into a matrix with ``2 n^2`` columns. Vectors with
    a non-finite value or a coordinate whose derivative stencil straddles a
    kink, or lies within ``10 h`` of a listed breakpoint, are dropped. Each
    row and then each column is scaled to unit norm (which keeps the rank),
    and the null-space dimension is the number of singular values ``s`` with
    ``s <= rtol * s_max`` (see :data:`LIE_RTOL` for the choice of 1e-6).

    Returns
    -------
    dict
        ``measured`` (the null-space dimension), ``expected`` (from
        :func:`expected_lie_dimension`, or None when ``group`` is None),
        ``agrees``, ``note`` (empty when they agree), the largest singular
        value counted as 0 and the smallest counted as nonzero (both
        relative to ``s_max``), and the sampling settings.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 16:
        raise ParameterError(f"n must be an integer from 1 to 16, got {n!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int):
        raise ParameterError(f"n_samples must be an integer, got {n_samples!r}")
    if n_samples < 2 * n:
        raise ParameterError(
            f"n_samples must be at least 2 n = {2 * n} to determine 2 n unknowns "
            f"per row, got {n_samples}"
        )
    if not isinstance(rtol, (int, float)) or not 0 < rtol < 1:
        raise ParameterError(f"rtol must be a number in (0, 1), got {rtol!r}")
    _validate_seed(seed)
    rng = np.random.default_rng(seed)
    low, high = (math.log(v) for v in LIE_MAGNITUDES)
    magnitudes = np.exp(rng.uniform(low, high, size=(n_samples, n)))
    x = magnitudes * rng.choice([-1.0, 1.0], size=(n_samples, n))
    value, slope, kink = _derivatives(f, x)
    keep = np.isfinite(value).all(axis=1) & np.isfinite(slope).all(axis=1)
    keep &= ~kink.any(axis=1)
    h = LIE_STEP * np.minimum(1.0, np.abs(x))
    for b in breakpoints:
        keep &= ~(np.abs(x - float(b)) <= 10.0 * h).any(axis=1)
    record: dict[str, Any] = {
        "method": "null space of the linearised intertwiner equation",
        "equation": "sigma'(x_i) * sum_j X_ij x_j - sum_j Y_ij sigma(x_j) = 0",
        "n": n,
        "unknowns": 2 * n * n,
        "seed": int(seed),
        "n_samples": int(n_samples),
        "dropped_samples": int(n_samples - keep.sum()),
        "magnitudes": list(LIE_MAGNITUDES),
        "derivative": f"five-point central difference, h = {LIE_STEP:g} * min(1, |x|)",
        "rtol": float(rtol),
    }
    if keep.sum() < 2 * n:
        record.update(measured=None, expected=None, agrees=False)
        record["note"] = (
            f"the Lie-algebra check kept only {int(keep.sum())} of {n_samples} "
            "samples (values not finite or kinks everywhere)"
        )
        return record
    rows = _lie_system(value[keep], slope[keep], x[keep])
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    norms = np.linalg.norm(rows, axis=0)
    rows /= np.where(norms > 0.0, norms, 1.0)
    singular = np.linalg.svd(rows, compute_uv=False)
    singular = np.concatenate([singular, np.zeros(rows.shape[1] - singular.size)])
    relative = singular / singular[0] if singular[0] > 0 else np.zeros_like(singular)
    null = relative <= rtol
    measured = int(null.sum())
    record["measured"] = measured
    record["largest_zero"] = float(relative[null].max()) if null.any() else None
    record["smallest_nonzero"] = float(relative[~null].min()) if (~null).any() else None
    expected = None
    if group is not None:
        constant = (
            float(np.nanmedian(value[keep])) if group.kind == "degenerate" else None
        )
        expected = expected_lie_dimension(group, n, constant)
    record["expected"] = expected
    record["agrees"] = expected is not None and measured == expected
    if group is None:
        record["note"] = "no group to compare with"
    elif measured != expected:
        record["note"] = (
            f"the Lie-algebra check finds a {measured}-dimensional algebra of "
            f"infinitesimal intertwiners in dimension {n}, but {group.describe()} "
            f"has a {expected}-dimensional one"
        )
    else:
        record["note"] = ""
    return record


def lie_check_of_result(
    result: Any, *, n: int = DEFAULT_LIE_DIM, seed: int = 0
) -> dict[str, Any]:
    """Return the Lie-algebra check of a :class:`symgroups.QueryResult`.

    A black-box result already carries one in ``evidence["lie_algebra"]``;
    for any other result the activation's expression is compiled
    (:func:`symgroups._numeric.compile_numpy`) and checked against the
    result's group, with the expression's breakpoints kept away from the
    derivative stencils.
    """
    stored = result.evidence.get("lie_algebra")
    if isinstance(stored, dict) and stored.get("n") == n:
        return stored
    if result.activation.expr.has(BLACK_BOX):
        raise SymgroupsError(
            f"{result.activation.name} has no expression and no stored Lie check"
        )
    from ._numeric import compile_numpy, find_breakpoints

    expr = result.activation.expr
    f = compile_numpy(expr)
    return lie_algebra_check(
        f, result.group, n=n, seed=seed, breakpoints=find_breakpoints(expr)
    )
