"""Rotate the residual stream of a transformer by an orthogonal matrix.

A pre-norm transformer reads its residual stream ``h`` only through norm
layers, so ``h -> Q h`` keeps the function when every norm commutes with
``Q``. RMSNorm without gain commutes with every orthogonal ``Q``, and
LayerNorm without gain and bias with every orthogonal ``Q`` that fixes the
all-ones vector (``symgroups.layer_group`` proves both). The rotation
therefore first folds each norm's gain (and bias) into the linear layers that
read the norm's output, then rotates

* the rows of the token and position embeddings: ``E' = E Q^T``,
* the outputs of every layer that writes to the stream: ``W' = Q W``,
  ``b' = Q b``,
* the inputs of every layer that reads a norm's output: ``W' = W Q^T``.

Supported models are LLaMA-style causal LMs (``llama``, ``mistral``,
``qwen2``; RMSNorm) and GPT-2 (``gpt2``; LayerNorm with bias, ``Conv1D``
layers whose weight is stored as ``(in, out)``).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._errors import InvalidArgumentError, TransformError

logger = logging.getLogger(__name__)

#: Model types whose decoder layers have the LLaMA layout and RMSNorm.
LLAMA_MODEL_TYPES = ("llama", "mistral", "qwen2")

#: Model types with the GPT-2 layout and LayerNorm.
GPT2_MODEL_TYPES = ("gpt2",)

#: Tolerance of the checks ``Q^T Q = I`` and ``Q 1 = 1`` on a given rotation,
#: relative to 1; it admits a float32 matrix.
DEFAULT_ROTATION_TOL = 1e-5


@dataclass(frozen=True)
class NormSite:
    """A norm layer and the linear layers that read its output."""

    norm: str
    readers: tuple[str, ...]


@dataclass(frozen=True)
class StreamLayout:
    """The modules that read and write a model's residual stream.

    Every name is a submodule name of the model. ``embeddings`` are
    ``nn.Embedding`` modules whose rows are stream vectors, and ``writers``
    add their output to the stream. ``norms`` lists every norm that reads the
    stream, with the layers that read the norm. ``head`` is the output layer,
    one of the readers of the last norm.
    """

    architecture: str
    norm_kind: str
    hidden_size: int
    embeddings: tuple[str, ...]
    writers: tuple[str, ...]
    norms: tuple[NormSite, ...]
    head: str
    tied_head: bool


@dataclass
class RotationResult:
    """The output of :func:`rotate_residual_stream`.

    ``model`` computes the same function as the input model, and its residual
    stream is ``Q h`` where the input model's is ``h`` (``rotation`` is
    ``Q``, float64). ``untied_head`` is true when the output head shared its
    weight with the token embedding and the copy has separate weights.
    ``factored`` is true when ``Q`` is a Kronecker product.
    """

    model: nn.Module
    rotation: torch.Tensor
    layout: StreamLayout
    seed: int | None
    untied_head: bool
    notes: list[str] = field(default_factory=list)
    factored: bool = False

    def summary(self) -> dict[str, Any]:
        """Return the JSON summary that ``nn-bridge rotate --json`` prints."""
        return {
            "architecture": self.layout.architecture,
            "norm": self.layout.norm_kind,
            "hidden_size": self.layout.hidden_size,
            "seed": self.seed,
            "factored": self.factored,
            "folded_norms": len(self.layout.norms),
            "rotated_embeddings": list(self.layout.embeddings),
            "writers": len(self.layout.writers),
            "untied_head": self.untied_head,
            "notes": list(self.notes),
        }


def stream_layout(model: nn.Module) -> StreamLayout:
    """Find the residual-stream layout of a supported transformer.

    Raises :class:`InvalidArgumentError` for any other model.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type in LLAMA_MODEL_TYPES:
        return _llama_layout(model)
    if model_type in GPT2_MODEL_TYPES:
        return _gpt2_layout(model)
    raise InvalidArgumentError(
        f"cannot rotate {type(model).__name__} (model_type {model_type!r}): supported "
        f"are causal LMs of type {', '.join(LLAMA_MODEL_TYPES + GPT2_MODEL_TYPES)}"
    )


def _require(model: nn.Module, names: list[str], kind: str) -> None:
    modules = dict(model.named_modules())
    missing = [name for name in names if name not in modules]
    if missing:
        raise InvalidArgumentError(
            f"cannot rotate {type(model).__name__}: a {kind} causal LM needs the "
            f"modules {missing}; load it with AutoModelForCausalLM"
        )


def _tied(model: nn.Module, embedding: str, head: str) -> bool:
    first = model.get_submodule(embedding).weight
    second = model.get_submodule(head).weight
    return first is second or (
        first.data_ptr() == second.data_ptr() and first.shape == second.shape
    )


def _llama_layout(model: nn.Module) -> StreamLayout:
    config = model.config
    layers = range(config.num_hidden_layers)
    names = ["model.embed_tokens", "model.norm", "lm_head"]
    for i in layers:
        prefix = f"model.layers.{i}"
        names += [
            f"{prefix}.input_layernorm",
            f"{prefix}.post_attention_layernorm",
            *(f"{prefix}.self_attn.{p}_proj" for p in "qkvo"),
            *(f"{prefix}.mlp.{p}_proj" for p in ("gate", "up", "down")),
        ]
    _require(model, names, config.model_type)
    for name in names:
        module = model.get_submodule(name)
        if name.endswith("layernorm") or name == "model.norm":
            if getattr(module, "bias", None) is not None or not hasattr(
                module, "weight"
            ):
                raise InvalidArgumentError(
                    f"cannot rotate: {name} ({type(module).__name__}) is not an "
                    "RMSNorm with a gain and no bias"
                )
    norms = []
    writers = []
    for i in layers:
        prefix = f"model.layers.{i}"
        attention = tuple(f"{prefix}.self_attn.{p}_proj" for p in "qkv")
        mlp = (f"{prefix}.mlp.gate_proj", f"{prefix}.mlp.up_proj")
        norms.append(NormSite(f"{prefix}.input_layernorm", attention))
        norms.append(NormSite(f"{prefix}.post_attention_layernorm", mlp))
        writers += [f"{prefix}.self_attn.o_proj", f"{prefix}.mlp.down_proj"]
    norms.append(NormSite("model.norm", ("lm_head",)))
    return StreamLayout(
        architecture=type(model).__name__,
        norm_kind="rmsnorm",
        hidden_size=int(config.hidden_size),
        embeddings=("model.embed_tokens",),
        writers=tuple(writers),
        norms=tuple(norms),
        head="lm_head",
        tied_head=_tied(model, "model.embed_tokens", "lm_head"),
    )


def _gpt2_layout(model: nn.Module) -> StreamLayout:
    config = model.config
    if getattr(config, "add_cross_attention", False):
        raise InvalidArgumentError(
            "cannot rotate a GPT-2 with cross-attention: its encoder states "
            "enter the residual stream unrotated"
        )
    layers = range(config.n_layer)
    names = ["transformer.wte", "transformer.wpe", "transformer.ln_f", "lm_head"]
    for i in layers:
        prefix = f"transformer.h.{i}"
        names += [
            f"{prefix}.ln_1",
            f"{prefix}.ln_2",
            f"{prefix}.attn.c_attn",
            f"{prefix}.attn.c_proj",
            f"{prefix}.mlp.c_fc",
            f"{prefix}.mlp.c_proj",
        ]
    _require(model, names, "gpt2")

    norms = []
    writers = []
    for i in layers:
        prefix = f"transformer.h.{i}"
        norms.append(NormSite(f"{prefix}.ln_1", (f"{prefix}.attn.c_attn",)))
        norms.append(NormSite(f"{prefix}.ln_2", (f"{prefix}.mlp.c_fc",)))
        writers += [f"{prefix}.attn.c_proj", f"{prefix}.mlp.c_proj"]
    norms.append(NormSite("transformer.ln_f", ("lm_head",)))

    for site in norms:
        module = model.get_submodule(site.norm)
        if not isinstance(module, nn.LayerNorm):
            raise InvalidArgumentError(
                f"cannot rotate: {site.norm} is {type(module).__name__}, expected "
                "torch.nn.LayerNorm"
            )

    return StreamLayout(
        architecture=type(model).__name__,
        norm_kind="layernorm",
        hidden_size=int(config.n_embd),
        embeddings=("transformer.wte", "transformer.wpe"),
        writers=tuple(writers),
        norms=tuple(norms),
        head="lm_head",
        tied_head=_tied(model, "transformer.wte", "lm_head"),
    )


def _is_conv1d(module: nn.Module) -> bool:
    # transformers' Conv1D computes x @ W + b with W stored as (in, out).
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _weight_out_in(module: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """Return the weight as an ``(out, in)`` matrix, whatever the layer stores."""
    weight = module.weight.detach().to(dtype)
    return weight.t() if _is_conv1d(module) else weight


def _stored(module: nn.Module, out_in: torch.Tensor) -> torch.Tensor:
    """Convert an ``(out, in)`` matrix back to the layer's storage layout."""
    weight = out_in.t() if _is_conv1d(module) else out_in
    return weight.contiguous().to(module.weight.dtype)


def _compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def check_rotation(Q: Any, layout: StreamLayout, tol: float) -> torch.Tensor:
    """Validate a rotation for ``layout`` and return it as float64.

    ``Q`` must be orthogonal, and for a LayerNorm model it must also fix the
    all-ones vector: ``Q 1 = 1``. Raises :class:`TransformError` otherwise.
    """
    d = layout.hidden_size
    try:
        matrix = torch.as_tensor(np.asarray(Q, dtype=np.float64))
    except (TypeError, ValueError):
        raise TransformError(
            f"rotation must be a real {d}x{d} matrix, got {type(Q).__name__}"
        ) from None
    if matrix.shape != (d, d):
        raise TransformError(
            f"rotation must be {d}x{d} (the hidden size), got shape "
            f"{tuple(matrix.shape)}"
        )
    if not torch.isfinite(matrix).all():
        raise TransformError("rotation has entries that are not finite")
    error = float((matrix.T @ matrix - torch.eye(d, dtype=torch.float64)).abs().max())
    if error > tol:
        raise TransformError(
            f"rotation is not orthogonal: max|Q^T Q - I| = {error:.3g} > {tol:g}"
        )
    if layout.norm_kind == "layernorm":
        ones = torch.ones(d, dtype=torch.float64)
        moved = float((matrix @ ones - ones).abs().max())
        if moved > tol:
            raise TransformError(
                "LayerNorm commutes only with orthogonal matrices that fix the "
                f"all-ones vector, but max|Q 1 - 1| = {moved:.3g} > {tol:g}; draw "
                "one with symgroups.random_orthogonal(n, seed, fix_ones=True)"
            )
    return matrix


def rotate_residual_stream(
    model: nn.Module,
    rotation: Any = None,
    *,
    seed: int = 0,
    factored: bool = False,
    inplace: bool = False,
    tol: float = DEFAULT_ROTATION_TOL,
) -> RotationResult:
    """Fold the norms of a transformer and rotate its residual stream.

    The returned model computes the same logits as ``model`` (up to rounding)
    and its residual stream is ``Q h`` where ``model``'s is ``h``. Every norm
    gain ``g`` (and LayerNorm bias ``beta``) is folded into the layers that
    read the norm: ``W -> W diag(g)``, ``b -> b + W beta``, and the norm is
    left with gain 1 and bias 0. A reader without a bias (GPT-2's head)
    takes ``beta`` as ``W -> W diag(g) C + (W beta) 1^T / n`` with
    ``C = I - 1 1^T / n``, and its LayerNorm keeps the bias ``1``, which is
    exact because the normalised vector is orthogonal to ``1``. An output
    head tied to the token embedding is untied in the result unless the
    final norm has gain 1 (and bias 0).

    Parameters
    ----------
    model
        A LLaMA-style causal LM (``model_type`` llama, mistral or qwen2) or a
        ``GPT2LMHeadModel``.
    rotation
        An orthogonal ``(hidden, hidden)`` matrix; for GPT-2 it must also fix
        the all-ones vector. ``None`` draws a Haar-random one with ``seed``
        (:func:`symgroups.random_orthogonal`).
    seed
        Seed of the random rotation; ignored when ``rotation`` is given.
    factored
        Draw ``Q = Q1 kron Q2`` from two Haar-random orthogonal factors of
        sizes ``a x a`` and ``b x b`` with ``a b = hidden`` and ``a`` the
        largest divisor up to ``sqrt(hidden)`` (both fixing 1 for GPT-2). It
        costs about ``2 (a + b)`` multiply-adds per weight entry instead of
        ``2 hidden``, but ``Q`` is not Haar-random in the whole orthogonal
        group.
    inplace
        Change ``model`` itself instead of a copy.
    tol
        Tolerance of the checks on a given ``rotation``.

    Returns
    -------
    RotationResult
        The rotated model, ``Q`` and what was folded and untied.

    Raises
    ------
    InvalidArgumentError
        When the model is not a supported architecture.
    TransformError
        When ``rotation`` is not orthogonal or (LayerNorm) moves ``1``.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(
            f"model must be a torch.nn.Module, got {type(model).__name__}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgumentError(f"seed must be an integer >= 0, got {seed!r}")
    layout = stream_layout(model)
    factors = None
    if rotation is None:
        from symgroups import random_orthogonal

        fix_ones = layout.norm_kind == "layernorm"
        d = layout.hidden_size
        if factored:
            rng = np.random.default_rng(seed)
            a = kronecker_split(d)
            factors = tuple(
                torch.as_tensor(random_orthogonal(size, rng, fix_ones=fix_ones))
                for size in (a, d // a)
            )
            rotation = torch.kron(*factors)
        else:
            rotation = random_orthogonal(d, seed, fix_ones=fix_ones)
        used_seed: int | None = seed
    elif factored:
        raise InvalidArgumentError(
            "factored=True draws its own rotation; pass either rotation or factored"
        )
    else:
        used_seed = None
    Q = check_rotation(rotation, layout, tol)
    operator = _Rotation(Q, factors)
    return _rotate(model, layout, operator, used_seed, inplace=inplace, fold=True)


def kronecker_split(d: int) -> int:
    """Return the largest divisor ``a`` of ``d`` with ``a * a <= d``."""
    a = int(math.isqrt(d))
    while d % a:
        a -= 1
    return a


def _rotate(
    model: nn.Module,
    layout: StreamLayout,
    rotation: _Rotation | torch.Tensor,
    seed: int | None,
    *,
    inplace: bool,
    fold: bool,
) -> RotationResult:
    """Compute every new tensor from ``model``, then build the result.

    ``fold=False`` skips the folding; it exists to show that the rotation
    needs it when the norms have gains other than 1.
    """
    if not isinstance(rotation, _Rotation):
        rotation = _Rotation(rotation)
    new: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in layout.embeddings:
            weight = model.get_submodule(name).weight
            rows = weight.detach().to(_compute_dtype(weight))
            new[f"{name}.weight"] = rotation.right(rows).to(weight.dtype)
        for name in layout.writers:
            _rotate_writer(model.get_submodule(name), name, rotation, new)
        untie = False
        for site in layout.norms:
            untie |= _fold_and_rotate_site(model, layout, site, rotation, new, fold)
    notes = []
    if untie:
        notes.append(
            f"untied {layout.head} from {layout.embeddings[0]}: with the final "
            "norm folded in, the head weight differs from the embedding"
        )
        logger.info("%s", notes[-1])
    if inplace:
        rotated = model
        _assign_inplace(rotated, new, layout, untie)
    else:
        rotated = _copy_with(model, new, layout, untie)
    if untie:
        _mark_untied(rotated)
    return RotationResult(
        model=rotated,
        rotation=rotation.Q.clone(),
        layout=layout,
        seed=seed,
        untied_head=untie,
        notes=notes,
        factored=rotation.factors is not None,
    )


class _Rotation:
    """``Q``, or its Kronecker factors, applied to weight matrices.

    Each matrix is converted once per device and compute dtype.
    """

    def __init__(
        self, Q: torch.Tensor, factors: tuple[torch.Tensor, ...] | None = None
    ) -> None:
        self.Q = Q
        self.factors = factors
        self.converted: dict[tuple[Any, torch.dtype], tuple[torch.Tensor, ...]] = {}

    def _matrices(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        key = (tensor.device, tensor.dtype)
        if key not in self.converted:
            source = (self.Q,) if self.factors is None else self.factors
            self.converted[key] = tuple(
                m.to(device=tensor.device, dtype=tensor.dtype) for m in source
            )
        return self.converted[key]

    def right(
        self, X: torch.Tensor, gain: torch.Tensor | None = None, centre: bool = False
    ) -> torch.Tensor:
        """Return ``X diag(gain) C Q^T``, with ``diag(gain)`` and ``C`` optional.

        ``centre`` applies ``C = I - 1 1^T / n``. With a dense ``Q`` the two
        factors go into the small matrix, so ``X`` is read once.
        """
        matrices = self._matrices(X)
        if self.factors is None:
            (Q,) = matrices
            scale = torch.ones_like(Q[:, 0]) if gain is None else gain
            M = scale[:, None] * Q.T
            if centre:
                # diag(g) C Q^T = diag(g) Q^T - g 1^T / n, because Q 1 = 1.
                M = M - scale[:, None] / M.shape[0]
            return X @ M
        if gain is not None:
            X = X * gain[None, :]
        if centre:
            X = X - X.mean(dim=1, keepdim=True)
        first, second = matrices
        stacked = X.reshape(X.shape[0], first.shape[0], second.shape[0])
        # (Q1 kron Q2) acts on the (a, b) reshaped row as Q1 Y Q2^T.
        return torch.matmul(torch.matmul(first, stacked), second.T).reshape(X.shape)

    def left(self, W: torch.Tensor) -> torch.Tensor:
        """Return ``Q W`` for a matrix ``W`` with ``hidden`` rows."""
        matrices = self._matrices(W)
        if self.factors is None:
            return matrices[0] @ W
        first, second = matrices
        a, b = first.shape[0], second.shape[0]
        columns = W.shape[1]
        mixed = (first @ W.reshape(a, b * columns)).reshape(a, b, columns)
        return torch.matmul(second, mixed).reshape(W.shape)


def _rotate_writer(
    module: nn.Module,
    name: str,
    rotation: _Rotation,
    new: dict[str, torch.Tensor],
) -> None:
    dtype = _compute_dtype(module.weight)
    new[f"{name}.weight"] = _stored(
        module, rotation.left(_weight_out_in(module, dtype))
    )
    bias = getattr(module, "bias", None)
    if bias is not None:
        rotated = rotation.left(bias.detach().to(dtype)[:, None])[:, 0]
        new[f"{name}.bias"] = rotated.to(bias.dtype)


def _fold_and_rotate_site(
    model: nn.Module,
    layout: StreamLayout,
    site: NormSite,
    rotation: _Rotation,
    new: dict[str, torch.Tensor],
    fold: bool,
) -> bool:
    """Fold one norm into its readers and rotate their inputs.

    Each reader's new weight is ``W diag(g) Q^T``, or ``W diag(g) C Q^T``
    plus ``(W beta) 1^T / n`` when the norm's bias goes along 1. Returns
    whether the head, tied to the embedding, must be untied.
    """
    norm = model.get_submodule(site.norm)
    gain = norm.weight.detach()
    norm_bias = getattr(norm, "bias", None)
    beta = None if norm_bias is None else norm_bias.detach()
    n = gain.shape[0]
    readers = [model.get_submodule(r) for r in site.readers]
    has_beta = fold and beta is not None and bool(beta.ne(0).any())
    # A bias-free reader of a LayerNorm with a bias takes the bias along 1.
    ones_bias = has_beta and any(getattr(r, "bias", None) is None for r in readers)
    changed = fold and (bool(gain.ne(1).any()) or ones_bias)
    for name, reader in zip(site.readers, readers, strict=True):
        dtype = _compute_dtype(reader.weight)
        W = _weight_out_in(reader, dtype)
        if not fold:
            new[f"{name}.weight"] = _stored(reader, rotation.right(W))
            continue
        g = gain.to(device=W.device, dtype=dtype)
        rotated = rotation.right(W, gain=g, centre=ones_bias)
        if has_beta:
            shift = W @ beta.to(device=W.device, dtype=dtype)
            bias = getattr(reader, "bias", None)
            if ones_bias:
                # (W beta) 1^T Q^T / n = (W beta) 1^T / n, because Q 1 = 1.
                rotated = rotated + shift[:, None] / n
            elif bias is not None:
                new_bias = bias.detach().to(dtype) + shift
                new[f"{name}.bias"] = new_bias.to(bias.dtype)
        new[f"{name}.weight"] = _stored(reader, rotated)
    if fold:
        new[f"{site.norm}.weight"] = torch.ones_like(gain)
        if beta is not None:
            new[f"{site.norm}.bias"] = (
                torch.ones_like(beta) if ones_bias else torch.zeros_like(beta)
            )
    return layout.tied_head and layout.head in site.readers and changed


def _copy_with(
    model: nn.Module,
    new: dict[str, torch.Tensor],
    layout: StreamLayout,
    untie: bool,
) -> nn.Module:
    """Deep-copy ``model`` with the new tensors in place of the old ones.

    The old tensors are never copied: the copy's memo maps each of them to
    its new parameter, so a tied parameter stays shared in the copy.
    """
    originals = dict(model.named_parameters(remove_duplicate=False))
    head_name = f"{layout.head}.weight"
    memo: dict[int, Any] = {}
    for name, tensor in new.items():
        if layout.tied_head and name == head_name:
            # Unless it is untied below, the head shares the embedding's new
            # rows, which equal its own new weight when nothing was folded.
            continue
        original = originals[name]
        memo[id(original)] = nn.Parameter(tensor, requires_grad=original.requires_grad)
    duplicate = copy.deepcopy(model, memo)
    if untie:
        head = duplicate.get_submodule(layout.head)
        original = originals[head_name]
        head.weight = nn.Parameter(new[head_name], requires_grad=original.requires_grad)
    return duplicate


def _assign_inplace(
    model: nn.Module, new: dict[str, torch.Tensor], layout: StreamLayout, untie: bool
) -> None:
    parameters = dict(model.named_parameters(remove_duplicate=False))
    head_name = f"{layout.head}.weight"
    with torch.no_grad():
        for name, tensor in new.items():
            if name == head_name and (untie or layout.tied_head):
                continue
            parameters[name].copy_(tensor)
    if untie:
        head = model.get_submodule(layout.head)
        original = parameters[head_name]
        head.weight = nn.Parameter(new[head_name], requires_grad=original.requires_grad)


def _mark_untied(model: nn.Module) -> None:
    """Record in the config that the head no longer shares the embedding."""
    config = getattr(model, "config", None)
    if config is not None:
        config.tie_word_embeddings = False
