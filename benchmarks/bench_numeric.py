"""Compare the compiled evaluator of symgroups with hand-written numpy.

Run ``python -m benchmarks.bench_numeric`` from the repository root. It
prints one row per activation: evaluations per second of the hand-written
numpy function and of :func:`symgroups._numeric.compile_numpy` on the sympy
expression, their ratio (compiled / hand-written, so 1.0 is parity) and the
maximum relative difference of the two results. Each rate is the best of
``REPEATS`` timed calls on ``N_POINTS`` float64 points, after one warm-up call.

A relative difference near 1 means that the hand-written form lost every
digit somewhere. For GELU, ``1 + erf(u)`` rounds to 0 below ``u = -6``, where
the compiled ``erfc(-u)`` keeps the tail.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import scipy
import scipy.special
import sympy

from symgroups._numeric import compile_numpy
from symgroups._symbols import X

N_POINTS = 10**6
REPEATS = 5
SEED = 0

#: Standard deviation of the normal sample points.
POINT_SCALE = 3.0

#: (name, sympy expression, the same function written by hand in numpy).
CASES: list[tuple[str, sympy.Expr, Callable[[np.ndarray], np.ndarray]]] = [
    ("relu", sympy.Max(0, X), lambda x: np.maximum(x, 0.0)),
    (
        "gelu",
        X * (1 + sympy.erf(X / sympy.sqrt(2))) / 2,
        lambda x: 0.5 * x * (1.0 + scipy.special.erf(x / np.sqrt(2.0))),
    ),
    ("silu", X / (1 + sympy.exp(-X)), lambda x: x / (1.0 + np.exp(-x))),
    ("tanh", sympy.tanh(X), np.tanh),
    # The compiled softplus is logaddexp, so the hand-written one is too.
    ("softplus", sympy.log(1 + sympy.exp(X)), lambda x: np.logaddexp(0.0, x)),
]


def best_time(function: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> float:
    """Return the fastest of ``REPEATS`` timed calls, in seconds."""
    function(x)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function(x)
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def max_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    scale = np.maximum(np.abs(a), np.abs(b))
    scale = np.where(scale > 0.0, scale, 1.0)
    return float(np.max(np.abs(a - b) / scale))


def main() -> None:
    rng = np.random.default_rng(SEED)
    x = rng.normal(0.0, POINT_SCALE, size=N_POINTS)
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"date: {now}")
    print(f"machine: {platform.platform()}; {cpu_model()}; {os.cpu_count()} CPUs")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, sympy {sympy.__version__}"
    )
    print(
        f"{N_POINTS} float64 points from N(0, {POINT_SCALE:g}^2), "
        f"best of {REPEATS} runs"
    )
    print()

    header = (
        f"{'activation':<10} {'numpy evals/s':>14} {'compiled evals/s':>17} "
        f"{'ratio':>6} {'max rel diff':>13}"
    )
    print(header)
    print("-" * len(header))

    for name, expr, by_hand in CASES:
        compiled = compile_numpy(expr)
        difference = max_relative_difference(compiled(x), by_hand(x))
        hand_rate = N_POINTS / best_time(by_hand, x)
        compiled_rate = N_POINTS / best_time(compiled, x)
        ratio = compiled_rate / hand_rate
        print(
            f"{name:<10} {hand_rate:>14.3e} {compiled_rate:>17.3e} "
            f"{ratio:>6.2f} {difference:>13.2e}"
        )
    print()
    print("ratio: compiled / hand-written evaluations per second (1.00 is parity)")


if __name__ == "__main__":
    main()
