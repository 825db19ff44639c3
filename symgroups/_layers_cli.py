"""The ``symgroups layer NAME`` command: the symmetry group of a layer."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ._layers import LAYER_NAMES

#: ``--dim`` values up to this size also print an example element.
EXAMPLE_MAX_DIM = 6


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"invalid eps {text!r}: expected a finite number >= 0"
        )
    return value


def _window(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"invalid window size {text!r}: expected a positive integer"
        )
    return value


def add_layer_command(commands: Any, dimension_type: Any) -> None:
    """Add the ``layer`` subcommand to the ``symgroups`` subparsers.

    ``dimension_type`` parses ``--dim`` as the other commands do.
    """
    layer = commands.add_parser(
        "layer",
        help="the symmetry group of a norm, softmax, GLU or pooling layer",
        description="Print the group of pairs (A, B) with f(A x) = B f(x) for all x, "
        "for a layer f that is not elementwise, with its derivation.",
    )
    layer.add_argument(
        "name", metavar="NAME", choices=LAYER_NAMES, help=", ".join(LAYER_NAMES)
    )
    layer.add_argument(
        "--dim",
        type=dimension_type,
        default=None,
        metavar="N",
        help="show an example element for a layer of dimension N (N <= "
        f"{EXAMPLE_MAX_DIM}); a GLU's A acts on 2 N inputs",
    )
    layer.add_argument(
        "--eps",
        type=_nonnegative_float,
        default=0.0,
        help="epsilon of rmsnorm and layernorm (default 0)",
    )
    layer.add_argument(
        "--gate",
        default=None,
        metavar="SPEC",
        help="gate activation of glu: a catalogue name or an expression in x",
    )
    layer.add_argument(
        "--kernel-size",
        type=_window,
        default=2,
        help="pooling window length (default 2)",
    )
    layer.add_argument(
        "--stride", type=_window, default=None, help="pooling stride (default: kernel)"
    )
    layer.add_argument("--seed", type=int, default=0, help="seed of the example")
    layer.add_argument("--json", action="store_true", help="print one JSON object")


def run_layer(args: argparse.Namespace) -> int:
    """Print the group that ``args`` names; return the exit code."""
    from ._layers import layer_group

    group = layer_group(
        args.name,
        eps=args.eps,
        gate=args.gate,
        kernel_size=args.kernel_size,
        stride=args.stride,
    )
    payload = group.to_json()
    if args.dim is not None:
        payload["dimension"] = args.dim
        if args.dim <= EXAMPLE_MAX_DIM:
            element = group.sample(args.dim, args.seed)
            payload["example"] = {"A": element.A.tolist(), "B": element.B.tolist()}
    if args.json:
        print(json.dumps(payload))
        return 0
    lines = [
        ("layer", f"{group.name}: {group.formula}"),
        ("law", group.law),
        ("group", group.description),
        ("status", group.status),
        ("proof", group.derivation),
        ("docs", group.docs),
    ]
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    example = payload.get("example")
    if example:
        for label in ("A", "B"):
            print(f"example {label}:")
            for row in example[label]:
                print("  " + " ".join(f"{v:8.4f}" for v in row))
    return 0
