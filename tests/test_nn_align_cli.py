"""The ``align``, ``canonicalize`` and ``merge`` commands of ``nn_bridge._align_cli``.

The factories below are the MODEL arguments (``test_nn_align_cli:mlp_a``);
pytest puts this folder on ``sys.path``, and the subprocess test passes it
in ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import nets
import pytest
import torch
from safetensors.torch import load_model as load_weights
from safetensors.torch import save_file, save_model
from torch import nn

from nn_bridge import apply_transform, check_function_preserved, find_symmetries
from nn_bridge._align_cli import add_commands, main, run

INPUT_SHAPE = "4,5"
REPOSITORY = pathlib.Path(__file__).resolve().parent.parent


def mlp_a() -> nn.Module:
    return nets.mlp((5, 8, 3), nn.Tanh, seed=0)


def mlp_b() -> nn.Module:
    return nets.mlp((5, 8, 3), nn.Tanh, seed=1)


def mlp_wide() -> nn.Module:
    return nets.mlp((5, 12, 3), nn.Tanh, seed=0)


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_align_writes_aligned_weights(tmp_path, capsys):
    output = tmp_path / "aligned.safetensors"
    transform = tmp_path / "transform.safetensors"
    status, out, err = run_main(
        capsys,
        "align",
        "test_nn_align_cli:mlp_a",
        "test_nn_align_cli:mlp_b",
        "-o",
        str(output),
        "--transform",
        str(transform),
        "--input-shape",
        INPUT_SHAPE,
    )
    assert status == 0, err
    summary = json.loads(out)
    assert summary["command"] == "align"
    assert summary["objective_after"] < summary["objective_before"]
    assert transform.is_file()
    aligned = mlp_b()
    load_weights(aligned, str(output))
    inputs = nets.random_input((4, 5))
    report = check_function_preserved(mlp_b(), aligned, inputs)
    assert report.ok, report.summary()


def test_align_weights_file_recovers_planted(tmp_path, capsys):
    model = mlp_a()
    inputs = nets.random_input((4, 5))
    spec = find_symmetries(model, inputs)
    moved = apply_transform(model, spec, spec.sample(5))
    weights = tmp_path / "moved.safetensors"
    save_model(moved, str(weights))
    output = tmp_path / "aligned.safetensors"
    status, out, err = run_main(
        capsys,
        "align",
        "test_nn_align_cli:mlp_a",
        str(weights),
        "--arch",
        "test_nn_align_cli:mlp_a",
        "--input-shape",
        INPUT_SHAPE,
        "-o",
        str(output),
    )
    assert status == 0, err
    aligned = mlp_a()
    load_weights(aligned, str(output))
    for name, value in model.state_dict().items():
        assert torch.allclose(aligned.state_dict()[name], value, atol=1e-6)


def test_canonicalize_same_fingerprint_for_orbit(tmp_path, capsys):
    model = mlp_a()
    inputs = nets.random_input((4, 5))
    spec = find_symmetries(model, inputs)
    weights = tmp_path / "moved.safetensors"
    save_model(apply_transform(model, spec, spec.sample(2)), str(weights))
    output = tmp_path / "canonical.safetensors"
    status, out, err = run_main(
        capsys,
        "canonicalize",
        "test_nn_align_cli:mlp_a",
        "--input-shape",
        INPUT_SHAPE,
        "-o",
        str(output),
    )
    assert status == 0, err
    first = json.loads(out)
    assert output.is_file()
    status, out, err = run_main(
        capsys,
        "canonicalize",
        str(weights),
        "--arch",
        "test_nn_align_cli:mlp_a",
        "--input-shape",
        INPUT_SHAPE,
    )
    assert status == 0, err
    assert json.loads(out)["fingerprint"] == first["fingerprint"]


def test_output_onto_input_rejected(tmp_path, capsys):
    model = mlp_a()
    weights = tmp_path / "weights.safetensors"
    save_model(model, str(weights))
    before = weights.read_bytes()
    status, out, err = run_main(
        capsys,
        "canonicalize",
        str(weights),
        "--arch",
        "test_nn_align_cli:mlp_a",
        "--input-shape",
        INPUT_SHAPE,
        "-o",
        str(weights),
    )
    assert status == 2
    assert out == ""
    assert "it is an input of this command" in err
    assert weights.read_bytes() == before


def test_outputs_follow_umask(tmp_path, capsys):
    output = tmp_path / "canonical.safetensors"
    previous = os.umask(0o022)
    try:
        status, _, err = run_main(
            capsys,
            "canonicalize",
            "test_nn_align_cli:mlp_a",
            "--input-shape",
            INPUT_SHAPE,
            "-o",
            str(output),
        )
    finally:
        os.umask(previous)
    assert status == 0, err
    assert output.stat().st_mode & 0o777 == 0o644


def test_merge_reports_barrier(tmp_path, capsys):
    inputs = nets.random_input((32, 5))
    targets = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(0))
    data = tmp_path / "data.safetensors"
    save_file({"inputs": inputs, "targets": targets}, str(data))
    output = tmp_path / "merged.safetensors"
    status, out, err = run_main(
        capsys,
        "merge",
        "test_nn_align_cli:mlp_a",
        "test_nn_align_cli:mlp_b",
        "--input-shape",
        INPUT_SHAPE,
        "--alpha",
        "0.25",
        "--align",
        "--data",
        str(data),
        "--alphas",
        "0,0.5,1",
        "-o",
        str(output),
    )
    assert status == 0, err
    summary = json.loads(out)
    assert summary["alpha"] == 0.25
    assert summary["interpolation"]["alphas"] == [0.0, 0.5, 1.0]
    assert summary["interpolation"]["barrier"] >= 0.0
    assert "alignment" in summary
    merged = mlp_a()
    load_weights(merged, str(output))
    assert output.is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["align", "test_nn_align_cli:mlp_a", "x.safetensors", "-o", "out"],
            r"weights file 'x\.safetensors' not found",
        ),
        (
            [
                "align",
                "test_nn_align_cli:mlp_a",
                "test_nn_align_cli:mlp_wide",
                "-o",
                "out.safetensors",
            ],
            r"models differ at tensor '0\.weight'",
        ),
        (
            ["canonicalize", "test_nn_align_cli:mlp_a", "-o", "/nonexistent/x"],
            r"invalid -o '/nonexistent/x'",
        ),
        (
            ["merge", "test_nn_align_cli:mlp_a", "test_nn_align_cli:mlp_b"]
            + ["--alphas", "0,half"],
            r"invalid --alphas '0,half'",
        ),
        (
            ["merge", "test_nn_align_cli:mlp_a", "test_nn_align_cli:mlp_b"]
            + ["--data", "missing.safetensors"],
            r"--data file 'missing\.safetensors' not found",
        ),
        (
            ["align", "test_nn_align_cli:mlp_a", "test_nn_align_cli:mlp_b"]
            + ["-o", "out.safetensors", "--restarts", "0"],
            r"invalid --restarts 0",
        ),
        (
            ["align", "test_nn_align_cli:mlp_a", "test_nn_align_cli:mlp_b"]
            + ["-o", "out.safetensors", "--restarts", "1000001"],
            r"invalid --restarts 1000001: expected a whole number from 1 to 1000",
        ),
        (
            ["merge", "test_nn_align_cli:mlp_a", "test_nn_align_cli:mlp_b"],
            r"merge writes nothing without -o",
        ),
        (
            ["merge", "test_nn_align_cli:mlp_a", "test_nn_align_cli:mlp_b"]
            + ["-o", "out.safetensors", "--reset-bn"],
            r"--reset-bn re-estimates statistics on --data",
        ),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, monkeypatch, argv, message):
    import re

    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(capsys, *argv, "--input-shape", INPUT_SHAPE)
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_weights_file_needs_arch(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    save_model(mlp_a(), str(weights))
    status, _, err = run_main(capsys, "canonicalize", str(weights))
    assert status == 2
    assert "needs --arch" in err


def test_weights_file_of_other_architecture(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    save_model(mlp_wide(), str(weights))
    status, _, err = run_main(
        capsys,
        "canonicalize",
        str(weights),
        "--arch",
        "test_nn_align_cli:mlp_a",
        "--input-shape",
        INPUT_SHAPE,
    )
    assert status == 2
    assert "cannot load" in err
    assert len(err.strip().splitlines()) == 1


def test_add_commands_dispatch_through_run(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="nn-bridge")
    commands = parser.add_subparsers(dest="command", required=True)
    add_commands(commands)
    args = parser.parse_args(
        ["canonicalize", "test_nn_align_cli:mlp_a", "--input-shape", INPUT_SHAPE]
    )
    assert args.run is run
    assert run(args) == 0
    assert "fingerprint" in json.loads(capsys.readouterr().out)


def test_subprocess_exit_status_and_stderr(tmp_path):
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY), str(REPOSITORY / "tests")]
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "nn_bridge._align_cli",
            "align",
            "test_nn_align_cli:mlp_a",
            "test_nn_align_cli:mlp_wide",
            "-o",
            str(tmp_path / "out.safetensors"),
            "--input-shape",
            INPUT_SHAPE,
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.count("\n") == 1
    assert "models differ at tensor '0.weight'" in completed.stderr


@pytest.mark.slow
def test_align_minilm_directory_recovers_planted(tmp_path, capsys):
    from nn_bridge import pretrained

    directory = str(pretrained.minilm_path())
    model, tokenizer = pretrained.load_minilm()
    inputs = pretrained.minilm_inputs(tokenizer)
    spec = find_symmetries(model, inputs)
    weights = tmp_path / "moved.safetensors"
    save_model(apply_transform(model, spec, spec.sample(4)), str(weights))
    output = tmp_path / "aligned.safetensors"
    status, out, err = run_main(
        capsys,
        "align",
        directory,
        str(weights),
        "--arch",
        directory,
        "--restarts",
        "1",
        "-o",
        str(output),
    )
    assert status == 0, err
    assert json.loads(out)["objective_after"] < 1e-12
    aligned, _ = pretrained.load_minilm()
    load_weights(aligned, str(output))
    for name, value in model.state_dict().items():
        assert torch.allclose(aligned.state_dict()[name], value, atol=1e-6), name
