"""Stitching and similarity experiments on networks trained from different seeds.

The experiments test whether two networks of one architecture, trained from
different seeds, are related at each hidden layer (after the activation) by an
element of the group ``phi(G)`` that ``symgroups`` proves for that layer's
activation. :func:`stitch` joins the bottom of one network to the top of the
other through a stitching layer; :func:`linear_cka`,
:func:`procrustes_distance` and :func:`group_dissimilarity` compare hidden
representations; :func:`project_to_group` finds the nearest group element of a
matrix. The command line lives in :mod:`nn_bridge.experiments.cli`.

This package needs scikit-learn, matplotlib, joblib and tqdm, and dask's
``distributed`` for sweeps on a Dask cluster.
"""

from .data import DigitsSplit, load_digits_split
from .models import ACTIVATIONS, FAMILIES, build_model, hidden_layers
from .projection import nearest_scalars, project_to_group, representation_group
from .similarity import (
    align_to_group,
    group_dissimilarity,
    linear_cka,
    procrustes_distance,
)
from .stitching import STITCH_KINDS, StitchResult, stitch, stitch_kinds
from .train import TrainConfig, TrainedModel, train_model

__all__ = [
    "ACTIVATIONS",
    "FAMILIES",
    "STITCH_KINDS",
    "DigitsSplit",
    "StitchResult",
    "TrainConfig",
    "TrainedModel",
    "align_to_group",
    "build_model",
    "group_dissimilarity",
    "hidden_layers",
    "linear_cka",
    "load_digits_split",
    "nearest_scalars",
    "procrustes_distance",
    "project_to_group",
    "representation_group",
    "stitch",
    "stitch_kinds",
    "train_model",
]
