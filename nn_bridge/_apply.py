"""Apply a group element to a model's tensors."""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from ._check import DEFAULT_ATOL, DEFAULT_RTOL, check_function_preserved
from ._errors import (
    FunctionChangedError,
    InvalidArgumentError,
    ModelMismatchError,
)
from ._spec import Action, Site, SymmetrySpec
from ._transform import SiteElement, Transform

logger = logging.getLogger(__name__)


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return every parameter and buffer by name, tied names included."""
    tensors: dict[str, torch.Tensor] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        tensors[name] = parameter
    for name, buffer in model.named_buffers(remove_duplicate=False):
        tensors[name] = buffer
    return tensors


def _check_model_matches(
    model: nn.Module, spec: SymmetrySpec
) -> dict[str, torch.Tensor]:
    tensors = model_tensors(model)
    expected = set(spec.tensors) | set(spec.aliases)
    missing = sorted(expected - set(tensors))
    extra = sorted(set(tensors) - expected)
    if missing or extra:
        raise ModelMismatchError(
            f"the model does not match the spec: missing tensors {missing[:5]}, "
            f"unexpected tensors {extra[:5]}"
        )
    for name, info in spec.tensors.items():
        if tuple(tensors[name].shape) != info.shape:
            raise ModelMismatchError(
                f"tensor {name!r} has shape {tuple(tensors[name].shape)} but the spec "
                f"expects {info.shape}"
            )
    for alias, canonical in spec.aliases.items():
        if tensors[alias] is not tensors[canonical]:
            raise ModelMismatchError(
                f"{alias!r} is no longer tied to {canonical!r}; find the symmetries "
                "of this model again"
            )
    return tensors


def _scale_vector(site: Site, action: Action, element: SiteElement) -> np.ndarray:
    scale = np.ones(site.size)
    for component, char in action.factors:
        scale = scale * char.evaluate(element.scales[component])
    return scale


def _apply_monomial(
    tensor: torch.Tensor, action: Action, perm: np.ndarray, scale: np.ndarray
) -> torch.Tensor:
    """Apply ``R = P diag(scale)`` (``out``) or ``R^-1`` from the right (``in``)."""
    positions = action.positions
    replicas = positions.shape[1]
    size = tensor.shape[action.axis]
    gather = np.arange(size)
    gather[positions[perm].ravel()] = positions.ravel()
    row_scale = scale if action.side == "out" else 1.0 / scale
    index = torch.as_tensor(gather, device=tensor.device)
    result = tensor.index_select(action.axis, index)
    if not np.all(row_scale == 1.0):
        vector = np.ones(size)
        vector[positions[perm].ravel()] = np.repeat(row_scale, replicas)
        shape = [1] * tensor.ndim
        shape[action.axis] = size
        result = result * torch.as_tensor(
            vector, dtype=tensor.dtype, device=tensor.device
        ).view(shape)
    return result


def _apply_blocks(
    tensor: torch.Tensor,
    action: Action,
    perm: np.ndarray,
    blocks: np.ndarray | None,
) -> torch.Tensor:
    """Apply ``(P kron I) blockdiag(B)`` to the rows of ``action``.

    Row block ``h`` (rows ``h*b .. h*b+b-1``) goes to block ``perm[h]`` after
    multiplication by ``blocks[h]``; ``in`` actions use ``blocks^-T``. The
    products run in the tensor's own dtype as one batched matrix product
    (``torch.bmm``), so a float32 weight gets the rounding of one float32
    product of length ``b`` per entry.
    """
    positions = action.positions
    heads = len(perm)
    rows, replicas = positions.shape
    width = rows // heads
    if blocks is not None and action.side == "in":
        blocks = np.swapaxes(np.linalg.inv(blocks), 1, 2)
    moved = tensor.movedim(action.axis, 0)
    rest = moved.shape[1:]
    device = tensor.device
    if np.array_equal(positions.ravel(), np.arange(moved.shape[0])):
        # The action covers the whole axis in order, so block j of the result
        # is blocks[h] times source block h = perm^-1(j): one gather suffices.
        inverse = np.argsort(perm)
        source = positions.reshape(heads, width, replicas)[inverse].ravel()
        values = moved.index_select(0, torch.as_tensor(source, device=device))
        values = values.reshape(heads, width, -1)
        if blocks is not None:
            matrices = torch.as_tensor(
                blocks[inverse], dtype=tensor.dtype, device=device
            )
            values = torch.bmm(matrices, values)
        return values.reshape(moved.shape).movedim(0, action.axis)
    source = torch.as_tensor(positions.ravel(), device=device)
    values = moved.index_select(0, source).reshape(heads, width, -1)
    if blocks is not None:
        matrices = torch.as_tensor(blocks, dtype=tensor.dtype, device=device)
        values = torch.bmm(matrices, values)
    values = values.reshape(heads, width, replicas, -1)
    target = positions.reshape(heads, width, replicas)[perm].ravel()
    if len(target) == moved.shape[0]:
        # The action covers every row of the axis: gather the new rows in
        # their final order instead of copying the tensor and scattering.
        order = np.empty_like(target)
        order[target] = np.arange(len(target))
        flat = values.reshape(rows * replicas, *rest)
        result = flat.index_select(0, torch.as_tensor(order, device=device))
    else:
        result = moved.clone()
        result[torch.as_tensor(target, device=device)] = values.reshape(
            rows * replicas, *rest
        )
    return result.movedim(0, action.axis)


def _apply_action(
    tensor: torch.Tensor, site: Site, action: Action, element: SiteElement
) -> torch.Tensor:
    if site.kind == "monomial":
        return _apply_monomial(
            tensor, action, element.perm, _scale_vector(site, action, element)
        )
    if site.kind == "general_linear":
        matrix = element.matrix[None]
        return _apply_blocks(tensor, action, np.zeros(1, dtype=np.int64), matrix)
    blocks = element.vo if action.fibre == "v" else element.qk
    if blocks is not None and action.fibre == "k":
        blocks = np.swapaxes(np.linalg.inv(blocks), 1, 2)
    return _apply_blocks(tensor, action, element.perm, blocks)


def transform_tensors(
    spec: SymmetrySpec, transform: Transform, tensors: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Return the new values of every tensor that ``transform`` changes.

    The inputs are not modified. Each tensor keeps its dtype and device.
    """
    updated: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for site in spec.sites:
            element = transform.elements[site.name]
            for action in site.actions:
                current = updated.get(action.tensor)
                if current is None:
                    current = tensors[action.tensor].detach()
                updated[action.tensor] = _apply_action(current, site, action, element)
    return updated


def _copy_with(
    model: nn.Module,
    new_values: dict[str, torch.Tensor],
    tensors: dict[str, torch.Tensor],
) -> nn.Module:
    """Deep-copy ``model``, putting ``new_values`` in place of the originals."""
    memo: dict[int, Any] = {}
    for name, value in new_values.items():
        original = tensors[name]
        if isinstance(original, nn.Parameter):
            replacement: torch.Tensor = nn.Parameter(
                value.contiguous(), requires_grad=original.requires_grad
            )
        else:
            replacement = value.contiguous()
        memo[id(original)] = replacement
    return copy.deepcopy(model, memo)


def apply_transform(
    model: nn.Module,
    spec: SymmetrySpec,
    transform: Transform,
    *,
    inplace: bool = False,
    check: bool = True,
    example_inputs: Any = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> nn.Module:
    """Return ``model`` with its weights moved by a group element.

    The law: for every input ``x``, ``result(x) == model(x)`` up to rounding,
    because each site's element ``A`` multiplies the producer side by ``A``
    and the consumer side by ``phi(A)^-1``. ``model`` is not modified unless
    ``inplace=True``. With ``check=True`` the function runs
    :func:`check_function_preserved` on ``example_inputs`` (or the inputs the
    spec was discovered with) and raises :class:`FunctionChangedError` when
    a deviation exceeds ``atol + rtol * max|output|``; an in-place model is
    restored first.

    Raises
    ------
    TransformError
        If ``transform`` is not an element of ``spec``'s group.
    ModelMismatchError
        If the model's tensors differ from the spec's.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"model must be a torch.nn.Module, got {model!r}")
    if not isinstance(spec, SymmetrySpec):
        raise InvalidArgumentError(f"spec must be a SymmetrySpec, got {spec!r}")
    if not isinstance(transform, Transform):
        raise InvalidArgumentError(f"transform must be a Transform, got {transform!r}")
    transform.check_fits(spec)
    tensors = _check_model_matches(model, spec)
    if check:
        example_inputs = (
            spec.example_inputs if example_inputs is None else example_inputs
        )
        if example_inputs is None:
            raise InvalidArgumentError(
                "check=True needs example_inputs (the spec has none stored); pass "
                "example_inputs=... or check=False"
            )
        if any(t.device.type == "meta" for t in tensors.values()):
            raise InvalidArgumentError(
                "cannot check a model on the meta device; pass check=False"
            )
    new_values = transform_tensors(spec, transform, tensors)
    if not inplace:
        result = _copy_with(model, new_values, tensors)
        reference = model
    else:
        reference = copy.deepcopy(model) if check else None
        saved = {name: tensors[name].detach().clone() for name in new_values}
        with torch.no_grad():
            for name, value in new_values.items():
                tensors[name].copy_(value)
        result = model
    if check:
        report = check_function_preserved(
            reference, result, example_inputs, rtol=rtol, atol=atol
        )
        if not report.ok:
            if inplace:
                with torch.no_grad():
                    for name, value in saved.items():
                        tensors[name].copy_(value)
            raise FunctionChangedError(
                f"the transformed model's outputs changed: {report.summary()}",
                evidence=report,
            )
        logger.info("transform preserved the outputs: %s", report.summary())
    return result
