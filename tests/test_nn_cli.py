"""The nn-bridge command line: inspect and randomize on real models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from nn_bridge.cli import main


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))


FACTORY = "test_nn_cli:small_model"


def test_inspect_factory_prints_table(capsys) -> None:
    assert main(["inspect", FACTORY, "--input-shape", "2,4"]) == 0
    out = capsys.readouterr().out
    assert "monomial" in out
    assert "0.weight[0] out" in out
    assert "excluded hidden units" in out


def test_inspect_json(capsys) -> None:
    assert main(["inspect", FACTORY, "--input-shape", "2,4", "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert [site["name"] for site in spec["sites"]] == ["0"]


def test_randomize_writes_safetensors(tmp_path, capsys) -> None:
    output = tmp_path / "out.safetensors"
    assert (
        main(
            [
                "randomize",
                FACTORY,
                "--input-shape",
                "2,4",
                "-o",
                str(output),
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert "ok" in capsys.readouterr().out
    weights = load_file(output)
    assert set(weights) == set(small_model().state_dict())
    assert not torch.equal(weights["0.weight"], small_model().state_dict()["0.weight"])
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", FACTORY, "--input-shape", "2,x"], r"invalid --input-shape '2,x'"),
        (["inspect", FACTORY], r"needs --input-shape"),
        (
            ["inspect", "no_such_thing"],
            r"neither a directory nor package.module:factory",
        ),
        (["inspect", "no_such_module_xyz:f", "--input-shape", "1"], r"cannot import"),
        (["randomize", FACTORY, "--input-shape", "2,4"], r"required: -o"),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err)
    assert "Traceback" not in err


def test_randomize_rejects_missing_directory(tmp_path, capsys) -> None:
    output = tmp_path / "missing" / "out.safetensors"
    assert main(["randomize", FACTORY, "--input-shape", "2,4", "-o", str(output)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_inspect_transformers_directory(tmp_path, capsys) -> None:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=12,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(tmp_path)
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "attention" in out
    assert "encoder.layer.0.intermediate.dense" in out


def test_help_describes_options(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["randomize", "--help"])
    out = capsys.readouterr().out
    assert "seed of the group element" in out
    assert "safetensors file to write" in out


class NoisyModel(nn.Module):
    """A model whose output has fresh noise on every call, so no copy matches."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 8)
        self.second = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.first(x))
        return self.second(hidden) + torch.rand_like(x[:, :3])


def noisy_model() -> nn.Module:
    torch.manual_seed(0)
    return NoisyModel()


def test_randomize_changed_function_writes_nothing(tmp_path, capsys) -> None:
    output = tmp_path / "noisy.safetensors"
    argv = ["randomize", "test_nn_cli:noisy_model", "--input-shape", "2,4"]
    status = main([*argv, "-o", str(output)])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""
    assert "not writing" in captured.err
    assert not output.exists()
