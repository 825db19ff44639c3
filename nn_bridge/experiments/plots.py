"""PNG figures of the sweep results, drawn with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Resolution of the written figures, in dots per inch.
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> None:
    """Write ``figure`` to ``path`` as PNG, atomically, and close it."""
    from symgroups._files import atomic_write

    def write(temporary: str) -> None:
        figure.tight_layout()
        figure.savefig(temporary, dpi=DPI, bbox_inches="tight", format="png")

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, write)
    finally:
        _pyplot().close(figure)


def _grouped_bars(
    axis: Any,
    labels: list[str],
    series: dict[str, list[float]],
    errors: dict[str, list[float]] | None = None,
) -> None:
    positions = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for index, (name, values) in enumerate(series.items()):
        offset = (index - (len(series) - 1) / 2) * width
        axis.bar(
            positions + offset,
            values,
            width,
            label=name,
            yerr=None if errors is None else errors[name],
            capsize=2,
        )
    axis.set_xticks(positions)
    axis.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)


def _families(summary: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(entry["family"] for entry in summary))


def _labels(entries: list[dict[str, Any]]) -> list[str]:
    return list(
        dict.fromkeys(f"{entry['activation']} {entry['layer']}" for entry in entries)
    )


def plot_stitching(results: dict[str, Any], directory: Path) -> list[Path]:
    """Draw stitched accuracy per kind and the affine layers' distance to the group."""
    plt = _pyplot()
    summary = results["summary"]
    families = _families(summary)
    written = []

    figure, axes = plt.subplots(
        len(families), 1, figsize=(11, 4 * len(families)), squeeze=False
    )
    for axis, family in zip(axes[:, 0], families, strict=True):
        entries = [e for e in summary if e["family"] == family]
        labels = _labels(entries)
        kinds = list(dict.fromkeys(e["kind"] for e in entries))
        lookup = {(f"{e['activation']} {e['layer']}", e["kind"]): e for e in entries}
        series = {
            kind: [lookup[(label, kind)]["accuracy_mean"] for label in labels]
            for kind in kinds
        }
        errors = {
            kind: [lookup[(label, kind)]["accuracy_std"] for label in labels]
            for kind in kinds
        }
        series_with_endpoints = {"endpoints (mean)": []}
        series_with_endpoints["endpoints (mean)"] = [
            lookup[(label, kinds[0])]["endpoint_accuracy_mean"] for label in labels
        ]
        _grouped_bars(axis, labels, series, errors)
        axis.scatter(
            np.arange(len(labels)),
            series_with_endpoints["endpoints (mean)"],
            marker="_",
            s=600,
            color="black",
            zorder=3,
            label="endpoints (mean of A and B)",
        )
        axis.set_ylim(0.0, 1.0)
        axis.set_ylabel("stitched test accuracy")
        axis.set_title(f"{family}: stitched accuracy by stitching layer")
        axis.legend(fontsize=7, ncol=3, loc="lower left")
    path = directory / "stitching_accuracy.png"
    save_figure(figure, path)
    written.append(path)

    figure, axes = plt.subplots(
        1, len(families), figsize=(6 * len(families), 4), squeeze=False
    )
    for axis, family in zip(axes[0], families, strict=True):
        entries = [
            e for e in summary if e["family"] == family and e["kind"] == "affine"
        ]
        labels = _labels(entries)
        series = {
            "learned affine W": [e["group_distance_mean"] for e in entries],
            "random W, same norm": [e["random_distance_mean"] for e in entries],
        }
        _grouped_bars(axis, labels, series)
        axis.set_ylabel("relative distance to nearest element of phi(G)")
        axis.set_title(f"{family}: affine stitching matrices vs the group")
        axis.legend(fontsize=7)
    path = directory / "stitching_distance.png"
    save_figure(figure, path)
    written.append(path)
    return written


def plot_similarity(results: dict[str, Any], directory: Path) -> list[Path]:
    """Draw the three measures across seed pairs and the invariance table."""
    plt = _pyplot()
    summary = results["summary"]
    families = _families(summary)
    written = []

    figure, axes = plt.subplots(
        len(families), 1, figsize=(11, 4 * len(families)), squeeze=False
    )
    for axis, family in zip(axes[:, 0], families, strict=True):
        entries = [e for e in summary if e["family"] == family]
        labels = _labels(entries)
        series = {
            "1 - linear CKA": [1.0 - e["linear_cka_mean"] for e in entries],
            "Procrustes": [e["procrustes_mean"] for e in entries],
            "group dissimilarity": [e["group_dissimilarity_mean"] for e in entries],
            "group dissimilarity, B rotated": [
                e["group_dissimilarity_rotated_mean"] for e in entries
            ],
        }
        errors = {
            "1 - linear CKA": [e["linear_cka_std"] for e in entries],
            "Procrustes": [e["procrustes_std"] for e in entries],
            "group dissimilarity": [e["group_dissimilarity_std"] for e in entries],
            "group dissimilarity, B rotated": [
                e["group_dissimilarity_rotated_std"] for e in entries
            ],
        }
        _grouped_bars(axis, labels, series, errors)
        axis.set_ylabel("dissimilarity across seeds (0 = same)")
        axis.set_title(f"{family}: representations of different seeds")
        axis.legend(fontsize=7, ncol=2)
    path = directory / "similarity_measures.png"
    save_figure(figure, path)
    written.append(path)

    tables = results["invariance"]
    first_layer = [t for t in tables if t["layer"] == tables[0]["layer"]]
    chosen = [t for t in first_layer if t["family"] == first_layer[0]["family"]]
    figure, axes = plt.subplots(
        1, len(chosen), figsize=(3.2 * len(chosen) + 2, 3.6), squeeze=False
    )
    for axis, table in zip(axes[0], chosen, strict=True):
        rows = table["rows"]
        measures = [key for key in rows[0] if key != "transform"]
        values = np.array([[row[m] for m in measures] for row in rows])
        axis.imshow(
            values > INVARIANCE_THRESHOLD,
            cmap="RdYlGn_r",
            vmin=0,
            vmax=1,
            aspect="auto",
        )
        for (i, j), value in np.ndenumerate(values):
            axis.text(j, i, f"{abs(value):.1g}", ha="center", va="center", fontsize=7)
        axis.set_xticks(range(len(measures)))
        axis.set_xticklabels(measures, rotation=45, ha="right", fontsize=7)
        axis.set_yticks(range(len(rows)))
        labels = [row["transform"] for row in rows] if axis is axes[0][0] else []
        axis.set_yticklabels(labels, fontsize=7)
        axis.set_title(f"{table['activation']} ({table['family']} {table['layer']})")
    figure.suptitle(
        "|d(X, X T)| per measure: green = invariant (below 1e-6)", fontsize=9
    )
    path = directory / "similarity_invariance.png"
    save_figure(figure, path)
    written.append(path)
    return written


#: Values below this count as invariant in the invariance figure.
INVARIANCE_THRESHOLD = 1e-6
