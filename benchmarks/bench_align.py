"""Benchmark nn_bridge alignment against the ``rebasin`` package, side by side.

Run ``python benchmarks/bench_align.py`` from the repository root. It prints
Markdown tables with the command, date and machine:

1. Planted transforms: B is A moved by a random element of its whole group
   (``spec.sample``: permutations, signs, positive scalings as the
   activations allow). The share of trials where alignment gives back A's
   weights to :data:`RECOVERY_ATOL`, for a plain MLP, a residual MLP and a
   CNN with BatchNorm, each with ReLU, tanh and GELU units.
2. Independently trained pairs on the scikit-learn digits: the test-loss
   barrier of the straight path from A to aligned B (BatchNorm statistics
   re-estimated on the training data for the CNN).
3. The runtime ratio of ours to rebasin's on every pair of tables 1 and 2.
4. Scale: aligning two MLPs with hidden width :data:`SCALE_WIDTH`, with wall
   time and peak resident memory, each in a fresh subprocess.

``rebasin`` (PyPI, 0.0.47 when written) is not a dependency of this project:
install it with ``pip install --no-deps rebasin`` and then its imports
(``torchview``, ``graphviz``) with ``pip install -c constraints.txt``. When
it is missing or fails on a model, its columns show that instead.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from nn_bridge import apply_transform, find_symmetries  # noqa: E402
from nn_bridge._align import align  # noqa: E402
from nn_bridge._merge import interpolate  # noqa: E402

#: A planted transform counts as recovered when every weight of aligned B
#: is within this of A's.
RECOVERY_ATOL = 1e-6

#: A rebasin result whose outputs differ from B's by more than this (relative
#: to B's largest output) no longer computes B's function and is flagged.
FUNCTION_RTOL = 1e-4

#: Training images whose hidden activations ``method="activations"`` correlates.
ACTIVATION_SAMPLES = 512

#: Planted trials per model (one random group element each).
PLANTED_TRIALS = 5

#: Independently trained pairs per model (seeds 2k and 2k + 1).
TRAINED_PAIRS = 3

#: Full-batch Adam steps and learning rate of the digits models.
TRAIN_STEPS = 300
TRAIN_LR = 1e-2

#: Hidden width of the scale test, and its input and output widths.
SCALE_WIDTH = 4096
SCALE_IN, SCALE_OUT = 64, 10

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "ReLU": nn.ReLU,
    "tanh": nn.Tanh,
    "GELU": nn.GELU,
}


class ResidualMLP(nn.Module):
    """``x -> act(W_in x) -> h + act(W_k h) (twice) -> W_out h``."""

    def __init__(
        self, features: int, hidden: int, classes: int, activation: type[nn.Module]
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(features, hidden)
        self.blocks = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(2)])
        self.out = nn.Linear(hidden, classes)
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.inp(x))
        for block in self.blocks:
            h = h + self.act(block(h))
        return self.out(h)


def plain_mlp(activation: type[nn.Module]) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 48), activation(), nn.Linear(48, 48), activation(),
        nn.Linear(48, 10),
    )  # fmt: skip


def residual_mlp(activation: type[nn.Module]) -> nn.Module:
    return ResidualMLP(64, 48, 10, activation)


class Unflatten(nn.Module):
    """Reshape ``(N, 64)`` digits to ``(N, 1, 8, 8)`` images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 1, 8, 8)


def bn_cnn(activation: type[nn.Module]) -> nn.Module:
    return nn.Sequential(
        Unflatten(),
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), activation(),
        nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.BatchNorm2d(24), activation(),
        nn.Flatten(), nn.Linear(24 * 4 * 4, 10),
    )  # fmt: skip


FAMILIES: dict[str, Callable[[type[nn.Module]], nn.Module]] = {
    "MLP": plain_mlp,
    "residual MLP": residual_mlp,
    "CNN + BatchNorm": bn_cnn,
}


def build(family: str, activation: str, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FAMILIES[family](ACTIVATIONS[activation])


# ----------------------------------------------------------------------
# rebasin


def rebasin_version() -> str | None:
    try:
        import importlib.metadata

        import rebasin  # noqa: F401

        return importlib.metadata.version("rebasin")
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return None


def run_rebasin(
    model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor
) -> tuple[nn.Module | None, float, str]:
    """Align a copy of B with rebasin's weight matching; (model, seconds, error)."""
    from rebasin import PermutationCoordinateDescent

    moved = copy.deepcopy(model_b)
    started = time.perf_counter()
    try:
        matcher = PermutationCoordinateDescent(model_a, moved, inputs)
        matcher.rebasin()
    except Exception as error:  # noqa: BLE001 - reported in the table
        text = str(error).splitlines()[0] if str(error) else ""
        return None, time.perf_counter() - started, f"{type(error).__name__}: {text}"
    return moved.eval(), time.perf_counter() - started, ""


def function_deviation(
    model_b: nn.Module, moved: nn.Module, inputs: torch.Tensor
) -> float:
    """Max ``|f_moved - f_B|`` over ``inputs``, relative to max ``|f_B|``."""
    with torch.no_grad():
        reference = model_b.eval()(inputs).double()
        other = moved.eval()(inputs).double()
    scale = max(float(reference.abs().max()), 1e-30)
    return float((other - reference).abs().max()) / scale


def weight_distance(model_a: nn.Module, model_b: nn.Module) -> float:
    """``sum ||T_A - T_B||^2 / sum ||T_A||^2`` over floating-point tensors.

    Unlike the objective of :func:`nn_bridge._align.align`, it includes the
    tensors that no site acts on, so both tools are measured on one scale.
    """
    state_b = model_b.state_dict()
    numerator = denominator = 0.0
    for name, value in model_a.state_dict().items():
        if value.is_floating_point():
            numerator += float(((value.double() - state_b[name].double()) ** 2).sum())
            denominator += float((value.double() ** 2).sum())
    return numerator / denominator


def max_difference(model_a: nn.Module, model_b: nn.Module) -> float:
    state_b = model_b.state_dict()
    return max(
        float((value.double() - state_b[name].double()).abs().max())
        for name, value in model_a.state_dict().items()
        if value.is_floating_point()
    )


# ----------------------------------------------------------------------
# Tables


class Lines(list):
    """Table lines that are also printed, flushed, as they are appended."""

    def __init__(self, header: list[str]) -> None:
        super().__init__()
        for line in header:
            self.append(line)

    def append(self, line: str) -> None:
        print(line, flush=True)
        super().append(line)


def planted_table(use_rebasin: bool) -> tuple[list[str], list[float]]:
    lines = Lines(
        [
            "| model | units | ours recovered | rebasin recovered | ours s "
            "| rebasin s |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
    )
    ratios = []
    inputs = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    for family in FAMILIES:
        for activation in ACTIVATIONS:
            ours_ok = theirs_ok = 0
            ours_time = theirs_time = 0.0
            errors = set()
            for trial in range(PLANTED_TRIALS):
                model = build(family, activation, seed=100 + trial)
                if family == "CNN + BatchNorm":
                    warm(model, inputs)
                model.eval()
                spec = find_symmetries(model, inputs)
                moved = apply_transform(model, spec, spec.sample(trial))
                # Both tools pay for their own graph capture, so the spec is
                # found again inside the timed call.
                started = time.perf_counter()
                result = align(model, moved, inputs)
                ours_time += time.perf_counter() - started
                ours_ok += max_difference(model, result.aligned) <= RECOVERY_ATOL
                if use_rebasin:
                    theirs, seconds, error = run_rebasin(model, moved, inputs)
                    theirs_time += seconds
                    if theirs is None:
                        errors.add(error)
                    elif function_deviation(moved, theirs, inputs) > FUNCTION_RTOL:
                        errors.add("function changed")
                    else:
                        theirs_ok += max_difference(model, theirs) <= RECOVERY_ATOL
            theirs_cell = "not run"
            if use_rebasin:
                theirs_cell = f"{theirs_ok}/{PLANTED_TRIALS}"
                if errors:
                    theirs_cell += " (" + "; ".join(sorted(errors))[:80] + ")"
                ratios.append(ours_time / max(theirs_time, 1e-9))
            lines.append(
                f"| {family} | {activation} | {ours_ok}/{PLANTED_TRIALS} | "
                f"{theirs_cell} | {ours_time / PLANTED_TRIALS:.3f} | "
                f"{theirs_time / PLANTED_TRIALS:.3f} |"
            )
    return lines, ratios


def warm(model: nn.Module, inputs: torch.Tensor) -> None:
    """Give BatchNorm layers non-trivial statistics with a few train-mode passes."""
    model.train()
    with torch.no_grad():
        for step in range(3):
            model(inputs * (1.0 + step) + 0.5)
    model.eval()


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.data.astype(np.float32) / 16.0
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    x_train, x_test, y_train, y_test = train_test_split(
        x, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    return (
        torch.from_numpy(x_train),
        torch.from_numpy(y_train).long(),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test).long(),
    )


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    optimizer = torch.optim.Adam(model.parameters(), lr=TRAIN_LR)
    model.train()
    for _ in range(TRAIN_STEPS):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def trained_table(use_rebasin: bool) -> tuple[list[str], list[float]]:
    x_train, y_train, x_test, y_test = digits()
    lines = Lines(
        [
            "| model | units | pair | test acc A / B | barrier unaligned "
            "| barrier ours | barrier rebasin | barrier ours, activations "
            "| distance ours | distance rebasin | ours s | rebasin s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
    )
    ratios = []
    for family in FAMILIES:
        reset_bn = family == "CNN + BatchNorm"
        for activation in ACTIVATIONS:
            for pair in range(TRAINED_PAIRS):
                model_a = train(build(family, activation, 2 * pair), x_train, y_train)
                model_b = train(
                    build(family, activation, 2 * pair + 1), x_train, y_train
                )
                data = (x_train, x_test, y_test)
                ends = interpolate(model_a, model_b, (x_test, y_test), alphas=[0.0])
                accuracy = f"{ends.accuracies[0]:.3f} / {ends.accuracies[-1]:.3f}"
                started = time.perf_counter()
                ours = align(model_a, model_b, x_train[:64])
                ours_time = time.perf_counter() - started
                theirs_cell, theirs_time = "not run", 0.0
                theirs_distance = "not run"
                if use_rebasin:
                    theirs, theirs_time, error = run_rebasin(
                        model_a, model_b, x_train[:64]
                    )
                    if theirs is None:
                        theirs_cell = f"failed: {error[:60]}"
                    else:
                        barrier = path_barrier(model_a, theirs, data, reset_bn)
                        theirs_cell = f"{barrier:.4f}"
                        theirs_distance = f"{weight_distance(model_a, theirs):.4f}"
                        deviation = function_deviation(model_b, theirs, x_test)
                        if deviation > FUNCTION_RTOL:
                            theirs_cell += f" (function changed: {deviation:.2g})"
                    ratios.append(ours_time / max(theirs_time, 1e-9))
                unaligned = path_barrier(model_a, model_b, data, reset_bn)
                aligned = path_barrier(model_a, ours.aligned, data, reset_bn)
                # Activation matching needs data, so it is reported beside the
                # data-free comparison, not in place of it.
                by_activations = align(
                    model_a, model_b, x_train[:ACTIVATION_SAMPLES], method="activations"
                )
                activations = path_barrier(
                    model_a, by_activations.aligned, data, reset_bn
                )
                lines.append(
                    f"| {family} | {activation} | {pair} | {accuracy} | "
                    f"{unaligned:.4f} | {aligned:.4f} | {theirs_cell} | "
                    f"{activations:.4f} | "
                    f"{weight_distance(model_a, ours.aligned):.4f} | "
                    f"{theirs_distance} | "
                    f"{ours_time:.3f} | {theirs_time:.3f} |"
                )
    return lines, ratios


def path_barrier(
    model_a: nn.Module,
    model_b: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    reset_bn: bool,
) -> float:
    """Test-loss barrier from A to B, with BatchNorm reset on the training data."""
    x_train, x_test, y_test = data
    if reset_bn:
        return reset_barrier(model_a, model_b, x_train, x_test, y_test)
    return interpolate(model_a, model_b, (x_test, y_test)).barrier


def reset_barrier(
    model_a: nn.Module,
    model_b: nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
) -> float:
    """Test-loss barrier with BatchNorm statistics re-estimated on ``x_train``."""
    from nn_bridge._merge import interpolate_weights, reset_batchnorm

    alphas = [i / 10 for i in range(11)]
    losses = []
    for alpha in alphas:
        merged = interpolate_weights(model_a, model_b, alpha)
        reset_batchnorm(merged, [(x_train, None)])
        with torch.no_grad():
            losses.append(float(F.cross_entropy(merged(x_test), y_test)))
    return max(
        loss - ((1 - alpha) * losses[0] + alpha * losses[-1])
        for alpha, loss in zip(alphas, losses, strict=True)
    )


# ----------------------------------------------------------------------
# Scale


def scale_worker(kind: str) -> dict[str, Any]:
    """Align two width-SCALE_WIDTH MLPs in this process; time and peak RSS."""
    torch.set_num_threads(2)
    widths = (SCALE_IN, SCALE_WIDTH, SCALE_WIDTH, SCALE_OUT)

    def mlp(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return nn.Sequential(
                nn.Linear(widths[0], widths[1]), nn.ReLU(),
                nn.Linear(widths[1], widths[2]), nn.ReLU(),
                nn.Linear(widths[2], widths[3]),
            ).eval()  # fmt: skip

    inputs = torch.randn(8, SCALE_IN, generator=torch.Generator().manual_seed(0))
    model_a = mlp(0)
    spec = find_symmetries(model_a, inputs)
    if kind == "planted":
        model_b = apply_transform(model_a, spec, spec.sample(1))
    else:
        model_b = mlp(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = align(model_a, model_b, inputs, spec=spec, restarts=1)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "kind": kind,
        "seconds": seconds,
        "peak_rss_mib": peak / 1024,
        "rss_before_mib": before / 1024,
        "objective_after": result.objective_after,
        "recovered": kind == "planted"
        and max_difference(model_a, result.aligned) <= RECOVERY_ATOL,
    }


def scale_table() -> list[str]:
    lines = [
        f"| pair (width {SCALE_WIDTH}) | seconds | peak RSS MiB | RSS before align "
        "MiB | width^2 float64 MiB | objective after |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    square = SCALE_WIDTH**2 * 8 / 2**20
    for kind in ("planted", "independent"):
        completed = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--scale-worker", kind],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            tail = completed.stderr.strip().splitlines()[-1:] or ["no output"]
            lines.append(f"| {kind} | failed: {tail[0][:80]} | | | | |")
            continue
        row = json.loads(completed.stdout.strip().splitlines()[-1])
        label = kind + (" (recovered)" if row["recovered"] else "")
        lines.append(
            f"| {label} | {row['seconds']:.1f} | {row['peak_rss_mib']:.0f} | "
            f"{row['rss_before_mib']:.0f} | {square:.0f} | "
            f"{row['objective_after']:.3g} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=("planted", "trained", "scale"),
        help="leave out a table (repeatable)",
    )
    args = parser.parse_args()
    if args.scale_worker:
        print(json.dumps(scale_worker(args.scale_worker)))
        return 0
    version = rebasin_version()
    use_rebasin = version is not None
    print("## Alignment benchmark\n")
    print("Command: `python benchmarks/bench_align.py`  ")
    print(f"Date: {datetime.date.today().isoformat()}  ")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}, rebasin "
        f"{version or 'not installed'}\n"
    )
    ratios: list[float] = []
    if "planted" not in args.skip:
        print("### Planted transforms (share recovered to 1e-6)\n")
        _, planted_ratios = planted_table(use_rebasin)
        print()
        ratios += planted_ratios
    if "trained" not in args.skip:
        print("### Independently trained pairs on digits (test-loss barrier)\n")
        _, trained_ratios = trained_table(use_rebasin)
        print()
        ratios += trained_ratios
    if ratios:
        print("### Runtime ratio ours / rebasin\n")
        print(
            f"Median {np.median(ratios):.2f}, min {min(ratios):.2f}, max "
            f"{max(ratios):.2f} over {len(ratios)} rows (per row in the tables "
            "above).\n"
        )
    if "scale" not in args.skip:
        print("### Scale\n")
        print("\n".join(scale_table()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
