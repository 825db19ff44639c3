"""Model stitching: the bottom of network A, a stitching layer, the top of network B.

For a hidden layer named by its module path, the stitched network computes A up
to that layer's output ``h_A`` (after the activation), maps it by
``h = W h_A + b`` over the unit axis (axis 1, the channels of a convolutional
layer), and feeds ``h`` to B in place of B's own output at that layer. Both
networks are frozen and only ``W`` and ``b`` are trained or computed.

Kinds of stitching layer (``W`` has shape ``(units, units)``):

``affine``
    ``W`` and ``b`` trained on the task loss, from the ridge least-squares fit
    of ``h_B`` on ``h_A`` (see :data:`RIDGE`).
``group_align``
    ``W`` in ``phi(G)``, ``b = 0``, fitted to B's activations by
    :func:`~nn_bridge.experiments.similarity.align_to_group` (assignment with
    signs for tanh and positive scales for ReLU).
``group_relax``
    The ``affine`` ``W`` projected onto ``phi(G)`` by
    :func:`~nn_bridge.experiments.projection.project_to_group`, ``b = 0``.
``permutation``
    ``W`` a permutation fitted like ``group_align`` with trivial scalars.
``orthogonal``
    ``W`` the orthogonal Procrustes fit of ``h_B`` on ``h_A``, ``b = 0``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import symgroups
from symgroups import GroupDescription

from .._errors import InvalidArgumentError, ModelMismatchError, NNBridgeError
from .data import DigitsSplit
from .projection import project_to_group, representation_group
from .similarity import align_to_group, as_unit_matrix, orthogonal_alignment
from .train import single_thread

logger = logging.getLogger(__name__)

#: Kinds of stitching layer accepted by :func:`stitch`, in report order.
STITCH_KINDS = ("affine", "group_align", "group_relax", "permutation", "orthogonal")

#: Full-batch Adam steps and learning rate of the ``affine`` stitching layer.
AFFINE_STEPS = 150
AFFINE_LEARNING_RATE = 1e-3

#: Ridge penalty of the least-squares start, relative to the mean squared
#: activation, so that dead units do not make the normal equations singular.
RIDGE = 1e-3

#: Random matrices drawn for the baseline distance to the group.
RANDOM_BASELINE_DRAWS = 20

_TRIVIAL_GROUP = GroupDescription(
    "monomial", scalars="trivial", character=symgroups.Character(0, 0)
)


@dataclass(frozen=True)
class StitchResult:
    """One stitching layer and the accuracies it gives on the test set.

    ``weight`` and ``bias`` define ``h = weight @ h_A + bias`` on the unit axis
    (``bias`` is zero for every kind but ``affine``). ``fit_error`` is
    ``||h - h_B||_F / ||h_B||_F`` on the test set. ``group_distance`` is the
    relative Frobenius distance of ``weight`` to its nearest element of
    ``phi(G)``, and ``random_distance`` the mean of the same distance for
    :data:`RANDOM_BASELINE_DRAWS` Gaussian matrices rescaled to the Frobenius
    norm of ``weight``. Both are ``None`` except for ``affine``.
    """

    kind: str
    layer: str
    group: str
    weight: np.ndarray
    bias: np.ndarray
    accuracy: float
    accuracy_a: float
    accuracy_b: float
    fit_error: float
    group_distance: float | None = None
    random_distance: float | None = None
    random_distance_std: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the scalar fields as a JSON-ready dict (no matrices)."""
        return {
            "kind": self.kind,
            "layer": self.layer,
            "group": self.group,
            "accuracy": self.accuracy,
            "accuracy_a": self.accuracy_a,
            "accuracy_b": self.accuracy_b,
            "fit_error": self.fit_error,
            "group_distance": self.group_distance,
            "random_distance": self.random_distance,
            "random_distance_std": self.random_distance_std,
        }


def layer_group(model: nn.Module, layer: str) -> GroupDescription:
    """Return the intertwiner group ``G`` of the activation module at ``layer``.

    The group comes from :func:`symgroups.activation_from_torch_module` and
    :func:`symgroups.query`.

    Raises
    ------
    InvalidArgumentError
        If ``layer`` is not a module path of ``model`` or the module is not an
        activation that symgroups recognises.
    NNBridgeError
        If symgroups leaves the activation's group undecided.
    """
    module = _submodule(model, layer)
    try:
        activation = symgroups.activation_from_torch_module(module)
    except symgroups.SymgroupsError as error:
        raise InvalidArgumentError(
            f"invalid layer {layer!r}: module {type(module).__name__} is not a "
            f"recognised activation ({error})"
        ) from None
    if activation is None:
        raise InvalidArgumentError(
            f"invalid layer {layer!r}: module {type(module).__name__} is not a "
            "recognised activation; expected the path of an activation module"
        )
    result = symgroups.query(activation)
    if result.group is None:
        raise NNBridgeError(
            f"the group of activation {activation.name!r} at layer {layer!r} is "
            f"{result.status}: {'; '.join(result.notes) or 'no reason given'}; "
            "expected a proved or numerically verified group"
        )
    return result.group


def _submodule(model: nn.Module, layer: str) -> nn.Module:
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        raise InvalidArgumentError(
            f"invalid layer {layer!r}: expected a module path such as "
            f"{', '.join(names[:6])}"
        ) from None


def capture(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Return the output of ``layer`` when ``model`` runs on ``x`` (no gradient)."""
    captured: list[torch.Tensor] = []
    module = _submodule(model, layer)
    handle = module.register_forward_hook(
        lambda _module, _inputs, output: captured.append(output.detach())
    )
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    if len(captured) != 1:
        # NOTE: a module object reused at several places of a model would
        # need its call index as part of the layer name, which is not supported.
        raise InvalidArgumentError(
            f"invalid layer {layer!r}: the module ran {len(captured)} times in "
            "one forward pass, expected once"
        )
    return captured[0]


def run_top(
    model: nn.Module, layer: str, x: torch.Tensor, replacement: torch.Tensor
) -> torch.Tensor:
    """Run ``model`` on ``x`` with the output of ``layer`` replaced by ``replacement``.

    For an :class:`torch.nn.Sequential` whose child is ``layer``, only the
    children after it run. Otherwise a forward hook replaces the output, so
    the layers below ``layer`` still run and their result is discarded, which
    works however the model's forward is written.
    """
    if isinstance(model, nn.Sequential) and layer in model._modules:
        names = list(model._modules)
        h = replacement
        for name in names[names.index(layer) + 1 :]:
            h = model._modules[name](h)
        return h
    module = _submodule(model, layer)

    def replace(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> Any:
        if output.shape != replacement.shape:
            raise ModelMismatchError(
                f"stitched activations of shape {tuple(replacement.shape)} do not "
                f"match layer {layer!r} of shape {tuple(output.shape)}"
            )
        return replacement

    handle = module.register_forward_hook(replace)
    try:
        return model(x)
    finally:
        handle.remove()


def apply_stitch(
    weight: torch.Tensor, bias: torch.Tensor, h: torch.Tensor
) -> torch.Tensor:
    """Return ``weight @ h + bias`` applied on axis 1 of ``h``."""
    mapped = torch.einsum("ij,nj...->ni...", weight, h)
    return mapped + bias.view(1, -1, *([1] * (h.dim() - 2)))


class _Stitcher:
    """Cached activations of one model pair at one layer, shared by all kinds."""

    def __init__(
        self,
        model_a: nn.Module,
        model_b: nn.Module,
        layer: str,
        data: DigitsSplit,
        seed: int,
    ) -> None:
        self.model_a = _frozen_copy(model_a)
        self.model_b = _frozen_copy(model_b)
        self.layer = layer
        self.data = data
        self.seed = seed
        group = layer_group(self.model_a, layer)
        group_b = layer_group(self.model_b, layer)
        if group != group_b:
            raise ModelMismatchError(
                f"layer {layer!r} has group {group.describe()!r} in model A and "
                f"{group_b.describe()!r} in model B; expected the same activation"
            )
        self.group = representation_group(group)
        self.h_train_a = capture(self.model_a, layer, data.x_train)
        self.h_train_b = capture(self.model_b, layer, data.x_train)
        self.h_test_a = capture(self.model_a, layer, data.x_test)
        self.h_test_b = capture(self.model_b, layer, data.x_test)
        if self.h_train_a.shape != self.h_train_b.shape:
            raise ModelMismatchError(
                f"layer {layer!r} has shape {tuple(self.h_train_a.shape)} in model "
                f"A and {tuple(self.h_train_b.shape)} in model B"
            )
        self.units = self.h_train_a.shape[1]
        self.accuracy_a = _accuracy(self.model_a(data.x_test), data.y_test)
        self.accuracy_b = _accuracy(self.model_b(data.x_test), data.y_test)
        self._affine: tuple[np.ndarray, np.ndarray] | None = None

    def rows(self, h: torch.Tensor) -> np.ndarray:
        return as_unit_matrix(h.numpy())

    def result(
        self, kind: str, weight: np.ndarray, bias: np.ndarray, **extra: Any
    ) -> StitchResult:
        weight_t = torch.tensor(weight, dtype=torch.float32)
        bias_t = torch.tensor(bias, dtype=torch.float32)
        with torch.no_grad():
            stitched = apply_stitch(weight_t, bias_t, self.h_test_a)
            logits = run_top(self.model_b, self.layer, self.data.x_test, stitched)
        target = self.h_test_b
        fit_error = float(
            torch.linalg.norm(stitched - target) / torch.linalg.norm(target)
        )
        return StitchResult(
            kind=kind,
            layer=self.layer,
            group=self.group.describe(),
            weight=weight,
            bias=bias,
            accuracy=_accuracy(logits, self.data.y_test),
            accuracy_a=self.accuracy_a,
            accuracy_b=self.accuracy_b,
            fit_error=fit_error,
            **extra,
        )

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        if self._affine is None:
            self._affine = self._train_affine()
        return self._affine

    def _train_affine(self) -> tuple[np.ndarray, np.ndarray]:
        X = self.rows(self.h_train_a)
        Y = self.rows(self.h_train_b)
        design = np.hstack([X, np.ones((X.shape[0], 1))])
        gram = design.T @ design
        penalty = RIDGE * np.trace(gram) / gram.shape[0]
        solution = np.linalg.solve(gram + penalty * np.eye(gram.shape[0]), design.T @ Y)
        torch.manual_seed(self.seed)
        weight = torch.tensor(solution[:-1].T, dtype=torch.float32, requires_grad=True)
        bias = torch.tensor(solution[-1], dtype=torch.float32, requires_grad=True)
        optimizer = torch.optim.Adam([weight, bias], lr=AFFINE_LEARNING_RATE)
        loss_function = nn.CrossEntropyLoss()
        for _ in range(AFFINE_STEPS):
            stitched = apply_stitch(weight, bias, self.h_train_a)
            logits = run_top(self.model_b, self.layer, self.data.x_train, stitched)
            loss = loss_function(logits, self.data.y_train)
            # autograd.grad leaves the .grad fields of B's parameters untouched.
            grads = torch.autograd.grad(loss, [weight, bias])
            optimizer.zero_grad()
            weight.grad, bias.grad = grads
            optimizer.step()
        return (
            weight.detach().numpy().astype(np.float64),
            bias.detach().numpy().astype(np.float64),
        )

    def run(self, kind: str) -> StitchResult:
        zero_bias = np.zeros(self.units)
        if kind == "affine":
            weight, bias = self.affine()
            _, distance = project_to_group(weight, self.group)
            baseline = self._random_distances(float(np.linalg.norm(weight)))
            return self.result(
                kind,
                weight,
                bias,
                group_distance=distance,
                random_distance=float(baseline.mean()),
                random_distance_std=float(baseline.std()),
            )
        if kind == "group_relax":
            weight, _ = self.affine()
            projected, _ = project_to_group(weight, self.group)
            return self.result(kind, projected, zero_bias)
        X = self.rows(self.h_train_a)
        Y = self.rows(self.h_train_b)
        if kind == "group_align":
            g = align_to_group(X, Y, self.group)
        elif kind == "permutation":
            g = align_to_group(X, Y, _TRIVIAL_GROUP)
        elif kind == "orthogonal":
            g = orthogonal_alignment(X, Y)
        else:
            raise InvalidArgumentError(
                f"invalid kind {kind!r}: expected one of {', '.join(STITCH_KINDS)}"
            )
        # g acts on the right of (samples, units) rows, so W = g^T on columns.
        return self.result(kind, g.T.copy(), zero_bias)

    def _random_distances(self, norm: float) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        distances = []
        for _ in range(RANDOM_BASELINE_DRAWS):
            matrix = rng.normal(size=(self.units, self.units))
            matrix *= norm / np.linalg.norm(matrix)
            distances.append(project_to_group(matrix, self.group)[1])
        return np.asarray(distances)


def _frozen_copy(model: nn.Module) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(
            f"invalid model {model!r}: expected a torch.nn.Module"
        )
    frozen = copy.deepcopy(model)
    frozen.eval()
    frozen.requires_grad_(False)
    return frozen


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean().item())


def _check_kinds(kinds: tuple[str, ...] | list[str]) -> None:
    for kind in kinds:
        if kind not in STITCH_KINDS:
            raise InvalidArgumentError(
                f"invalid kind {kind!r}: expected one of {', '.join(STITCH_KINDS)}"
            )


def stitch_kinds(
    model_a: nn.Module,
    model_b: nn.Module,
    layer: str,
    data: DigitsSplit,
    kinds: tuple[str, ...] | list[str] = STITCH_KINDS,
    *,
    seed: int = 0,
) -> dict[str, StitchResult]:
    """Stitch A's bottom to B's top at ``layer`` with each kind in ``kinds``.

    The ``affine`` layer is trained once and shared by ``group_relax``. The
    models are copied, so the callers' models and their gradients are left
    unchanged. Activations for fitting come from ``data.x_train`` and every
    accuracy is measured on ``data.x_test``. Torch runs on one thread.

    Raises
    ------
    InvalidArgumentError
        If a kind is unknown, ``layer`` is not an activation module, or a
        model is not a :class:`torch.nn.Module`.
    ModelMismatchError
        If the two models differ at ``layer`` in activation or shape.
    """
    _check_kinds(kinds)
    with single_thread():
        stitcher = _Stitcher(model_a, model_b, layer, data, seed)
        results = {kind: stitcher.run(kind) for kind in kinds}
    logger.debug(
        "stitched at %s: %s", layer, {k: r.accuracy for k, r in results.items()}
    )
    return results


def stitch(
    model_a: nn.Module,
    model_b: nn.Module,
    layer: str,
    data: DigitsSplit,
    kind: str = "affine",
    *,
    seed: int = 0,
) -> StitchResult:
    """Stitch A's bottom to B's top at ``layer`` with one kind of stitching layer.

    See :func:`stitch_kinds`, which shares work between kinds; ``seed`` sets
    the affine training and the random baseline.
    """
    return stitch_kinds(model_a, model_b, layer, data, (kind,), seed=seed)[kind]
