"""Command line of the experiments: ``stitching`` and ``similarity``.

Each subcommand trains the models of the sweep, writes ``DIR/results.json``
atomically and draws PNG figures (into ``DIR`` unless ``--figures-dir`` is
given). ``add_experiment_commands`` and ``run_experiment_command`` let another
parser host the subcommands; :func:`main` runs them on their own. Bad
arguments exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .._errors import NNBridgeError
from .models import ACTIVATIONS, FAMILIES

logger = logging.getLogger(__name__)

PROGRAM = "nn-bridge experiment"

#: Output directory when ``-o`` is not given, relative to the working directory.
DEFAULT_OUTPUT = "experiment-results"


class UsageError(Exception):
    """An invalid command-line value, whose message is the one line to print."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _names(text: str, accepted: Sequence[str], option: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in accepted]
    if not names or unknown:
        raise UsageError(
            f"invalid {option} {text!r}: expected a comma-separated list of "
            f"{', '.join(accepted)}"
        )
    return tuple(dict.fromkeys(names))


def _add_common_options(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        default=os.path.join(DEFAULT_OUTPUT, name),
        help="directory for results.json and the figures "
        f"(default {DEFAULT_OUTPUT}/{name})",
    )
    parser.add_argument(
        "--figures-dir",
        default=None,
        help="directory for the PNG figures (default: the output directory)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 seeds and 15 training epochs instead of 5 seeds and 30 epochs",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        help="number of seeds per family and activation, at least 2 "
        "(every pair of seeds is compared)",
    )
    parser.add_argument(
        "--activations",
        default=",".join(ACTIVATIONS),
        help=f"comma-separated activations (default {','.join(ACTIVATIONS)})",
    )
    parser.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help=f"comma-separated model families (default {','.join(FAMILIES)})",
    )
    parser.add_argument(
        "--jobs",
        default="1",
        help="number of local joblib processes (default 1: this process)",
    )
    parser.add_argument(
        "--dask-scheduler",
        default=None,
        help="address of a Dask scheduler, such as tcp://127.0.0.1:8786, to run "
        "the sweep on (default: the NN_BRIDGE_DASK_SCHEDULER environment "
        "variable, else joblib)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="draw no progress bar (none is drawn when stderr is not a terminal)",
    )
    parser.add_argument(
        "--from-results",
        default=None,
        metavar="RESULTS_JSON",
        help="skip the sweep and draw the figures of an existing results.json "
        "written by this subcommand",
    )
    parser.set_defaults(experiment_command=name)


def add_experiment_commands(subparsers: Any) -> None:
    """Add the ``stitching`` and ``similarity`` subcommands to ``subparsers``.

    ``subparsers`` is the object that ``ArgumentParser.add_subparsers``
    returns. Each subcommand sets ``args.experiment_command`` to its name,
    which :func:`run_experiment_command` dispatches on.
    """
    stitching = subparsers.add_parser(
        "stitching",
        help="stitch networks trained from different seeds",
        description="Train networks from several seeds and stitch every pair at "
        "every hidden layer with affine, group, permutation and orthogonal layers.",
    )
    _add_common_options(stitching, "stitching")
    similarity = subparsers.add_parser(
        "similarity",
        help="compare hidden representations across seeds",
        description="Train networks from several seeds and compare every pair "
        "at every hidden layer with linear CKA, Procrustes and the group "
        "dissimilarity, and test each measure's invariances.",
    )
    _add_common_options(similarity, "similarity")


def _positive_int(text: str, option: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(f"invalid {option} {text!r}: expected an integer >= {minimum}")
    return value


def _config(args: argparse.Namespace) -> Any:
    from .sweep import FULL_SEEDS, QUICK_SEEDS, SweepConfig

    activations = _names(args.activations, tuple(ACTIVATIONS), "--activations")
    families = _names(args.families, FAMILIES, "--families")
    default_seeds = QUICK_SEEDS if args.quick else FULL_SEEDS
    seeds = (
        default_seeds
        if args.seeds is None
        else _positive_int(str(args.seeds), "--seeds", 2)
    )
    if args.quick:
        return SweepConfig.quick(
            families=families, activations=activations, seeds=seeds
        )
    return SweepConfig(families=families, activations=activations, seeds=seeds)


def write_json_atomic(document: dict[str, Any], path: Path) -> None:
    """Write ``document`` to ``path`` as indented JSON, atomically."""
    from symgroups._files import atomic_write

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2, sort_keys=False)
            stream.write("\n")

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)


def _prepare_directory(text: str, option: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"invalid {option} {text!r}: the path exists and is not a directory"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"invalid {option} {text!r}: cannot create the directory ({error.strerror})"
        ) from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"invalid {option} {text!r}: the directory is not writable")
    return path


#: Import names of the packages of the ``experiments`` extra.
EXTRA_PACKAGES = ("matplotlib", "sklearn", "joblib", "tqdm", "threadpoolctl")


def _missing_packages() -> list[str]:
    """Return the packages of :data:`EXTRA_PACKAGES` that cannot be imported."""
    import importlib

    missing = []
    for name in EXTRA_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def run_experiment_command(args: argparse.Namespace) -> int:
    """Run the subcommand parsed into ``args``; return the exit status.

    Returns 0 on success, 2 with one line on stderr for an invalid value, and
    1 with one line when the sweep fails, for example when the Dask scheduler
    cannot be reached.
    """
    missing = _missing_packages()
    if missing:
        print(
            f"{PROGRAM}: error: the experiments need {', '.join(missing)}, which "
            "the 'experiments' extra installs: pip install -c constraints.txt -e "
            "'.[experiments]'",
            file=sys.stderr,
        )
        return 2
    from .sweep import DASK_SCHEDULER_ENV

    try:
        config = _config(args)
        jobs = _positive_int(str(args.jobs), "--jobs", 1)
        output = _prepare_directory(args.output, "--output")
        figures = (
            output
            if args.figures_dir is None
            else _prepare_directory(args.figures_dir, "--figures-dir")
        )
    except UsageError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    if args.from_results is not None:
        try:
            document = _read_results(args.from_results, args.experiment_command)
        except UsageError as error:
            print(f"{PROGRAM}: error: {error}", file=sys.stderr)
            return 2
        _plot(args.experiment_command, document, figures)
        return 0
    scheduler = args.dask_scheduler or os.environ.get(DASK_SCHEDULER_ENV) or None
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        document = _run_sweep(
            args.experiment_command, config, jobs, scheduler, progress
        )
    except (OSError, TimeoutError) as error:
        print(
            f"{PROGRAM}: error: sweep failed on {scheduler or 'joblib'}: {error}",
            file=sys.stderr,
        )
        return 1
    except NNBridgeError as error:
        print(f"{PROGRAM}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    write_json_atomic(document, output / "results.json")
    _plot(args.experiment_command, document, figures)
    logger.info("wrote %s", output / "results.json")
    return 0


def _read_results(text: str, command: str) -> dict[str, Any]:
    try:
        with open(text, encoding="utf-8") as stream:
            document = json.load(stream)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"invalid --from-results {text!r}: cannot read it as JSON ({error})"
        ) from None
    found = document.get("experiment") if isinstance(document, dict) else None
    if found != command:
        raise UsageError(
            f"invalid --from-results {text!r}: it contains experiment {found!r}, "
            f"expected results.json of {command!r}"
        )
    return document


def _run_sweep(
    command: str, config: Any, jobs: int, scheduler: str | None, progress: bool
) -> dict[str, Any]:
    from .sweep import Executor, run_similarity_sweep, run_stitching_sweep

    run = run_stitching_sweep if command == "stitching" else run_similarity_sweep
    with Executor(jobs=jobs, scheduler=scheduler, progress=progress) as executor:
        return run(config, executor)


def _plot(command: str, document: dict[str, Any], directory: Path) -> None:
    from .plots import plot_similarity, plot_stitching

    if command == "stitching":
        plot_stitching(document, directory)
    else:
        plot_similarity(document, directory)


def build_parser() -> argparse.ArgumentParser:
    """Build the standalone parser with the two subcommands."""
    parser = _Parser(prog=PROGRAM, description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="experiment_command", required=True)
    subparsers._parser_class = _Parser
    add_experiment_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the experiments command line; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    return run_experiment_command(args)


if __name__ == "__main__":
    sys.exit(main())
