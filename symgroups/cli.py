"""The ``symgroups`` command line.

Exit codes: 0 success; 1 a certificate whose claims fail; 2 bad input of any
kind (unknown name, unparseable expression, bad parameter or dimension,
unreadable or malformed certificate), reported as one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ._errors import SymgroupsError, VerificationError

logger = logging.getLogger(__name__)

#: The largest ``--dim`` accepted; an example element is shown up to this size.
MAX_DIM = 100_000
EXAMPLE_MAX_DIM = 6


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid dimension {text!r}: expected a whole number from 1 to {MAX_DIM}"
        ) from None
    if not 1 <= value <= MAX_DIM:
        raise argparse.ArgumentTypeError(
            f"invalid dimension {value}: expected a whole number from 1 to {MAX_DIM}"
        )
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        # strip(): a leading space protects negative numbers from the option
        # parser, and the message shows the value as typed.
        raise argparse.ArgumentTypeError(
            f"invalid number of seconds {text.strip()!r}: expected a positive number"
        )
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"invalid seed {text.strip()!r}: expected a whole number 0 or more"
        )
    return value


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(
            f"invalid --param {text!r}: expected NAME=VALUE, for example "
            "negative_slope=0.2"
        )
    return name.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    from ._worker import DEFAULT_STEP_TIMEOUT, DEFAULT_TOTAL_TIMEOUT

    parser = _Parser(
        prog="symgroups",
        description="Prove and certify the intertwiner groups of activations: the "
        "invertible A with sigma(A x) = phi(A) sigma(x) for all x.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser(
        "list",
        help="list the catalogue with parameters and defaults",
        description="List the catalogue of activations with parameters and defaults.",
    ).add_argument("--json", action="store_true", help="print one JSON array")

    def add_spec(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "spec",
            metavar="SPEC",
            help="a catalogue name (see 'symgroups list'), an expression in x, "
            "such as 'Max(x, 0.2*x)', or PyTorch code as package.module:name (an "
            "nn.Module class, instance or function; importing it runs its code)",
        )
        sub.add_argument(
            "--param",
            action="append",
            default=[],
            type=_param,
            metavar="NAME=VALUE",
            help="a catalogue parameter, exact (0.2 means 1/5); repeatable",
        )
        sub.add_argument(
            "--timeout",
            type=_positive_float,
            default=DEFAULT_TOTAL_TIMEOUT,
            help="seconds before the symbolic search stops with status undecided "
            f"(default {DEFAULT_TOTAL_TIMEOUT:g})",
        )
        sub.add_argument(
            "--step-timeout",
            type=_positive_float,
            default=DEFAULT_STEP_TIMEOUT,
            help=f"seconds for one sympy call (default {DEFAULT_STEP_TIMEOUT:g})",
        )
        sub.add_argument(
            "--seed", type=_seed, default=0, help="seed of the numeric evidence"
        )

    query = commands.add_parser(
        "query",
        help="compute the intertwiner group of an activation",
        description="Compute the intertwiner group of an activation, with a proof "
        "where one is found and numeric evidence always.",
    )
    add_spec(query)
    query.add_argument(
        "--dim",
        type=_positive_int,
        default=None,
        metavar="N",
        help="describe the group acting on R^N and show an example element",
    )
    query.add_argument("--json", action="store_true", help="print one JSON object")
    query.add_argument(
        "--affine",
        action="store_true",
        help="compute the affine group instead: the pairs (lam, a) with "
        "sigma(lam x + a) = mu sigma(x) + b, for networks with biases",
    )
    query.add_argument(
        "--lie-check",
        action="store_true",
        help="also compare the dimension of the group's Lie algebra with the null "
        "space of the linearised intertwiner equation on R^3 (numeric)",
    )

    certify = commands.add_parser(
        "certify",
        help="write a certificate that 'symgroups verify' re-checks",
        description="Compute the group and write its certificate as JSON.",
    )
    add_spec(certify)
    certify.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="certificate file"
    )
    certify.add_argument(
        "--affine",
        action="store_true",
        help="certify the affine group (format symgroups.affine-certificate/1)",
    )

    verify = commands.add_parser(
        "verify",
        help="re-derive every claim of a certificate",
        description="Re-derive every claim of a certificate. Exit 0 when all hold, "
        "1 when a claim fails, 2 when the file is unreadable or malformed.",
    )
    verify.add_argument("file", metavar="FILE", help="certificate file")
    verify.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TOTAL_TIMEOUT,
        help=f"seconds for the whole verification (default {DEFAULT_TOTAL_TIMEOUT:g})",
    )

    tour = commands.add_parser(
        "tour",
        help="a guided tour: query, certify, verify, and a real pretrained network",
        description="Query a few activations, certify and verify one, then permute "
        "the feed-forward units of the pretrained all-MiniLM-L6-v2 sentence encoder "
        "and check that its embeddings do not change.",
    )
    tour.add_argument(
        "--workdir",
        default=None,
        metavar="DIR",
        help="where the tour writes its certificate (default: a temporary folder)",
    )
    tour.add_argument(
        "--skip-network",
        action="store_true",
        help="skip the pretrained-network part (it needs symgroups[models])",
    )

    from ._layers_cli import add_layer_command

    add_layer_command(commands, _positive_int)
    return parser


#: Options that start with one dash; any other word that does is an expression.
_SHORT_OPTIONS = ("-h", "-v", "-o")


def _protect_expressions(argv: list[str]) -> list[str]:
    """Keep argparse from reading an expression such as ``-tanh(x)`` as an option.

    A leading space is invisible to the parser of expressions and makes
    argparse treat the word as a positional argument.
    """
    protected = []
    for word in argv:
        is_expression = (
            word.startswith("-")
            and not word.startswith("--")
            and word not in _SHORT_OPTIONS
            and len(word) > 1
        )
        protected.append(" " + word if is_expression else word)
    return protected


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_protect_expressions(words))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _COMMANDS[args.command](args)
    except VerificationError as exc:
        _fail(f"verification failed: {exc}")
        return 1
    except SymgroupsError as exc:
        _fail(str(exc))
        return 2
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (``symgroups list | head``): stop
        # quietly, and keep Python from complaining again at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _fail(message: str) -> None:
    line = " ".join(str(message).split())
    sys.stderr.write(f"symgroups: error: {line}\n")


def _list(args: argparse.Namespace) -> int:
    from ._catalogue import CATALOGUE
    from ._parse import expression_text

    rows = []
    for entry in CATALOGUE.values():
        defaults = {p.name: p.default for p in entry.parameters}
        rows.append(
            {
                "name": entry.name,
                "params": {k: str(v) for k, v in defaults.items()},
                "expression": expression_text(entry.expression(defaults)),
                "torch": entry.torch_name,
                "summary": entry.summary,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        label = f"{row['name']}({params})" if params else row["name"]
        print(f"{row['name']:<{width}}  {row['summary']}")
        print(f"{'':<{width}}  {label} = {row['expression']}")
        print(f"{'':<{width}}  torch: {row['torch']}")
    return 0


def _run_query(args: argparse.Namespace, query: Any = None) -> Any:
    """Run ``query`` (``symgroups.query`` by default) on the parsed arguments.

    A ``package.module:name`` SPEC is imported as code first.
    """
    from ._fx import is_code_spec, load_code

    if query is None:
        from ._query import query

    spec: Any = args.spec
    if is_code_spec(spec):
        if args.param:
            raise SymgroupsError(
                f"--param applies only to catalogue names, and {spec!r} is code"
            )
        spec = load_code(spec.strip())
    return query(
        spec,
        dict(args.param) or None,
        seed=args.seed,
        timeout=args.timeout,
        step_timeout=args.step_timeout,
    )


def _query(args: argparse.Namespace) -> int:
    if args.affine:
        from ._affine_cli import query_affine_command

        return query_affine_command(args)
    result = _run_query(args)
    payload = result.to_json()
    if args.lie_check:
        from ._blackbox import lie_check_of_result

        payload["lie_algebra_check"] = lie_check_of_result(result, seed=args.seed)
    example = None
    if args.dim is not None and result.group is not None:
        if result.group.kind == "degenerate":
            payload["dimension"] = args.dim
        else:
            group = result.group.matrix_group(args.dim)
            payload["dimension"] = args.dim
            payload["group_in_dimension"] = group.describe()
            if args.dim <= EXAMPLE_MAX_DIM:
                A = group.sample(args.seed)
                example = {"A": A.tolist(), "phi_A": group.phi(A).tolist()}
                payload["example"] = example
    if args.json:
        print(json.dumps(payload))
        return 0
    _print_result(result, payload)
    return 0


def _print_result(result: Any, payload: dict[str, Any]) -> None:
    label = result.activation.name
    if result.activation.params:
        label += "(" + ", ".join(f"{k}={v}" for k, v in payload["params"].items()) + ")"
    lines = [
        ("activation", f"{label}: {payload['expression']}"),
        ("status", payload["status"]),
        ("group", payload.get("group_in_dimension", payload["description"])),
    ]
    if result.group is not None and result.group.kind == "monomial":
        character = payload["group"]["character"]
        lines.append(
            (
                "scalars",
                f"Lambda = {_scalar_text(payload['group'])}, mu(lam) = "
                f"{_mu_text(character)}",
            )
        )
    if result.steps:
        count = len(result.steps)
        label = "step" if count == 1 else "steps"
        lines.append(("proof", f"{count} {label}: " + _steps_text(result.steps)))
    evidence = result.evidence
    if evidence.get("passed") is not None:
        lines.append(("evidence", _evidence_text(evidence)))
    lie = payload.get("lie_algebra_check")
    if lie is not None:
        lines.append(("lie check", _lie_text(lie)))
    for note in result.notes:
        lines.append(("note", note))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    example = payload.get("example")
    if example:
        print("example A:")
        for row in example["A"]:
            print("  " + " ".join(f"{v:8.4f}" for v in row))
        print("phi(A):")
        for row in example["phi_A"]:
            print("  " + " ".join(f"{v:8.4f}" for v in row))


def _lie_text(lie: dict[str, Any]) -> str:
    measured, expected = lie.get("measured"), lie.get("expected")
    if measured is None:
        return f"not computed: {lie.get('note', '')}"
    text = f"null space dimension {measured} on R^{lie['n']}"
    if expected is None:
        return f"{text}; {lie.get('note', '')}"
    verdict = "agrees" if lie["agrees"] else "MISMATCH"
    return f"{text}, Lie algebra of the group {expected}: {verdict}"


def _scalar_text(group: dict[str, Any]) -> str:
    scalars = group["scalars"]
    if scalars == "discrete":
        return "the group generated by " + ", ".join(group["generators"])
    return {
        "trivial": "{1}",
        "sign": "{1, -1}",
        "positive": "positive reals",
        "nonzero": "nonzero reals",
    }[scalars]


def _mu_text(character: dict[str, Any]) -> str:
    power, sign = character["power"], character["sign_exponent"]
    if power == "0":
        magnitude = "1"
    elif power == "1":
        magnitude = "|lam|"
    elif power.lstrip("-").isdigit():
        magnitude = f"|lam|**{power}"
    else:
        magnitude = f"|lam|**({power})"
    if not sign:
        return magnitude
    return "sign(lam)" if magnitude == "1" else f"sign(lam)*{magnitude}"


def _steps_text(steps: list[dict[str, Any]]) -> str:
    parts = []
    for step in steps:
        claim = step["claim"]
        if claim == "taylor":
            parts.append(f"taylor ({step['side']})")
        elif claim == "positive_scaling":
            parts.append(f"positive_scaling (power {step['power']})")
        elif claim == "reflection":
            parts.append(f"reflection (mu(-1) = {step['mu']})")
        elif claim == "kink":
            parts.append(f"kink (at x = {step['point']})")
        else:
            parts.append(claim)
    return ", ".join(parts)


def _evidence_text(evidence: dict[str, Any]) -> str:
    from ._query import evidence_supports_proof

    if evidence.get("passed"):
        parts = ["numeric check passed"]
    elif evidence_supports_proof(evidence):
        parts = ["group elements pass the numeric check; near misses inconclusive"]
    else:
        parts = ["numeric check FAILED"]
    if isinstance(evidence.get("group_residual"), float):
        parts.append(
            f"max residual of sigma(A x) = phi(A) sigma(x): "
            f"{evidence['group_residual']:.1e} over {evidence.get('n_matrices')} "
            f"elements per dimension {evidence.get('dims')}"
        )
    if isinstance(evidence.get("near_miss_residual"), float):
        parts.append(
            f"matrices outside fail by >= {evidence['near_miss_residual']:.2f}"
        )
    details = []
    for key in ("seed", "dtype", "tolerance"):
        if key in evidence:
            details.append(f"{key} {evidence[key]}")
    if details:
        parts[-1] += " (" + ", ".join(details) + ")"
    return "; ".join(parts)


def _certify(args: argparse.Namespace) -> int:
    from ._certificate import write_certificate

    if args.affine:
        from ._affine_cli import certify_affine_command

        return certify_affine_command(args)
    result = _run_query(args)
    from ._blackbox import BLACK_BOX

    if result.activation.expr.has(BLACK_BOX):
        raise SymgroupsError(
            f"cannot certify {result.activation.name}: its group was found by "
            "black-box numeric discovery of code without a sympy translation, and "
            "a certificate needs an expression"
        )
    write_certificate(result, args.output)
    print(f"wrote {args.output}: {result.status}, {result.describe()}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ._certificate import verify_certificate

    report = verify_certificate(args.file, timeout=args.timeout)
    print(report.summary())
    return 0


def _tour(args: argparse.Namespace) -> int:
    from ._tour import run_tour

    if args.workdir is not None:
        folder = os.path.abspath(args.workdir)
        parent = os.path.dirname(folder)
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise SymgroupsError(
                f"invalid --workdir {args.workdir!r}: it exists and is not a folder"
            )
        if not os.path.isdir(folder) and not os.path.isdir(parent):
            raise SymgroupsError(
                f"invalid --workdir {args.workdir!r}: its parent {parent!r} does not "
                "exist"
            )
    return run_tour(workdir=args.workdir, skip_network=args.skip_network)


def _layer(args: argparse.Namespace) -> int:
    from ._layers_cli import run_layer

    return run_layer(args)


_COMMANDS = {
    "list": _list,
    "query": _query,
    "certify": _certify,
    "verify": _verify,
    "tour": _tour,
    "layer": _layer,
}
