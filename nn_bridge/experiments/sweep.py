"""Sweeps over families, activations, seed pairs and layers, on joblib or Dask.

A sweep runs in two rounds of tasks: one task trains each (family, activation,
seed) model, then one task per (family, activation, seed pair, layer) stitches
or compares the pair. Every task seeds torch itself and runs on one thread, so
joblib processes, a Dask cluster and this process give identical numbers for
the same configuration.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import symgroups

from .._errors import InvalidArgumentError
from .data import load_digits_split
from .models import ACTIVATIONS, FAMILIES, hidden_layers
from .projection import representation_group
from .similarity import (
    as_unit_matrix,
    group_dissimilarity,
    linear_cka,
    procrustes_distance,
)
from .stitching import STITCH_KINDS, capture, layer_group, stitch_kinds
from .train import TrainConfig, TrainedModel, single_thread, train_model

logger = logging.getLogger(__name__)

#: Settings of ``--quick`` (the tests' mode) and of the full run.
QUICK_SEEDS = 2
QUICK_TRAIN = TrainConfig(epochs=15)
FULL_SEEDS = 5
FULL_TRAIN = TrainConfig(epochs=30)

#: Environment variable read for a Dask scheduler address.
DASK_SCHEDULER_ENV = "NN_BRIDGE_DASK_SCHEDULER"

#: Seconds to wait for a Dask scheduler to answer before giving up.
DASK_CONNECT_TIMEOUT = 10

#: Factor of the isotropic scaling in the invariance table.
ISOTROPIC_FACTOR = 2.5


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep covers: families, activations, number of seeds, training."""

    families: tuple[str, ...] = FAMILIES
    activations: tuple[str, ...] = tuple(ACTIVATIONS)
    seeds: int = FULL_SEEDS
    train: TrainConfig = field(default_factory=lambda: FULL_TRAIN)
    mode: str = "full"

    def __post_init__(self) -> None:
        for family in self.families:
            if family not in FAMILIES:
                raise InvalidArgumentError(
                    f"invalid family {family!r}: expected one of {', '.join(FAMILIES)}"
                )
        for activation in self.activations:
            if activation not in ACTIVATIONS:
                raise InvalidArgumentError(
                    f"invalid activation {activation!r}: expected one of "
                    f"{', '.join(ACTIVATIONS)}"
                )
        if not self.families or not self.activations:
            raise InvalidArgumentError(
                "invalid sweep: expected at least one family and one activation"
            )
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int):
            raise InvalidArgumentError(
                f"invalid seeds {self.seeds!r}: expected an integer >= 2"
            )
        if self.seeds < 2:
            raise InvalidArgumentError(
                f"invalid seeds {self.seeds!r}: expected an integer >= 2, because "
                "each comparison needs two models"
            )

    @classmethod
    def quick(cls, **overrides: Any) -> SweepConfig:
        """Return the configuration of ``--quick``, with ``overrides`` applied."""
        settings: dict[str, Any] = {
            "seeds": QUICK_SEEDS,
            "train": QUICK_TRAIN,
            "mode": "quick",
        }
        settings.update(overrides)
        return cls(**settings)

    def to_json(self) -> dict[str, Any]:
        return {
            "families": list(self.families),
            "activations": list(self.activations),
            "seeds": list(range(self.seeds)),
            "train": asdict(self.train),
            "mode": self.mode,
        }

    def model_keys(self) -> list[tuple[str, str, int]]:
        return [
            (family, activation, seed)
            for family in self.families
            for activation in self.activations
            for seed in range(self.seeds)
        ]

    def pair_keys(self) -> list[tuple[str, str, int, int, str]]:
        """List (family, activation, seed_a, seed_b, layer) for every seed pair."""
        return [
            (family, activation, seed_a, seed_b, layer)
            for family in self.families
            for activation in self.activations
            for seed_a, seed_b in itertools.combinations(range(self.seeds), 2)
            for layer in hidden_layers(family)
        ]


class Executor:
    """Runs a list of tasks on joblib processes or a Dask cluster, in order.

    ``jobs`` is the number of joblib processes (1 runs in this process).
    ``scheduler`` is a Dask scheduler address such as ``tcp://127.0.0.1:8786``;
    when it is set, tasks go to that cluster and ``jobs`` is ignored. A tqdm
    progress bar is drawn on stderr when ``progress`` is true.
    """

    def __init__(
        self, jobs: int = 1, scheduler: str | None = None, progress: bool = False
    ) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise InvalidArgumentError(
                f"invalid jobs {jobs!r}: expected a positive integer"
            )
        self.jobs = jobs
        self.scheduler = scheduler
        self.progress = progress
        self._client: Any = None

    @property
    def backend(self) -> str:
        return "dask" if self.scheduler else "joblib"

    def __enter__(self) -> Executor:
        if self.scheduler:
            from distributed import Client

            logger.info("connecting to Dask scheduler %s", self.scheduler)
            self._client = Client(self.scheduler, timeout=DASK_CONNECT_TIMEOUT)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def map(
        self, function: Callable[..., Any], tasks: Sequence[tuple], description: str
    ) -> list[Any]:
        """Return ``[function(*task) for task in tasks]``, computed in parallel."""
        from tqdm import tqdm

        bar = tqdm(
            total=len(tasks),
            desc=description,
            disable=not self.progress,
            file=sys.stderr,
            leave=False,
        )
        try:
            if self._client is not None:
                return self._map_dask(function, tasks, bar)
            return self._map_joblib(function, tasks, bar)
        finally:
            bar.close()

    def _map_joblib(
        self, function: Callable[..., Any], tasks: Sequence[tuple], bar: Any
    ) -> list[Any]:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=self.jobs, return_as="generator")
        results = []
        for result in parallel(delayed(function)(*task) for task in tasks):
            results.append(result)
            bar.update(1)
        return results

    def _map_dask(
        self, function: Callable[..., Any], tasks: Sequence[tuple], bar: Any
    ) -> list[Any]:
        from distributed import as_completed

        futures = [self._client.submit(function, *task, pure=False) for task in tasks]
        for _ in as_completed(futures):
            bar.update(1)
        return self._client.gather(futures)


def _train_task(
    family: str, activation: str, seed: int, config: TrainConfig
) -> TrainedModel:
    return train_model(family, activation, seed, config)


def _train_all(
    config: SweepConfig, executor: Executor
) -> dict[tuple[str, str, int], TrainedModel]:
    keys = config.model_keys()
    tasks = [(*key, config.train) for key in keys]
    models = executor.map(_train_task, tasks, "training")
    return dict(zip(keys, models, strict=True))


def _model_rows(models: dict[tuple[str, str, int], TrainedModel]) -> list[dict]:
    return [
        {
            "family": model.family,
            "activation": model.activation,
            "seed": model.seed,
            "train_accuracy": model.train_accuracy,
            "test_accuracy": model.test_accuracy,
        }
        for model in models.values()
    ]


def stitching_task(
    model_a: TrainedModel, model_b: TrainedModel, layer: str
) -> list[dict[str, Any]]:
    """Stitch one model pair at one layer with every kind; return JSON rows."""
    data = load_digits_split()
    results = stitch_kinds(
        model_a.build(), model_b.build(), layer, data, STITCH_KINDS, seed=model_a.seed
    )
    rows = []
    for result in results.values():
        row = {
            "family": model_a.family,
            "activation": model_a.activation,
            "seed_a": model_a.seed,
            "seed_b": model_b.seed,
        }
        row.update(result.to_json())
        rows.append(row)
    return rows


def _haar_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.normal(size=(n, n)))
    return Q * np.sign(np.diag(R))


def similarity_task(
    model_a: TrainedModel, model_b: TrainedModel, layer: str
) -> dict[str, Any]:
    """Compare one model pair at one layer on the test set with every measure.

    ``group_dissimilarity_rotated`` compares A with B's representation turned
    by a Haar-random orthogonal matrix. It is the value the group measure
    takes when B's units carry no privileged basis, so a real pair far below it
    is evidence that the units of the two networks correspond.
    """
    data = load_digits_split()
    with single_thread():
        net_a = model_a.build()
        net_b = model_b.build()
        group = layer_group(net_a, layer)
        X = as_unit_matrix(capture(net_a, layer, data.x_test).numpy())
        Y = as_unit_matrix(capture(net_b, layer, data.x_test).numpy())
        rng = np.random.default_rng([model_a.seed, model_b.seed])
        rotation = _haar_orthogonal(rng, Y.shape[1])
        return {
            "family": model_a.family,
            "activation": model_a.activation,
            "seed_a": model_a.seed,
            "seed_b": model_b.seed,
            "layer": layer,
            "group": representation_group(group).describe(),
            "linear_cka": linear_cka(X, Y),
            "procrustes": procrustes_distance(X, Y),
            "group_dissimilarity": group_dissimilarity(X, Y, group),
            "group_dissimilarity_rotated": group_dissimilarity(X, Y @ rotation, group),
        }


def _transforms(
    group: symgroups.GroupDescription, n: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Return named ``n x n`` maps, acting on the right, for the invariance table."""
    named = {
        "layer group phi(G)": representation_group(group).matrix_group(n).sample(rng),
        "permutation": np.eye(n)[rng.permutation(n)],
    }
    signs = np.ones(n)
    signs[: n // 2] = -1.0
    named["sign flips (half the units)"] = np.diag(signs)
    scales = np.exp(rng.normal(0.0, 0.5, size=n))
    named["positive scaling per unit"] = np.diag(scales)
    named[f"isotropic scaling x{ISOTROPIC_FACTOR}"] = ISOTROPIC_FACTOR * np.eye(n)
    named["orthogonal (Haar)"] = _haar_orthogonal(rng, n)
    return named


def invariance_task(model: TrainedModel, layer: str) -> dict[str, Any]:
    """Measure each representation against transformed copies of itself.

    Each entry is a dissimilarity of ``X`` and ``X T`` on the test set
    (``1 - CKA`` for CKA), so 0 means the measure ignores ``T``.
    """
    data = load_digits_split()
    with single_thread():
        net = model.build()
        group = layer_group(net, layer)
        X = as_unit_matrix(capture(net, layer, data.x_test).numpy())
        rng = np.random.default_rng(model.seed)
        rows = []
        for name, transform in _transforms(group, X.shape[1], rng).items():
            Y = X @ transform
            rows.append(
                {
                    "transform": name,
                    "1 - linear_cka": 1.0 - linear_cka(X, Y),
                    "procrustes": procrustes_distance(X, Y),
                    "group_dissimilarity": group_dissimilarity(X, Y, group),
                }
            )
    return {
        "family": model.family,
        "activation": model.activation,
        "seed": model.seed,
        "layer": layer,
        "group": representation_group(group).describe(),
        "rows": rows,
    }


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def _std(values: list[float]) -> float:
    return float(np.std(values))


def summarize_stitching(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Average stitching rows over seed pairs per family, activation, layer and kind.

    ``gap_to_affine`` is the mean accuracy of the kind minus that of the
    ``affine`` layer on the same pairs; ``endpoint_accuracy`` is the mean of
    both networks' own test accuracies.
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["family"], row["activation"], row["layer"], row["kind"])
        groups.setdefault(key, []).append(row)
    summary = []
    for (family, activation, layer, kind), members in groups.items():
        affine = groups[(family, activation, layer, "affine")]
        accuracies = [m["accuracy"] for m in members]
        entry = {
            "family": family,
            "activation": activation,
            "layer": layer,
            "kind": kind,
            "pairs": len(members),
            "accuracy_mean": _mean(accuracies),
            "accuracy_std": _std(accuracies),
            "endpoint_accuracy_mean": _mean(
                [(m["accuracy_a"] + m["accuracy_b"]) / 2 for m in members]
            ),
            "gap_to_affine": _mean(accuracies) - _mean([m["accuracy"] for m in affine]),
            "fit_error_mean": _mean([m["fit_error"] for m in members]),
        }
        if kind == "affine":
            entry["group_distance_mean"] = _mean([m["group_distance"] for m in members])
            entry["group_distance_std"] = _std([m["group_distance"] for m in members])
            entry["random_distance_mean"] = _mean(
                [m["random_distance"] for m in members]
            )
        summary.append(entry)
    return summary


def summarize_similarity(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Average each measure over seed pairs per family, activation and layer."""
    measures = (
        "linear_cka",
        "procrustes",
        "group_dissimilarity",
        "group_dissimilarity_rotated",
    )
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["family"], row["activation"], row["layer"]), []).append(
            row
        )
    summary = []
    for (family, activation, layer), members in groups.items():
        entry: dict[str, Any] = {
            "family": family,
            "activation": activation,
            "layer": layer,
            "pairs": len(members),
        }
        for measure in measures:
            values = [m[measure] for m in members]
            entry[f"{measure}_mean"] = _mean(values)
            entry[f"{measure}_std"] = _std(values)
        summary.append(entry)
    return summary


def run_stitching_sweep(config: SweepConfig, executor: Executor) -> dict[str, Any]:
    """Train the models of ``config`` and stitch every seed pair at every layer.

    Returns the JSON document that ``stitching`` writes: the configuration,
    the models' accuracies, one row per stitching layer and a summary.
    """
    start = time.perf_counter()
    models = _train_all(config, executor)
    tasks = [
        (models[(family, activation, a)], models[(family, activation, b)], layer)
        for family, activation, a, b, layer in config.pair_keys()
    ]
    nested = executor.map(stitching_task, tasks, "stitching")
    rows = [row for rows in nested for row in rows]
    return {
        "experiment": "stitching",
        "config": config.to_json(),
        "backend": executor.backend,
        "runtime_s": time.perf_counter() - start,
        "models": _model_rows(models),
        "results": rows,
        "summary": summarize_stitching(rows),
    }


def run_similarity_sweep(config: SweepConfig, executor: Executor) -> dict[str, Any]:
    """Train the models of ``config`` and compare every seed pair at every layer.

    Also measures, for seed 0 of each family and activation, each measure
    against transformed copies of the same representation (``invariance``).
    """
    start = time.perf_counter()
    models = _train_all(config, executor)
    tasks = [
        (models[(family, activation, a)], models[(family, activation, b)], layer)
        for family, activation, a, b, layer in config.pair_keys()
    ]
    rows = executor.map(similarity_task, tasks, "similarity")
    invariance_tasks = [
        (models[(family, activation, 0)], layer)
        for family in config.families
        for activation in config.activations
        for layer in hidden_layers(family)
    ]
    invariance = executor.map(invariance_task, invariance_tasks, "invariance")
    return {
        "experiment": "similarity",
        "config": config.to_json(),
        "backend": executor.backend,
        "runtime_s": time.perf_counter() - start,
        "models": _model_rows(models),
        "results": rows,
        "summary": summarize_similarity(rows),
        "invariance": invariance,
    }
