"""The experiments command line, run on its own parser, and its sweep backends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nn_bridge.experiments.cli import main
from nn_bridge.experiments.sweep import (
    Executor,
    SweepConfig,
    run_similarity_sweep,
    run_stitching_sweep,
)

SMALL = ["--quick", "--families", "mlp", "--activations", "relu", "--no-progress"]


def test_stitching_small_writes_results(tmp_path) -> None:
    assert main(["stitching", *SMALL, "-o", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["config"]["mode"] == "quick"
    assert document["config"]["seeds"] == [0, 1]
    kinds = {row["kind"] for row in document["results"]}
    assert kinds == {
        "affine",
        "group_align",
        "group_relax",
        "permutation",
        "orthogonal",
    }
    assert {row["layer"] for row in document["results"]} == {"act1", "act2"}
    affine = [row for row in document["summary"] if row["kind"] == "affine"]
    assert all(0.0 <= row["group_distance_mean"] <= 1.5 for row in affine)
    assert (tmp_path / "stitching_accuracy.png").stat().st_size > 1000
    assert (tmp_path / "stitching_distance.png").stat().st_size > 1000


def test_similarity_small_writes_invariance(tmp_path) -> None:
    figures = tmp_path / "figures"
    args = ["similarity", *SMALL, "-o", str(tmp_path), "--figures-dir", str(figures)]
    assert main(args) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    table = document["invariance"][0]["rows"]
    by_name = {row["transform"]: row for row in table}
    assert by_name["layer group phi(G)"]["group_dissimilarity"] < 1e-6
    assert by_name["sign flips (half the units)"]["group_dissimilarity"] > 1e-2
    assert by_name["orthogonal (Haar)"]["1 - linear_cka"] < 1e-6
    assert (figures / "similarity_invariance.png").exists()
    assert (figures / "similarity_measures.png").exists()
    assert not (tmp_path / "similarity_measures.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["stitching", "similarity"])
def test_quick_mode_all_activations(tmp_path, command: str) -> None:
    args = [command, "--quick", "--jobs", "2", "--no-progress", "-o", str(tmp_path)]
    assert main(args) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    activations = {row["activation"] for row in document["results"]}
    assert activations == {"relu", "leaky_relu", "gelu", "tanh", "sigmoid"}
    assert {row["family"] for row in document["results"]} == {"mlp", "cnn"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stitching", "--seeds", "1"], "invalid --seeds '1'"),
        (["stitching", "--seeds", "two"], "invalid --seeds 'two'"),
        (["similarity", "--activations", "relu,swish"], "invalid --activations"),
        (["similarity", "--families", "rnn"], "invalid --families 'rnn'"),
        (["stitching", "--jobs", "0"], "invalid --jobs '0'"),
        (["stitching", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, message) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_output_that_is_a_file_exits_2(tmp_path, capsys) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["stitching", *SMALL, "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert "is not a directory" in err
    assert len(err.strip().splitlines()) == 1


def test_unreachable_scheduler_exits_1(tmp_path, capsys) -> None:
    # Port 9 on loopback has no listener, so the connection is refused.
    args = ["stitching", *SMALL, "-o", str(tmp_path)]
    assert main([*args, "--dask-scheduler", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "sweep failed on tcp://127.0.0.1:9" in err
    assert len(err.strip().splitlines()) == 1


def strip_runtime(document: dict) -> dict:
    return {k: v for k, v in document.items() if k not in ("runtime_s", "backend")}


@pytest.mark.slow
def test_joblib_and_dask_agree() -> None:
    distributed = pytest.importorskip("distributed")
    config = SweepConfig.quick(families=("mlp",), activations=("tanh", "relu"))
    with Executor(jobs=2) as executor:
        stitching_joblib = run_stitching_sweep(config, executor)
        similarity_joblib = run_similarity_sweep(config, executor)
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        with Executor(scheduler=cluster.scheduler_address) as executor:
            assert executor.backend == "dask"
            stitching_dask = run_stitching_sweep(config, executor)
            similarity_dask = run_similarity_sweep(config, executor)
    assert strip_runtime(stitching_joblib) == strip_runtime(stitching_dask)
    assert strip_runtime(similarity_joblib) == strip_runtime(similarity_dask)


def test_missing_extra_names_install_command(tmp_path) -> None:
    # A None entry in sys.modules makes "import matplotlib" fail, as it does
    # on an install without the experiments extra.
    argv = ["experiment", "stitching", "--quick", "-o", str(tmp_path / "out")]
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        f"from nn_bridge.cli import main; sys.exit(main({argv!r}))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    assert "matplotlib" in completed.stderr
    assert "'.[experiments]'" in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
