"""Time ``rotate_residual_stream`` against a deepcopy of the state dict.

The rotation returns a new model, so the deepcopy of the whole module (its
config and buffers included) is also timed: on the tiny models it costs far
more than the state dict alone.

Models: the tiny LLaMA (tied head) and GPT-2 of the tests, and a larger LLaMA
(hidden 512, 8 layers, vocabulary 32000, untied head), all float32 with random
init. Target: a rotation at most 5x the time of ``copy.deepcopy`` of the state
dict. ``factored=True`` (a Kronecker product of two small Haar-random factors)
is timed too. Run ``python benchmarks/bench_rotate.py [--threads N]``; it prints the
median of ``REPEATS`` runs and makes no assertion.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from nn_bridge import rotate_residual_stream

#: Timed runs per measurement; the median is reported.
REPEATS = 5

#: Default CPU threads, as on the 2-core machines the target refers to.
THREADS = 2


def median_seconds(function, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def perturb_gains(model: torch.nn.Module) -> torch.nn.Module:
    # Gains other than 1 make the rotation fold every norm, as on a real model.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    tiny_llama = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=100,
            tie_word_embeddings=True,
        )
    )
    tiny_gpt2 = GPT2LMHeadModel(
        GPT2Config(
            n_embd=64,
            n_layer=2,
            n_head=4,
            vocab_size=100,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    large_llama = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=512,
            intermediate_size=1408,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=8,
            vocab_size=32000,
            tie_word_embeddings=False,
        )
    )
    return {
        "tiny LLaMA (hidden 64, 2 layers, tied)": tiny_llama,
        "tiny GPT-2 (n_embd 64, 2 layers, tied)": tiny_gpt2,
        "LLaMA (hidden 512, 8 layers, vocab 32000)": large_llama,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads")
    threads = parser.parse_args().threads
    torch.set_num_threads(threads)
    print(f"threads: {threads}, torch {torch.__version__}")
    print(
        "| model | parameters | deepcopy of state dict | deepcopy of model | "
        "rotate (ratio to state dict, to model) | factored rotate (ratios) |"
    )
    print("|---|---|---|---|---|---|")
    for label, model in models().items():
        model = perturb_gains(model.eval())
        count = sum(p.numel() for p in model.parameters())
        deepcopy = median_seconds(lambda m=model: copy.deepcopy(m.state_dict()))
        model_copy = median_seconds(lambda m=model: copy.deepcopy(m))
        rotate = median_seconds(lambda m=model: rotate_residual_stream(m, seed=0))
        factored = median_seconds(
            lambda m=model: rotate_residual_stream(m, seed=0, factored=True)
        )
        cells = [
            label,
            f"{count / 1e6:.2f} M",
            f"{deepcopy * 1e3:.1f} ms",
            f"{model_copy * 1e3:.1f} ms",
        ]
        for seconds in (rotate, factored):
            cells.append(
                f"{seconds * 1e3:.1f} ms ({seconds / deepcopy:.2f}x, "
                f"{seconds / model_copy:.2f}x)"
            )
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
