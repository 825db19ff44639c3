"""Time nn_bridge on all-MiniLM-L6-v2: discovery, and applying a transform.

Targets: discovery under 10 s on 2 CPU threads, and ``apply_transform``
(``check=False``) within 2x the time of ``copy.deepcopy`` of the state dict.
Run ``python benchmarks/bench_nn_bridge.py``; it prints the median of
``REPEATS`` runs and makes no assertion.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from nn_bridge import SymgroupsResolver, apply_transform, find_symmetries, pretrained

#: Timed runs per measurement; the median is reported.
REPEATS = 3

#: CPU threads, as on the 2-core machines the targets refer to.
THREADS = 2


def median_seconds(function, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(THREADS)
    model, tokenizer = pretrained.load_minilm()
    inputs = pretrained.minilm_inputs(tokenizer)
    resolver = SymgroupsResolver()
    start = time.perf_counter()
    spec = find_symmetries(model, inputs, resolver=resolver)
    first = time.perf_counter() - start
    discovery = median_seconds(
        lambda: find_symmetries(model, inputs, resolver=resolver)
    )
    transform = spec.sample(seed=0)
    deepcopy = median_seconds(lambda: copy.deepcopy(model.state_dict()))
    apply = median_seconds(lambda: apply_transform(model, spec, transform, check=False))
    print(f"threads: {THREADS}")
    print(f"discovery, first call (symgroups queries included): {first:.2f} s")
    print(f"discovery, cached groups: {discovery:.2f} s (target < 10 s)")
    print(f"deepcopy of the state dict: {deepcopy:.3f} s")
    print(
        f"apply_transform: {apply:.3f} s = {apply / deepcopy:.2f}x deepcopy "
        "(target <= 2x)"
    )


if __name__ == "__main__":
    main()
