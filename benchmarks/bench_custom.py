"""Time the code paths of custom activations: tracing, discovery, Lie check.

Run ``python -m benchmarks.bench_custom`` from the repository root. It prints
three tables:

1. For each catalogue entry's torch module, the time of
   :func:`symgroups._fx.translate` (``torch.fx.symbolic_trace`` plus the
   sympy translation), best of ``REPEATS`` calls after one warm-up call.
   Target: under 50 ms per module.
2. For a few activations, the time of numeric discovery from the sympy
   expression (:func:`symgroups._numeric.discover_numerically`), from the
   torch module as a black box and from a numpy function as a black box
   (:func:`symgroups._numeric.discover_callable`), with the ratios of the
   black-box times to the expression time. Each is one call, seed 0. The
   last column is the whole :func:`symgroups.discover` on the torch module:
   the scan in a worker process, then the numeric check of the group found
   and the Lie-algebra check.
3. For the same activations, the Lie-algebra check in dimension 3: the
   null-space dimension and the singular values on both sides of the
   threshold (relative to the largest), which show the margin of
   :data:`symgroups._blackbox.LIE_RTOL`.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special
import sympy
import torch

from symgroups import CATALOGUE
from symgroups._blackbox import (
    LIE_RTOL,
    as_float64_function,
    discover,
    lie_algebra_check,
)
from symgroups._fx import translate
from symgroups._numeric import (
    compile_numpy,
    discover_callable,
    discover_numerically,
    find_breakpoints,
)

REPEATS = 5

#: (catalogue name, the same function written in numpy) for table 2 and 3.
DISCOVERY_CASES: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
    ("relu", lambda x: np.maximum(x, 0.0)),
    ("leaky_relu", lambda x: np.maximum(x, 0.01 * x)),
    ("tanh", np.tanh),
    ("gelu", lambda x: 0.5 * x * scipy.special.erfc(-x / np.sqrt(2.0))),
    ("silu", lambda x: x * scipy.special.expit(x)),
    ("sin", np.sin),
    ("power", np.square),
]


def best_time(function: Callable[[], Any]) -> float:
    """Return the fastest of ``REPEATS`` timed calls after one warm-up, in seconds."""
    function()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def once(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def translation_table() -> None:
    print("| module | translate (ms) | matches the catalogue expression |")
    print("|---|---|---|")
    worst = 0.0
    for name, entry in CATALOGUE.items():
        module = entry.torch_module()
        seconds = best_time(lambda m=module: translate(m))
        worst = max(worst, seconds)
        matches = translate(module).expr == entry.expression()
        print(f"| {name} | {seconds * 1e3:.1f} | {'yes' if matches else 'NO'} |")
    print(f"\nslowest: {worst * 1e3:.1f} ms (target: under 50 ms)\n")


def discovery_table() -> None:
    print(
        "| activation | expression (s) | torch black box (s) | ratio "
        "| numpy black box (s) | ratio | same group | discover() (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, numpy_function in DISCOVERY_CASES:
        entry = CATALOGUE[name]
        expr = entry.expression()
        breakpoints = find_breakpoints(expr)
        module_function = as_float64_function(entry.torch_module())
        numpy_wrapped = as_float64_function(numpy_function)
        t_expr, (g_expr, _) = once(lambda e=expr: discover_numerically(e))
        t_torch, (g_torch, _) = once(
            lambda f=module_function, b=breakpoints: discover_callable(f, breakpoints=b)
        )
        t_numpy, (g_numpy, _) = once(
            lambda f=numpy_wrapped, b=breakpoints: discover_callable(f, breakpoints=b)
        )
        module = entry.torch_module()
        t_full, result = once(lambda m=module: discover(m))
        same = g_expr == g_torch == g_numpy == result.group
        print(
            f"| {name} | {t_expr:.2f} | {t_torch:.2f} | {t_torch / t_expr:.2f} "
            f"| {t_numpy:.2f} | {t_numpy / t_expr:.2f} | {'yes' if same else 'NO'} "
            f"| {t_full:.2f} |"
        )
    print()


def lie_table() -> None:
    print(
        f"| activation | null space (n = 3) | largest zero | smallest nonzero "
        f"| time (ms) |  (threshold {LIE_RTOL:g})"
    )
    print("|---|---|---|---|---|")
    for name, _ in DISCOVERY_CASES:
        expr: sympy.Expr = CATALOGUE[name].expression()
        f = compile_numpy(expr)
        breakpoints = find_breakpoints(expr)
        seconds = best_time(
            lambda f=f, b=breakpoints: lie_algebra_check(f, None, breakpoints=b)
        )
        record = lie_algebra_check(f, None, breakpoints=breakpoints)
        zero = record["largest_zero"]
        zero_text = "-" if zero is None else f"{zero:.1e}"
        print(
            f"| {name} | {record['measured']} | {zero_text} | "
            f"{record['smallest_nonzero']:.2f} | {seconds * 1e3:.0f} |"
        )
    print()


def main() -> None:
    torch.set_num_threads(1)
    print(
        f"{datetime.date.today()}, Python {platform.python_version()}, torch "
        f"{torch.__version__}, sympy {sympy.__version__}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, torch with 1 thread\n"
    )
    translation_table()
    discovery_table()
    lie_table()


if __name__ == "__main__":
    main()
