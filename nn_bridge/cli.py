"""The ``nn-bridge`` command: inspect a model's symmetries or write a transformed copy.

``nn-bridge inspect MODEL`` prints the hidden-unit sites, their groups, the
tensors they act on and what was left out; ``nn-bridge randomize MODEL -o
OUT.safetensors`` writes the weights moved by a random group element. MODEL
is a transformers model directory (loaded offline) or
``package.module:factory``, a function that returns a ``torch.nn.Module``.
Bad arguments exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

logger = logging.getLogger(__name__)

#: Text tokenised for the example inputs of a transformers model.
EXAMPLE_SENTENCE = "The quick brown fox jumps over the lazy dog."

#: Largest number of elements of a random example input (``--input-shape``).
MAX_INPUT_ELEMENTS = 10**8

#: Shape of random token ids when the directory has no usable tokenizer.
RANDOM_IDS_SHAPE = (1, 8)


class UsageError(Exception):
    """A command-line value is invalid; the message is the one line to print."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(size < 1 for size in shape):
        raise UsageError(
            f"invalid --input-shape {text!r}: expected comma-separated positive "
            "integers such as 1,3,32,32"
        )
    return shape


def _load_directory(path: str) -> tuple[Any, Any]:
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    try:
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"cannot load a transformers model from {path!r}: {error}"
        ) from None
    model.eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        batch = tokenizer([EXAMPLE_SENTENCE], return_tensors="pt")
        inputs = {key: value for key, value in batch.items()}
    except (OSError, ValueError, TypeError):
        vocabulary = int(getattr(model.config, "vocab_size", 2))
        generator = torch.Generator().manual_seed(0)
        inputs = {
            "input_ids": torch.randint(
                0, vocabulary, RANDOM_IDS_SHAPE, generator=generator
            )
        }
    if getattr(model.config, "use_cache", False):
        inputs["use_cache"] = False
    return model, inputs


def _load_factory(spec: str, shape: tuple[int, ...] | None) -> tuple[Any, Any]:
    import torch
    from torch import nn

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(
            f"invalid MODEL {spec!r}: expected a model directory or "
            "package.module:factory"
        )
    if shape is None:
        raise UsageError(
            f"MODEL {spec!r} needs --input-shape, such as --input-shape 1,3,32,32"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"cannot import {spec!r}: {error}") from None
    if not callable(factory):
        raise UsageError(f"{spec!r} is not callable; expected a model factory")
    try:
        model = factory()
    except Exception as error:  # user code: report it in one line
        raise UsageError(
            f"factory {spec!r} failed: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(model, nn.Module):
        raise UsageError(
            f"{spec!r} returned {type(model).__name__}, expected a torch.nn.Module"
        )
    model.eval()
    elements = math.prod(shape)
    if elements > MAX_INPUT_ELEMENTS:
        raise UsageError(
            f"invalid --input-shape {shape}: {elements} elements; at most "
            f"{MAX_INPUT_ELEMENTS} are accepted"
        )
    # The probe input takes the dtype of the model's floating parameters.
    dtypes = [p.dtype for p in model.parameters() if p.is_floating_point()]
    dtype = dtypes[0] if dtypes else torch.float32
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(shape, generator=generator, dtype=dtype)
    # Running the model once turns a wrong --input-shape into one line here,
    # before graph capture would bury it under torch's own log output.
    try:
        with torch.no_grad():
            model(inputs)
    except Exception as error:  # user code: report it in one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UsageError(
            f"MODEL {spec!r} fails on an input of --input-shape "
            f"{','.join(map(str, shape))}: {type(error).__name__}: {first}"
        ) from None
    return model, (inputs,)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"invalid seed {text!r}: expected a nonnegative integer"
        )
    return value


def load_model(model: str, input_shape: str | None) -> tuple[Any, Any]:
    """Load MODEL and build example inputs for it."""
    shape = _parse_shape(input_shape) if input_shape is not None else None
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise UsageError(
                f"directory {model!r} has no config.json; expected a transformers "
                "model directory"
            )
        return _load_directory(model)
    if ":" in model:
        return _load_factory(model, shape)
    raise UsageError(
        f"MODEL {model!r} is neither a directory nor package.module:factory"
    )


def _inspect(args: argparse.Namespace) -> int:
    from . import find_symmetries

    model, inputs = load_model(args.model, args.input_shape)
    if args.affine:
        from ._affine_discover import find_affine_symmetries

        spec = find_affine_symmetries(model, inputs)
    else:
        spec = find_symmetries(model, inputs)
    print(json.dumps(spec.to_json(), indent=1) if args.json else spec.table())
    return 0


def _randomize(args: argparse.Namespace) -> int:
    from safetensors.torch import save_model

    from symgroups._files import OutputPathError, check_output_path

    from . import apply_transform, find_symmetries
    from ._transform import atomic_write

    try:
        check_output_path(args.output, label="-o")
    except OutputPathError as error:
        raise UsageError(str(error)) from None
    model, inputs = load_model(args.model, args.input_shape)
    if args.affine:
        from ._affine import apply_affine_transform
        from ._affine_discover import find_affine_symmetries

        spec = find_affine_symmetries(model, inputs)
        transform = spec.sample(seed=args.seed)
        transformed = apply_affine_transform(model, spec, transform, check=False)
    else:
        spec = find_symmetries(model, inputs)
        transform = spec.sample(seed=args.seed)
        transformed = apply_transform(model, spec, transform, check=False)
    from ._check import check_function_preserved

    report = check_function_preserved(model, transformed, inputs)
    if not report.ok:
        # A model that computes something else is not written, so no file
        # can pass for a symmetric copy.
        print(
            f"nn-bridge: error: not writing {args.output}: the transformed model "
            f"computes a different function; {report.summary()}",
            file=sys.stderr,
        )
        return 1
    atomic_write(args.output, lambda path: save_model(transformed, path))
    print(
        f"wrote {args.output}: {_site_count(spec)}, seed {args.seed}; "
        f"{report.summary()}"
    )
    return 0


def _site_count(spec: Any) -> str:
    linear = getattr(spec, "linear", None)
    if linear is None:
        return f"{len(spec.sites)} sites"
    return f"{len(linear.sites)} sites ({len(spec.sites)} with affine pairs)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nn-bridge",
        description="Inspect the weight-space symmetries of a model, or write "
        "a transformed copy.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )
    model_help = "a transformers model directory or package.module:factory"
    shape_help = (
        "shape of the random float input for a factory model, such as 1,3,32,32"
    )
    inspect = commands.add_parser("inspect", help="print the sites, groups and tensors")
    inspect.add_argument("model", metavar="MODEL", help=model_help)
    inspect.add_argument("--input-shape", help=shape_help)
    inspect.add_argument(
        "--json", action="store_true", help="print the spec as JSON instead of a table"
    )
    affine_help = (
        "also use the affine symmetries of networks with biases, such as the "
        "sigmoid sign flip whose constant the next bias absorbs"
    )
    inspect.add_argument("--affine", action="store_true", help=affine_help)
    inspect.set_defaults(run=_inspect)
    randomize = commands.add_parser(
        "randomize", help="write weights moved by a random group element"
    )
    randomize.add_argument("model", metavar="MODEL", help=model_help)
    randomize.add_argument(
        "-o", "--output", required=True, help="safetensors file to write (atomically)"
    )
    randomize.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed of the group element, a nonnegative integer (default 0)",
    )
    randomize.add_argument("--input-shape", help=shape_help)
    randomize.add_argument("--affine", action="store_true", help=affine_help)
    randomize.set_defaults(run=_randomize)

    from ._rotate_cli import add_rotate_command

    add_rotate_command(commands)

    from ._align_cli import add_commands as add_alignment_commands

    add_alignment_commands(commands)

    from .experiments.cli import add_experiment_commands, run_experiment_command

    experiment = commands.add_parser(
        "experiment",
        help="run the stitching or similarity experiment on the digits data",
        description="Train small networks from several seeds on the digits data "
        "and test how their hidden representations relate.",
    )
    experiment_commands = experiment.add_subparsers(
        dest="experiment_command", required=True, parser_class=_Parser
    )
    add_experiment_commands(experiment_commands)
    experiment.set_defaults(run=run_experiment_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for bad arguments)."""
    from ._errors import NNBridgeError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.run(args)
    except UsageError as error:
        print(f"nn-bridge: error: {error}", file=sys.stderr)
        return 2
    except NNBridgeError as error:
        print(f"nn-bridge: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of stdout went away (``nn-bridge inspect | head``).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (RuntimeError, ValueError, TypeError, OSError, MemoryError) as error:
        # Errors from torch or from the user's model: one line, no traceback.
        message = " ".join(str(error).split())
        print(f"nn-bridge: error: {type(error).__name__}: {message}", file=sys.stderr)
        return 1
