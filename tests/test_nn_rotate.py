"""Rotating the residual stream of small LLaMA and GPT-2 models.

Every model is built from a transformers config with random init and its norm
gains, norm biases and layer biases perturbed, so that a folding mistake
changes the logits. The logits are compared in float64.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    BertConfig,
    BertLMHeadModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from nn_bridge import (
    InvalidArgumentError,
    TransformError,
    rotate_residual_stream,
)
from nn_bridge import _rotate as rotate_module
from nn_bridge._rotate import _rotate
from nn_bridge.cli import main
from symgroups import random_orthogonal

#: Largest accepted max-abs deviation of the logits.
LOGITS_ATOL = 1e-5

#: A broken rotation must move some logit by more than this.
BROKEN_MIN_DEVIATION = 1e-3

VOCAB = 100


def perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every gain and bias away from its init (gains 1, biases 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 1:
                noise = torch.randn(
                    parameter.shape, generator=generator, dtype=parameter.dtype
                )
                parameter.add_(0.3 * noise)
    return model


def llama(tied: bool, biases: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=VOCAB,
        tie_word_embeddings=tied,
        attention_bias=biases,
        mlp_bias=biases,
    )
    return perturb(LlamaForCausalLM(config).double().eval())


def gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        n_embd=64,
        n_layer=2,
        n_head=4,
        vocab_size=VOCAB,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    return perturb(GPT2LMHeadModel(config).double().eval())


def token_ids(seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (3, 12), generator=generator)


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits


def deviation(a: torch.nn.Module, b: torch.nn.Module) -> float:
    ids = token_ids()
    return float((logits(a, ids) - logits(b, ids)).abs().max())


def state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name


MODELS = {
    "llama_tied": lambda: llama(tied=True),
    "llama_untied_biases": lambda: llama(tied=False, biases=True),
    "gpt2": gpt2,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_rotation_preserves_logits(name):
    model = MODELS[name]()
    before = state_copy(model)
    result = rotate_residual_stream(model, seed=3)
    assert deviation(model, result.model) <= LOGITS_ATOL
    assert_unchanged(model, before)
    Q = result.rotation.numpy()
    assert np.allclose(Q.T @ Q, np.eye(64), atol=1e-12)


@pytest.mark.parametrize("name", list(MODELS))
def test_rotation_changes_weights_and_folds_norms(name):
    model = MODELS[name]()
    result = rotate_residual_stream(model, seed=3)
    embedding = result.layout.embeddings[0]
    old = model.get_submodule(embedding).weight
    new = result.model.get_submodule(embedding).weight
    assert (old - new).abs().max() > 0.01
    for site in result.layout.norms:
        norm = result.model.get_submodule(site.norm)
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)), site.norm


@pytest.mark.parametrize(
    ("config_class", "model_class"),
    [(MistralConfig, MistralForCausalLM), (Qwen2Config, Qwen2ForCausalLM)],
)
def test_rotation_of_llama_style_families(config_class, model_class):
    torch.manual_seed(0)
    config = config_class(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        tie_word_embeddings=True,
    )
    model = perturb(model_class(config).double().eval())
    result = rotate_residual_stream(model, seed=4)
    assert result.layout.norm_kind == "rmsnorm"
    assert result.untied_head
    assert deviation(model, result.model) <= LOGITS_ATOL


def test_rotated_stream_is_q_times_original():
    model = llama(tied=False)
    result = rotate_residual_stream(model, seed=5)
    ids = token_ids()
    with torch.no_grad():
        original = model(input_ids=ids, output_hidden_states=True).hidden_states
        rotated = result.model(input_ids=ids, output_hidden_states=True).hidden_states
    Q = result.rotation
    # hidden_states[0] is the embedding output, before any norm.
    assert torch.allclose(rotated[0], original[0] @ Q.T, atol=1e-12)
    assert torch.allclose(rotated[1], original[1] @ Q.T, atol=1e-6)


def test_tied_llama_is_untied_in_copy_only():
    model = llama(tied=True)
    result = rotate_residual_stream(model, seed=0)
    assert result.untied_head
    assert result.notes and "untied lm_head" in result.notes[0]
    rotated = result.model
    assert rotated.lm_head.weight is not rotated.model.embed_tokens.weight
    assert rotated.config.tie_word_embeddings is False
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert model.config.tie_word_embeddings is True


def test_tied_llama_with_unit_final_gain_stays_tied():
    model = llama(tied=True)
    with torch.no_grad():
        model.model.norm.weight.fill_(1.0)
    result = rotate_residual_stream(model, seed=0)
    assert not result.untied_head
    rotated = result.model
    assert rotated.lm_head.weight is rotated.model.embed_tokens.weight
    assert deviation(model, rotated) <= LOGITS_ATOL


def test_gpt2_head_untied_and_final_bias_along_ones():
    model = gpt2()
    result = rotate_residual_stream(model, seed=2)
    assert result.untied_head
    final = result.model.transformer.ln_f
    assert torch.equal(final.bias, torch.ones_like(final.bias))
    assert result.model.lm_head.bias is None
    inner = result.model.transformer.h[0].ln_1
    assert torch.equal(inner.bias, torch.zeros_like(inner.bias))


def test_inplace_rotation_changes_the_model():
    model = llama(tied=True)
    reference = llama(tied=True)
    result = rotate_residual_stream(model, seed=1, inplace=True)
    assert result.model is model
    assert deviation(reference, model) <= LOGITS_ATOL
    assert not torch.equal(
        model.model.embed_tokens.weight, reference.model.embed_tokens.weight
    )


def test_given_rotation_is_used():
    model = gpt2()
    Q = random_orthogonal(64, 7, fix_ones=True)
    result = rotate_residual_stream(model, Q)
    assert np.allclose(result.rotation.numpy(), Q)
    assert result.seed is None
    assert deviation(model, result.model) <= LOGITS_ATOL


@pytest.mark.parametrize("name", list(MODELS))
def test_factored_rotation_preserves_logits(name):
    model = MODELS[name]()
    result = rotate_residual_stream(model, seed=6, factored=True)
    assert result.factored
    assert deviation(model, result.model) <= LOGITS_ATOL
    Q = result.rotation.numpy()
    # hidden 64 splits as 8 x 8. Q[8 i + j, 8 k + l] = Q1[i, k] Q2[j, l], so
    # the entries rearranged by (i, k) and (j, l) form a rank-one matrix.
    rearranged = Q.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
    singular = np.linalg.svd(rearranged, compute_uv=False)
    assert singular[1] < 1e-12 * singular[0]
    if result.layout.norm_kind == "layernorm":
        assert np.allclose(Q @ np.ones(64), np.ones(64))


@pytest.mark.parametrize("name", list(MODELS))
def test_factored_matches_dense_product(name):
    model = MODELS[name]()
    factored = rotate_residual_stream(model, seed=6, factored=True)
    dense = rotate_residual_stream(model, factored.rotation.numpy())
    assert not dense.factored
    fast, slow = factored.model.state_dict(), dense.model.state_dict()
    assert fast.keys() == slow.keys()
    for key, tensor in slow.items():
        assert torch.allclose(fast[key], tensor, atol=1e-12), key


def test_factored_with_rotation_is_rejected():
    with pytest.raises(InvalidArgumentError, match=r"either rotation or factored"):
        rotate_residual_stream(llama(tied=False), np.eye(64), factored=True)


def test_gpt2_rejects_rotation_moving_ones():
    model = gpt2()
    with pytest.raises(TransformError, match=r"fix the all-ones vector"):
        rotate_residual_stream(model, random_orthogonal(64, 7))


def test_rotation_moving_ones_changes_gpt2_logits():
    model = gpt2()
    layout = rotate_residual_stream(model, seed=0).layout
    Q = torch.as_tensor(random_orthogonal(64, 7))
    broken = _rotate(model, layout, Q, None, inplace=False, fold=True)
    assert deviation(model, broken.model) > BROKEN_MIN_DEVIATION


@pytest.mark.parametrize("name", list(MODELS))
def test_rotation_without_folding_changes_logits(name):
    model = MODELS[name]()
    reference = rotate_residual_stream(model, seed=3)
    broken = _rotate(
        model, reference.layout, reference.rotation, None, inplace=False, fold=False
    )
    assert deviation(model, broken.model) > BROKEN_MIN_DEVIATION


@pytest.mark.parametrize(
    ("rotation", "message"),
    [
        (np.eye(3), r"must be 64x64"),
        (2.0 * np.eye(64), r"not orthogonal"),
        (np.full((64, 64), np.nan), r"not finite"),
    ],
)
def test_bad_rotation_is_rejected(rotation, message):
    with pytest.raises(TransformError, match=message):
        rotate_residual_stream(llama(tied=False), rotation)


def test_unsupported_model_is_rejected():
    with pytest.raises(InvalidArgumentError, match=r"cannot rotate Sequential"):
        rotate_residual_stream(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_base_model_without_head_is_rejected():
    model = llama(tied=False).model
    with pytest.raises(InvalidArgumentError, match=r"AutoModelForCausalLM"):
        rotate_residual_stream(model)


@pytest.mark.parametrize("tied", [True, False])
def test_cli_rotate_writes_loadable_directory(tmp_path, capsys, tied):
    source = tmp_path / "source"
    model = llama(tied=tied).float()
    model.save_pretrained(source)
    output = tmp_path / "rotated"
    assert main(["rotate", str(source), "-o", str(output), "--seed", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith(f"wrote {output}")
    assert ("head untied" in line) is tied
    rotated = AutoModelForCausalLM.from_pretrained(output, local_files_only=True)
    assert rotated.config.tie_word_embeddings is False or not tied
    assert deviation(model.double(), rotated.double().eval()) <= LOGITS_ATOL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rotated", "source"]


def test_cli_rotate_json_gpt2(tmp_path, capsys):
    source = tmp_path / "gpt2"
    gpt2().float().save_pretrained(source)
    output = tmp_path / "out"
    argv = ["rotate", str(source), "-o", str(output), "--json", "--factored"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["factored"] is True
    assert summary["architecture"] == "GPT2LMHeadModel"
    assert summary["norm"] == "layernorm"
    assert summary["folded_norms"] == 5
    assert summary["untied_head"] is True
    assert summary["function_preserved"] is True
    assert summary["max_abs_logit_deviation"] < LOGITS_ATOL


def test_cli_rotate_bad_arguments_exit_2(tmp_path, capsys):
    source = tmp_path / "source"
    llama(tied=False).float().save_pretrained(source)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text("{}")
    bert = BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=VOCAB,
        is_decoder=True,
    )
    BertLMHeadModel(bert).save_pretrained(tmp_path / "bert")
    capsys.readouterr()
    cases = [
        ([str(tmp_path / "missing"), "-o", str(tmp_path / "o1")], "not a directory"),
        ([str(source), "-o", str(tmp_path / "full")], "already exists"),
        ([str(source), "-o", str(tmp_path / "no" / "o")], "does not exist"),
        ([str(source), "-o", str(tmp_path / "o2"), "--seed", "-1"], "invalid seed"),
        ([str(tmp_path / "plain"), "-o", str(tmp_path / "o3")], "cannot load"),
        ([str(tmp_path / "bert"), "-o", str(tmp_path / "o4")], "cannot rotate"),
        ([str(source)], "required: -o"),
    ]
    for argv, message in cases:
        assert main(["rotate", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert message in err, err
    assert not (tmp_path / "o1").exists()
    assert not (tmp_path / "o2").exists()


def test_cli_rotate_changed_logits_exit_1(tmp_path, capsys, monkeypatch):
    source = tmp_path / "source"
    llama(tied=False).float().save_pretrained(source)
    capsys.readouterr()

    def without_folding(model, seed=0, factored=False):
        layout = rotate_module.stream_layout(model)
        Q = torch.as_tensor(random_orthogonal(layout.hidden_size, seed))
        return _rotate(model, layout, Q, seed, inplace=False, fold=False)

    monkeypatch.setattr(rotate_module, "rotate_residual_stream", without_folding)
    output = tmp_path / "out"
    assert main(["rotate", str(source), "-o", str(output)]) == 1
    assert capsys.readouterr().out.startswith("NOT written")
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]
