"""The ``align``, ``canonicalize`` and ``merge`` commands of ``nn-bridge``.

Each MODEL argument is one of

* a transformers model directory (loaded offline, as ``nn-bridge inspect``
  does),
* ``package.module:factory``, a function that returns a ``torch.nn.Module``
  (it needs ``--input-shape``),
* a ``.safetensors`` file of weights, loaded with strict key and shape checks
  into the architecture that ``--arch`` names (a directory or a factory).

``nn-bridge align A B -o OUT.safetensors`` writes B's weights moved by the
group element that brings them closest to A's; ``nn-bridge canonicalize
MODEL -o OUT.safetensors`` writes the canonical representative of MODEL's
orbit; ``nn-bridge merge A B --alpha 0.5 -o OUT.safetensors`` writes the
interpolated weights ``(1 - alpha) A + alpha B`` (after aligning B with
``--align``) and, with ``--data``, the losses along the path and the barrier.
Every command prints a JSON summary on stdout and writes files atomically.
Bad input exits with status 2 and one line on stderr.

:func:`add_commands` adds the three subcommands to the ``nn-bridge`` parser
and :func:`run` dispatches them; :func:`main` runs them on their own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from .cli import UsageError, _Parser, load_model

#: Subcommands that :func:`add_commands` adds.
COMMANDS = ("align", "canonicalize", "merge")

#: Most coordinate-descent runs that ``align --restarts`` accepts, so that a
#: typo cannot start a run of days; each run costs about as much as the first.
MAX_RESTARTS = 1000

#: Maximum length of the torch error detail quoted in a one-line message.
MAX_DETAIL_CHARS = 400

#: Keys of the tensors in a ``--data`` file of ``merge``.
DATA_KEYS = ("inputs", "targets")

MODEL_HELP = (
    "a transformers model directory, package.module:factory, or a .safetensors "
    "weights file loaded into --arch"
)
SHAPE_HELP = "shape of the random float input for a factory model, such as 1,3,32,32"
ARCH_HELP = "architecture (directory or package.module:factory) of .safetensors MODELs"


def _load(spec: str, args: argparse.Namespace) -> tuple[Any, Any]:
    """Load one MODEL argument and example inputs for it."""
    if not spec.endswith(".safetensors"):
        return load_model(spec, args.input_shape)
    if not os.path.isfile(spec):
        raise UsageError(f"weights file {spec!r} not found")
    if args.arch is None:
        raise UsageError(
            f"MODEL {spec!r} is a weights file and needs --arch, such as "
            "--arch package.module:factory"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_model as load_weights

    model, inputs = load_model(args.arch, args.input_shape)
    try:
        load_weights(model, spec, strict=True)
    except (RuntimeError, SafetensorError, OSError) as error:
        # torch lists the missing, unexpected and mismatched keys on the lines
        # after its first, so they are joined into the one-line message.
        detail = " ".join(line.strip() for line in str(error).strip().splitlines())
        if len(detail) > MAX_DETAIL_CHARS:
            detail = detail[: MAX_DETAIL_CHARS - 3] + "..."
        raise UsageError(
            f"cannot load {spec!r} into --arch {args.arch!r}: {detail}"
        ) from None
    return model.eval(), inputs


def _check_output(
    path: str | None, args: argparse.Namespace, option: str = "-o"
) -> None:
    """Reject an output path before any work, including one that is an input."""
    from symgroups._files import OutputPathError, check_output_path

    if path is None:
        return
    inputs = [
        value
        for key in ("model_a", "model_b", "model", "data", "arch")
        if isinstance(value := getattr(args, key, None), str) and os.path.isfile(value)
    ]
    try:
        check_output_path(path, inputs, option)
    except OutputPathError as error:
        raise UsageError(str(error)) from None


def _save(model: Any, path: str) -> None:
    from safetensors.torch import save_model

    from ._transform import atomic_write

    atomic_write(path, lambda temporary: save_model(model, temporary))


def _print(summary: dict[str, Any]) -> None:
    # NaN is not JSON: a non-finite number becomes null.
    print(json.dumps(_finite(summary), indent=1, default=float, allow_nan=False))


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _run_align(args: argparse.Namespace) -> int:
    from ._align import ArchitectureMismatchError, align
    from ._errors import InvalidArgumentError

    _check_output(args.output, args)
    _check_output(args.transform, args, "--transform")
    if not 1 <= args.restarts <= MAX_RESTARTS:
        raise UsageError(
            f"invalid --restarts {args.restarts!r}: expected a whole number from 1 "
            f"to {MAX_RESTARTS}"
        )
    model_a, inputs = _load(args.model_a, args)
    model_b, _ = _load(args.model_b, args)
    try:
        result = align(
            model_a,
            model_b,
            inputs,
            method=args.method,
            restarts=args.restarts,
            seed=args.seed,
            progress=True,
        )
    except (ArchitectureMismatchError, InvalidArgumentError) as error:
        raise UsageError(str(error)) from None
    _save(result.aligned, args.output)
    if args.transform:
        result.transform.save(args.transform)
    summary = {"command": "align", "output": args.output, **result.summary()}
    if args.transform:
        summary["transform"] = args.transform
    _print(summary)
    return 0


def _run_canonicalize(args: argparse.Namespace) -> int:
    from ._canonical import canonicalize

    _check_output(args.output, args)
    model, inputs = _load(args.model, args)
    form = canonicalize(model, inputs)
    if args.output:
        _save(form.model, args.output)
    _print({"command": "canonicalize", "output": args.output, **form.summary()})
    return 0


def _read_data(path: str) -> tuple[Any, Any]:
    if not os.path.isfile(path):
        raise UsageError(f"--data file {path!r} not found")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as error:
        raise UsageError(f"cannot read --data {path!r}: {error}") from None
    missing = [key for key in DATA_KEYS if key not in tensors]
    if missing:
        raise UsageError(
            f"--data {path!r} lacks tensors {missing}; it must contain 'inputs' and "
            "'targets'"
        )
    inputs, targets = tensors["inputs"], tensors["targets"]
    if inputs.numel() == 0 or targets.numel() == 0:
        raise UsageError(f"--data {path!r} is empty; it needs at least one sample")
    if inputs.is_floating_point() and not bool(inputs.isfinite().all()):
        raise UsageError(f"--data {path!r} has inputs that are NaN or infinite")
    return inputs, targets


def _run_merge(args: argparse.Namespace) -> int:
    from ._align import ArchitectureMismatchError, align
    from ._merge import interpolate, interpolate_weights

    _check_output(args.output, args)
    if not math.isfinite(args.alpha):
        raise UsageError(f"invalid --alpha {args.alpha!r}: expected a finite number")
    if args.output is None and args.data is None:
        raise UsageError(
            "merge writes nothing without -o and evaluates nothing without --data; "
            "give -o OUT.safetensors, --data FILE or both"
        )
    if args.reset_bn and args.data is None:
        raise UsageError("--reset-bn re-estimates statistics on --data; give --data")
    data = _read_data(args.data) if args.data else None
    model_a, inputs = _load(args.model_a, args)
    model_b, _ = _load(args.model_b, args)
    summary: dict[str, Any] = {"command": "merge", "alpha": args.alpha}
    try:
        if args.align:
            result = align(model_a, model_b, inputs, seed=args.seed, progress=True)
            model_b = result.aligned
            summary["alignment"] = result.summary()
        merged = interpolate_weights(model_a, model_b, args.alpha)
        if data is not None:
            try:
                curve = interpolate(
                    model_a, model_b, data, alphas=args.alphas, reset_bn=args.reset_bn
                )
            except (RuntimeError, IndexError, ValueError) as error:
                first = str(error).strip().splitlines()[0] if str(error) else ""
                raise UsageError(
                    f"cannot evaluate the models on --data {args.data!r}: "
                    f"{type(error).__name__}: {first}; check that 'inputs' fit "
                    "the models and 'targets' are class ids of their outputs"
                ) from None
            summary["interpolation"] = curve.summary()
    except ArchitectureMismatchError as error:
        raise UsageError(str(error)) from None
    if args.output:
        _save(merged, args.output)
        summary["output"] = args.output
    _print(summary)
    return 0


def _alpha_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"invalid --alphas {text!r}: expected comma-separated numbers such as "
            "0,0.25,0.5,0.75,1"
        )
    return values


def add_commands(subparsers: Any) -> None:
    """Add the ``align``, ``canonicalize`` and ``merge`` subparsers.

    Each subparser sets ``run`` to :func:`run`, so ``args.run(args)``
    dispatches it, as ``nn-bridge``'s other commands do.
    """
    align = subparsers.add_parser(
        "align", help="write model B's weights aligned to model A's"
    )
    align.add_argument("model_a", metavar="A", help=MODEL_HELP)
    align.add_argument("model_b", metavar="B", help=MODEL_HELP)
    align.add_argument(
        "-o", "--output", required=True, help="safetensors file for aligned B"
    )
    align.add_argument(
        "--method",
        choices=("weights", "activations"),
        default="weights",
        help="weight matching (default) or activation matching",
    )
    align.add_argument(
        "--restarts", type=int, default=3, help="coordinate-descent runs (default 3)"
    )
    align.add_argument(
        "--seed", type=int, default=0, help="seed of the restarts (default 0)"
    )
    align.add_argument(
        "--transform", help="also write the group element to this safetensors file"
    )
    canonical = subparsers.add_parser(
        "canonicalize", help="write the canonical weights of a model's orbit"
    )
    canonical.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    canonical.add_argument("-o", "--output", help="safetensors file to write")
    merge = subparsers.add_parser(
        "merge", help="write (1 - alpha) A + alpha B and report the loss barrier"
    )
    merge.add_argument("model_a", metavar="A", help=MODEL_HELP)
    merge.add_argument("model_b", metavar="B", help=MODEL_HELP)
    merge.add_argument(
        "--alpha", type=float, default=0.5, help="weight of B in the output (0.5)"
    )
    merge.add_argument("-o", "--output", help="safetensors file for the merged model")
    merge.add_argument(
        "--align", action="store_true", help="align B to A by weight matching first"
    )
    merge.add_argument(
        "--seed", type=int, default=0, help="seed of the alignment (default 0)"
    )
    merge.add_argument(
        "--data",
        help="safetensors file with 'inputs' and 'targets' (class ids) to evaluate "
        "the path on",
    )
    merge.add_argument(
        "--alphas",
        type=_alpha_list,
        default=[i / 10 for i in range(11)],
        help="comma-separated alphas of the evaluated path (default 0,0.1,...,1)",
    )
    merge.add_argument(
        "--reset-bn",
        action="store_true",
        help="re-estimate BatchNorm statistics on --data at each alpha",
    )
    for parser in (align, canonical, merge):
        parser.add_argument("--input-shape", help=SHAPE_HELP)
        parser.add_argument("--arch", help=ARCH_HELP)
        parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the command that ``args.command`` names; return the exit status."""
    commands = {
        "align": _run_align,
        "canonicalize": _run_canonicalize,
        "merge": _run_merge,
    }
    command = commands.get(args.command)
    if command is None:
        raise UsageError(
            f"unknown command {args.command!r}; expected one of {list(COMMANDS)}"
        )
    return command(args)


def build_parser() -> argparse.ArgumentParser:
    """Return a parser with only the commands of this module."""
    parser = _Parser(prog="nn-bridge", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )
    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run these commands; status 2 and one stderr line for bad arguments."""
    from ._errors import NNBridgeError

    try:
        args = build_parser().parse_args(argv)
        return run(args)
    except UsageError as error:
        print(f"nn-bridge: error: {error}", file=sys.stderr)
        return 2
    except NNBridgeError as error:
        print(f"nn-bridge: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
