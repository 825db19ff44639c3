"""The real-network part of ``symgroups tour``: permute MiniLM's feed-forward units.

Each BERT layer of all-MiniLM-L6-v2 computes ``W2 gelu(W1 x + b1) + b2`` in
its feed-forward block. Permutations are GELU's whole intertwiner group, so
``W1 -> P W1``, ``b1 -> P b1``, ``W2 -> W2 P^T`` leaves the block, and hence
the sentence embeddings, unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch

from ._apply import apply_transform
from ._discover import find_symmetries
from ._errors import NNBridgeError
from ._transform import Transform

logger = logging.getLogger(__name__)

#: The block a feed-forward site belongs to, as its module path ends.
FEEDFORWARD_SUFFIX = ".intermediate.dense"


@dataclasses.dataclass(frozen=True)
class FeedForwardReport:
    """The outcome of permuting MiniLM's feed-forward units.

    ``max_abs_deviation`` is the largest absolute change of any coordinate of
    the L2-normalised sentence embeddings, in float32.
    """

    sites: tuple[str, ...]
    units: int
    moved_units: int
    sentences: int
    max_abs_deviation: float
    discovery_seconds: float
    group_description: str

    def lines(self) -> list[str]:
        per_site = self.units // len(self.sites)
        return [
            f"found {len(self.sites)} feed-forward sites of {per_site} units each "
            f"in {self.discovery_seconds:.1f} s; group: {self.group_description}",
            f"applied random permutations: {self.moved_units} of {self.units} units "
            f"moved, weights of every layer rewritten",
            f"encoded {self.sentences} real sentences with the original and the "
            "permuted model",
        ]


def feedforward_transform(spec, seed: int) -> Transform:
    """Random permutations on the feed-forward sites; identity elsewhere."""
    sample = spec.sample(seed=seed)
    transform = Transform.identity(spec)
    for name in transform.elements:
        if name.endswith(FEEDFORWARD_SUFFIX):
            element = sample.elements[name]
            transform.elements[name] = dataclasses.replace(
                transform.elements[name], perm=element.perm
            )
    return transform


def permute_minilm_feedforward(seed: int = 0) -> FeedForwardReport:
    """Permute every feed-forward block of all-MiniLM-L6-v2 and compare embeddings.

    The law checked is ``embed(model) = embed(permuted model)`` on the
    sentences of :data:`nn_bridge.pretrained.SENTENCES`.
    """
    from .pretrained import SENTENCES, encode, load_minilm, minilm_inputs

    model, tokenizer = load_minilm()
    inputs = minilm_inputs(tokenizer, SENTENCES)
    started = time.perf_counter()
    spec = find_symmetries(model, inputs)
    discovery_seconds = time.perf_counter() - started
    sites = [s for s in spec.sites if s.name.endswith(FEEDFORWARD_SUFFIX)]
    if not sites:
        raise NNBridgeError("no feed-forward sites were found in all-MiniLM-L6-v2")
    transform = feedforward_transform(spec, seed)
    permuted = apply_transform(model, spec, transform, example_inputs=inputs)
    with torch.no_grad():
        before = encode(model, tokenizer, SENTENCES)
        after = encode(permuted, tokenizer, SENTENCES)
    deviation = float((before - after).abs().max())
    moved = sum(
        int(np.count_nonzero(transform.elements[s.name].perm != np.arange(s.size)))
        for s in sites
    )
    logger.info("MiniLM feed-forward permutation: max |delta| = %.3g", deviation)
    return FeedForwardReport(
        sites=tuple(s.name for s in sites),
        units=sum(s.size for s in sites),
        moved_units=moved,
        sentences=len(SENTENCES),
        max_abs_deviation=deviation,
        discovery_seconds=discovery_seconds,
        group_description=sites[0].describe_group(),
    )
