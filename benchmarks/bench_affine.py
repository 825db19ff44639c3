"""Time the affine query on the catalogue and the affine apply on a sigmoid MLP.

Targets: ``symgroups.query_affine`` of every catalogue entry under 60 s in
total on 2 cores, each in a fresh worker with no affine cache; and
``nn_bridge.apply_affine_transform`` (``check=False``) at most 1.5x the time
of ``apply_transform`` of the linear part on the same model. Run
``python benchmarks/bench_affine.py``; it prints the figures and makes no
assertion.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

import symgroups
from nn_bridge import apply_affine_transform, apply_transform, find_affine_symmetries

#: Timed runs per apply measurement; the median is reported.
REPEATS = 15

#: CPU threads, as on the 2-core machines the targets refer to.
THREADS = 2

#: Widths of the sigmoid MLP of the apply measurement.
WIDTHS = (784, 2048, 2048, 2048, 10)


def interleaved_medians(first, second, repeats: int = REPEATS) -> tuple[float, float]:
    """Time two functions in alternation, so that load from other processes
    falls on both alike; return the two medians."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for function, record in zip((first, second), times, strict=True):
            start = time.perf_counter()
            function()
            record.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def time_queries() -> None:
    total = 0.0
    rows = []
    for name in symgroups.CATALOGUE:
        start = time.perf_counter()
        result = symgroups.query_affine(name)
        seconds = time.perf_counter() - start
        total += seconds
        rows.append((name, result.status, seconds))
    for name, status, seconds in sorted(rows, key=lambda row: -row[2]):
        print(f"  {name:<12} {status:<21} {seconds:6.2f} s")
    print(f"affine query, {len(rows)} catalogue entries: {total:.1f} s (target < 60 s)")


def sigmoid_mlp() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for index in range(len(WIDTHS) - 1):
        layers.append(nn.Linear(WIDTHS[index], WIDTHS[index + 1]))
        if index < len(WIDTHS) - 2:
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers).eval()


def time_apply() -> None:
    model = sigmoid_mlp()
    inputs = torch.randn(4, WIDTHS[0])
    spec = find_affine_symmetries(model, inputs)
    transform = spec.sample(seed=0)
    linear, affine = interleaved_medians(
        lambda: apply_transform(model, spec.linear, transform.linear, check=False),
        lambda: apply_affine_transform(model, spec, transform, check=False),
    )
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"sigmoid MLP {WIDTHS} ({parameters / 1e6:.1f} M float32 parameters), "
        f"{len(spec.sites)} affine sites"
    )
    print(f"apply_transform (linear part): {linear:.3f} s")
    print(
        f"apply_affine_transform: {affine:.3f} s = {affine / linear:.2f}x the "
        "linear apply (target <= 1.5x)"
    )


def main() -> None:
    torch.set_num_threads(THREADS)
    print(f"threads: {THREADS}")
    time_queries()
    time_apply()


if __name__ == "__main__":
    main()
