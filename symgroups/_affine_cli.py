"""``symgroups query --affine`` and ``symgroups certify --affine``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._errors import SymgroupsError


def _run(args: argparse.Namespace) -> Any:
    from ._affine import query_affine

    if getattr(args, "dim", None) is not None:
        raise SymgroupsError(
            "--dim describes the linear group on R^N and does not combine with "
            "--affine; drop one of them"
        )
    if getattr(args, "lie_check", False):
        raise SymgroupsError(
            "--lie-check checks the linear group and does not combine with "
            "--affine; drop one of them"
        )
    from .cli import _run_query

    return _run_query(args, query_affine)


def query_affine_command(args: argparse.Namespace) -> int:
    """Print the affine group of ``args.spec`` as text or JSON; return 0."""
    result = _run(args)
    payload = result.to_json()
    if args.json:
        print(json.dumps(payload))
        return 0
    for key, value in result_lines(result, payload):
        print(f"{key:<10}  {value}")
    return 0


def result_lines(result: Any, payload: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the ``(label, text)`` lines of the text output."""
    label = result.activation.name
    if result.activation.params:
        label += "(" + ", ".join(f"{k}={v}" for k, v in payload["params"].items()) + ")"
    lines = [
        ("activation", f"{label}: {payload['expression']}"),
        ("status", payload["status"]),
        ("affine", payload["description"]),
    ]
    if payload["elements"]:
        lines.append(
            (
                "elements",
                "; ".join(
                    f"(lam, a) = ({e['lam']}, {e['a']}): mu = {e['mu']}, b = {e['b']}"
                    for e in payload["elements"]
                ),
            )
        )
    if result.linear is not None:
        lines.append(("linear", f"{result.linear.describe()} ({result.linear.status})"))
    lines.append(("extends", payload["extension"]))
    if result.steps:
        count = len(result.steps)
        lines.append(
            (
                "proof",
                f"{count} step{'s' if count != 1 else ''}: "
                + ", ".join(_step_text(s) for s in result.steps),
            )
        )
    evidence = result.evidence
    if "group_residual" in evidence:
        text = "numeric check " + ("passed" if evidence.get("passed") else "FAILED")
        text += (
            f"; max relative residual {evidence['group_residual']:.1e} over "
            f"{evidence['n_elements']} elements and {evidence['n_points']} points"
        )
        if "near_miss_residual" in evidence:
            text += f"; near misses fail by >= {evidence['near_miss_residual']:.1e}"
        text += f" (seed {evidence['seed']}, float64)"
        lines.append(("evidence", text))
    for note in result.notes:
        lines.append(("note", note))
    return lines


def _step_text(step: dict[str, Any]) -> str:
    claim = step["claim"]
    if claim == "limit":
        return f"limit (at {step['end']}: {step['value']})"
    if claim == "growth":
        return f"growth (sigma/x**{step['power']} at {step['end']})"
    if claim == "stabilizer":
        return f"stabilizer (about t = {step['center']}, {len(step['steps'])} steps)"
    if claim == "breakpoints":
        return f"breakpoints ({', '.join(step['points'])})"
    if claim == "polynomial":
        return f"polynomial (degree {step['degree']})"
    return claim


def certify_affine_command(args: argparse.Namespace) -> int:
    """Write the affine certificate of ``args.spec`` to ``args.output``; return 0."""
    from ._affine_certificate import write_affine_certificate

    result = _run(args)
    write_affine_certificate(result, args.output)
    print(f"wrote {args.output}: {result.status}, affine group: {result.describe()}")
    return 0
