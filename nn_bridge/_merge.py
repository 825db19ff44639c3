"""Linear interpolation between two models of one architecture, and its barrier.

:func:`interpolate` evaluates ``theta(alpha) = (1 - alpha) theta_A + alpha
theta_B`` on data for several ``alpha`` and reports the loss barrier
``max_alpha [L(theta(alpha)) - ((1 - alpha) L(theta_A) + alpha L(theta_B))]``,
the largest excess of the loss over the straight line between the two ends.
Align B to A first (:func:`nn_bridge._align.align`): the barrier between
unaligned networks mostly measures their permutation.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._align import check_same_architecture
from ._check import split_inputs
from ._errors import InvalidArgumentError

logger = logging.getLogger(__name__)

#: Interpolation weights of :func:`interpolate` when none are given.
DEFAULT_ALPHAS = tuple(float(a) for a in np.linspace(0.0, 1.0, 11))

_BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class InterpolationResult:
    """Losses and accuracies along the straight path from model A to model B.

    ``losses[i]`` and ``accuracies[i]`` belong to ``alphas[i]`` (``alpha =
    0`` is A, ``alpha = 1`` is B); an accuracy is None when the outputs are
    not class scores. ``barrier`` is the largest ``L(alpha) - ((1 - alpha)
    L(0) + alpha L(1))`` over the alphas, at ``barrier_alpha``; it is 0 or
    more because both ends are evaluated.
    """

    alphas: list[float]
    losses: list[float]
    accuracies: list[float | None]
    barrier: float
    barrier_alpha: float
    reset_bn: bool
    samples: int
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Return the JSON-serialisable fields."""
        return {
            "alphas": self.alphas,
            "losses": self.losses,
            "accuracies": self.accuracies,
            "barrier": self.barrier,
            "barrier_alpha": self.barrier_alpha,
            "reset_bn": self.reset_bn,
            "samples": self.samples,
        }


def _batches(data: Any) -> list[tuple[Any, torch.Tensor]]:
    """Return ``data`` as a list of ``(inputs, targets)`` batches."""
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[1], torch.Tensor)
    ):
        return [(data[0], data[1])]
    if isinstance(data, Iterable) and not isinstance(data, (torch.Tensor, str, dict)):
        batches = list(data)
        if batches and all(
            isinstance(b, (tuple, list)) and len(b) == 2 for b in batches
        ):
            return [(b[0], b[1]) for b in batches]
    raise InvalidArgumentError(
        "data must be an (inputs, targets) pair of tensors or an iterable of such "
        f"batches, got {type(data).__name__}"
    )


def _scores(output: Any) -> torch.Tensor:
    """Select the tensor to score: the output, its ``logits`` or its first element."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output:
        return _scores(output[0])
    raise InvalidArgumentError(
        f"cannot score a model output of type {type(output).__name__}; return a "
        "tensor, an object with .logits or a tuple starting with a tensor"
    )


def _run(model: nn.Module, inputs: Any) -> torch.Tensor:
    args, kwargs = split_inputs(inputs)
    return _scores(model(*args, **kwargs))


def interpolate_weights(
    model_a: nn.Module, model_b: nn.Module, alpha: float
) -> nn.Module:
    """Return a copy of ``model_a`` with weights ``(1 - alpha) A + alpha B``.

    Every floating-point parameter and buffer is interpolated (BatchNorm
    statistics included); integer buffers such as ``num_batches_tracked``
    are taken from ``model_a``. Neither model is modified.
    """
    check_same_architecture(model_a, model_b)
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise InvalidArgumentError(f"alpha must be a finite number, got {alpha!r}")
    merged = copy.deepcopy(model_a)
    state_b = model_b.state_dict()
    state = {}
    for name, value in model_a.state_dict().items():
        if value.is_floating_point():
            other = state_b[name].to(value.dtype)
            state[name] = torch.lerp(value, other, float(alpha))
        else:
            state[name] = value.clone()
    merged.load_state_dict(state)
    return merged.eval()


def reset_batchnorm(model: nn.Module, batches: Sequence[tuple[Any, Any]]) -> bool:
    """Re-estimate every BatchNorm's running statistics on ``batches``, in place.

    The statistics are reset and then accumulated as the plain average over
    the batches (``momentum=None``). Each layer's momentum is restored
    afterwards, and the model is left in eval mode. Returns False when the model has no
    BatchNorm layer.
    """
    norms = [m for m in model.modules() if isinstance(m, _BATCHNORM_TYPES)]
    if not norms:
        return False
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        for inputs, _ in batches:
            _run(model, inputs)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()
    return True


def _evaluate(
    model: nn.Module, batches: Sequence[tuple[Any, torch.Tensor]], loss_fn: Any
) -> tuple[float, float | None, int]:
    """Mean loss over samples, accuracy (or None) and the sample count."""
    total = 0.0
    correct = 0
    count = 0
    classifies = True
    with torch.no_grad():
        for inputs, targets in batches:
            scores = _run(model, inputs)
            size = int(targets.shape[0]) if targets.ndim else 1
            total += float(loss_fn(scores, targets)) * size
            count += size
            if (
                classifies
                and scores.ndim == 2
                and not targets.is_floating_point()
                and targets.shape == scores.shape[:1]
            ):
                correct += int((scores.argmax(dim=1) == targets).sum())
            else:
                classifies = False
    accuracy = correct / count if classifies and count else None
    return total / max(count, 1), accuracy, count


def interpolate(
    model_a: nn.Module,
    model_b_aligned: nn.Module,
    data: Any,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    loss_fn: LossFunction | None = None,
    reset_bn: bool = False,
) -> InterpolationResult:
    """Evaluate the straight path between two models and its loss barrier.

    The law: ``result.losses[i]`` is the mean of ``loss_fn`` over the
    samples of ``data`` for the model with weights ``(1 - alphas[i]) A +
    alphas[i] B`` (after re-estimating BatchNorm statistics on ``data`` when
    ``reset_bn=True``), and ``result.barrier`` is the largest excess of those
    losses over the chord between ``alpha = 0`` and ``alpha = 1``. The ends
    are always evaluated, added to ``alphas`` if missing. Neither model is
    modified.

    Parameters
    ----------
    model_a, model_b_aligned
        Two models of one architecture; align B to A first.
    data
        An ``(inputs, targets)`` pair of tensors or an iterable of such
        batches; ``inputs`` is a tensor, a tuple of positional arguments or
        a dict of keyword arguments.
    alphas
        Interpolation weights; values outside ``[0, 1]`` extrapolate.
    loss_fn
        ``loss_fn(scores, targets)`` returning the batch's mean loss;
        cross-entropy when omitted. ``scores`` is the model's output tensor,
        its ``logits`` or its first element.
    reset_bn
        Re-estimate BatchNorm running statistics on ``data`` at each alpha.
    """
    check_same_architecture(model_a, model_b_aligned)
    batches = _batches(data)
    values = []
    for alpha in alphas:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise InvalidArgumentError(f"alphas must be numbers, got {alpha!r}")
        if not math.isfinite(float(alpha)):
            raise InvalidArgumentError(f"alphas must be finite, got {alpha!r}")
        values.append(float(alpha))
    if not values:
        raise InvalidArgumentError("alphas must not be empty")
    grid = sorted(set(values) | {0.0, 1.0})
    loss_fn = loss_fn or F.cross_entropy
    notes = []
    losses = []
    accuracies = []
    samples = 0
    for alpha in grid:
        merged = interpolate_weights(model_a, model_b_aligned, alpha)
        if reset_bn and not reset_batchnorm(merged, batches):
            if not notes:
                notes.append("reset_bn=True but the model has no BatchNorm layer")
        loss, accuracy, samples = _evaluate(merged, batches, loss_fn)
        losses.append(loss)
        accuracies.append(accuracy)
    start, end = losses[grid.index(0.0)], losses[grid.index(1.0)]
    excess = [
        loss - ((1.0 - alpha) * start + alpha * end)
        for alpha, loss in zip(grid, losses, strict=True)
    ]
    worst = int(np.argmax(excess))
    logger.info("interpolation barrier %.6g at alpha %.3g", excess[worst], grid[worst])
    return InterpolationResult(
        alphas=grid,
        losses=losses,
        accuracies=accuracies,
        barrier=float(max(excess[worst], 0.0)),
        barrier_alpha=grid[worst],
        reset_bn=reset_bn,
        samples=samples,
        notes=notes,
    )
