"""Compare two models' outputs in float64 on example inputs and random probes."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._errors import InvalidArgumentError

logger = logging.getLogger(__name__)

#: Default tolerances of :func:`check_function_preserved`: an output passes
#: when ``max|a - b| <= atol + rtol * max|a|``. An exact symmetry leaves only
#: float64 rounding, orders of magnitude below these.
DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-8

#: Random probe inputs besides the example inputs.
DEFAULT_PROBES = 2

#: Floor of the denominator of relative deviations.
TINY = 1e-300

#: Depth limit when flattening nested outputs.
MAX_OUTPUT_DEPTH = 8


@dataclass(frozen=True)
class OutputDeviation:
    """Deviation of one output tensor, addressed by its path in the output."""

    path: str
    max_abs: float
    max_rel: float
    ok: bool


@dataclass
class PreservationReport:
    """Result of :func:`check_function_preserved`.

    ``max_abs`` is ``max |a - b|`` over every output and input set;
    ``max_rel`` is the largest ``max|a - b| / max|a|`` of one output tensor.
    ``ok`` is true when every output tensor meets
    ``max|a - b| <= atol + rtol * max|a|`` and integer outputs are equal.
    """

    max_abs: float
    max_rel: float
    ok: bool
    rtol: float
    atol: float
    n_inputs: int
    outputs: list[OutputDeviation] = field(default_factory=list)

    @property
    def worst(self) -> OutputDeviation | None:
        """The output with the largest relative deviation."""
        return max(self.outputs, key=lambda o: o.max_rel, default=None)

    def summary(self) -> str:
        worst = self.worst
        where = f" at {worst.path}" if worst is not None else ""
        return (
            f"max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}{where} over "
            f"{self.n_inputs} input sets (rtol {self.rtol:g}, atol {self.atol:g}): "
            + ("ok" if self.ok else "CHANGED")
        )

    def __str__(self) -> str:
        return self.summary()


def split_inputs(example_inputs: Any) -> tuple[tuple, dict]:
    """Turn ``example_inputs`` into positional and keyword arguments.

    A mapping is keyword arguments, a tuple or list positional ones, and a
    single tensor the one positional argument.
    """
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, Mapping):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    raise InvalidArgumentError(
        "example_inputs must be a tensor, a tuple or list of positional arguments "
        f"or a dict of keyword arguments, got {type(example_inputs).__name__}"
    )


def _map_tensors(value: Any, function: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return function(value)
    if isinstance(value, tuple):
        return tuple(_map_tensors(v, function) for v in value)
    if isinstance(value, list):
        return [_map_tensors(v, function) for v in value]
    if isinstance(value, Mapping):
        return {k: _map_tensors(v, function) for k, v in value.items()}
    return value


def _float64(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.float64) if tensor.is_floating_point() else tensor


def _probe(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random tensor like ``tensor``: normal floats, integers in its range.

    Integer tensors whose values are all 0 or 1 (attention masks) and bool
    tensors stay as they are, so that no probe masks out a whole row.
    """
    if tensor.is_floating_point():
        noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
        return noise.to(tensor.device)
    if tensor.dtype == torch.bool or tensor.numel() == 0:
        return tensor
    low, high = int(tensor.min()), int(tensor.max())
    if low >= 0 and high <= 1:
        return tensor
    values = torch.randint(low, high + 1, tensor.shape, generator=generator)
    return values.to(dtype=tensor.dtype, device=tensor.device)


def flatten_outputs(
    value: Any, path: str = "output", depth: int = 0
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(path, tensor)`` for every tensor in a nested model output.

    Tensors, tuples, lists, mappings (transformers ``ModelOutput``
    included), dataclasses and objects with ``to_legacy_cache`` are searched
    up to :data:`MAX_OUTPUT_DEPTH` levels.
    """
    if depth > MAX_OUTPUT_DEPTH:
        return
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from flatten_outputs(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from flatten_outputs(item, f"{path}[{index}]", depth + 1)
    elif hasattr(value, "to_legacy_cache"):
        yield from flatten_outputs(value.to_legacy_cache(), f"{path}.cache", depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from flatten_outputs(
                getattr(value, item.name), f"{path}.{item.name}", depth + 1
            )


def _float64_copy(model: nn.Module) -> nn.Module:
    duplicate = copy.deepcopy(model).to(torch.float64)
    for module in duplicate.modules():
        # A dropout mask would drop different units in the two models.
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()
    return duplicate


def _compare(
    path: str, a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float
) -> OutputDeviation:
    if a.shape != b.shape:
        return OutputDeviation(path, float("inf"), float("inf"), False)
    if not a.is_floating_point() and not a.is_complex():
        equal = bool(torch.equal(a, b))
        deviation = 0.0 if equal else float("inf")
        return OutputDeviation(path, deviation, deviation, equal)
    if a.numel() == 0:
        return OutputDeviation(path, 0.0, 0.0, True)
    a64, b64 = a.detach().to(torch.float64), b.detach().to(torch.float64)
    difference = (a64 - b64).abs()
    both_nan = torch.isnan(a64) & torch.isnan(b64)
    difference = torch.where(both_nan, torch.zeros_like(difference), difference)
    max_abs = float(difference.max())
    scale = float(a64.abs().nan_to_num(0.0, 0.0, 0.0).max())
    max_rel = max_abs / max(scale, TINY)
    ok = max_abs <= atol + rtol * scale
    return OutputDeviation(path, max_abs, max_rel, ok)


def check_function_preserved(
    model_a: nn.Module,
    model_b: nn.Module,
    example_inputs: Any,
    *,
    n_probes: int = DEFAULT_PROBES,
    seed: int = 0,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> PreservationReport:
    """Measure how far ``model_b``'s outputs are from ``model_a``'s.

    Both models run as float64 copies (the arguments are never converted)
    on ``example_inputs`` and on ``n_probes`` random inputs of the same
    shapes and dtypes, drawn with ``seed``: floats from a standard normal,
    integers uniformly between the example's min and max. Dropout layers of
    the copies are switched off; every other module keeps its mode, so
    BatchNorm in training mode uses batch statistics in both.

    Returns
    -------
    PreservationReport
        With the max absolute and relative deviation over all outputs.
    """
    if not isinstance(model_a, nn.Module) or not isinstance(model_b, nn.Module):
        raise InvalidArgumentError(
            f"both models must be torch.nn.Module, got {type(model_a).__name__} and "
            f"{type(model_b).__name__}"
        )
    if isinstance(n_probes, bool) or not isinstance(n_probes, int) or n_probes < 0:
        raise InvalidArgumentError(
            f"n_probes must be an integer >= 0, got {n_probes!r}"
        )
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, (int, float)) or value < 0:
            raise InvalidArgumentError(f"{name} must be a number >= 0, got {value!r}")
    args, kwargs = split_inputs(example_inputs)
    copy_a, copy_b = _float64_copy(model_a), _float64_copy(model_b)
    generator = torch.Generator().manual_seed(seed)
    input_sets = [(args, kwargs)]
    for _ in range(n_probes):
        input_sets.append(
            (
                _map_tensors(args, lambda t: _probe(t, generator)),
                _map_tensors(kwargs, lambda t: _probe(t, generator)),
            )
        )
    deviations: list[OutputDeviation] = []
    with torch.no_grad():
        for index, (set_args, set_kwargs) in enumerate(input_sets):
            set_args = _map_tensors(set_args, _float64)
            set_kwargs = _map_tensors(set_kwargs, _float64)
            out_a = dict(flatten_outputs(copy_a(*set_args, **set_kwargs)))
            out_b = dict(flatten_outputs(copy_b(*set_args, **set_kwargs)))
            if out_a.keys() != out_b.keys():
                raise InvalidArgumentError(
                    f"the models return different output structures: {sorted(out_a)} "
                    f"and {sorted(out_b)}"
                )
            label = "example" if index == 0 else f"probe {index}"
            for path, value in out_a.items():
                deviations.append(
                    _compare(f"{label}: {path}", value, out_b[path], rtol, atol)
                )
    max_abs = max((d.max_abs for d in deviations), default=0.0)
    max_rel = max((d.max_rel for d in deviations), default=0.0)
    return PreservationReport(
        max_abs=max_abs,
        max_rel=max_rel,
        ok=all(d.ok for d in deviations),
        rtol=float(rtol),
        atol=float(atol),
        n_inputs=len(input_sets),
        outputs=deviations,
    )
