"""The guided tour behind ``symgroups tour``.

It writes to a text stream instead of logging, because its output is the
product: a newcomer reads it top to bottom.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from ._certificate import verify_certificate, write_certificate
from ._errors import SymgroupsError, VerificationError
from ._query import query

TOUR_ACTIVATIONS = (
    ("relu", None),
    ("tanh", None),
    ("gelu", None),
    ("leaky_relu", {"negative_slope": "0.2"}),
    ("power", {"d": "3"}),
    ("x*tanh(log(1+exp(x)))", None),
)

#: Largest deviation of the MiniLM sentence embeddings accepted (float32).
EMBEDDING_TOLERANCE = 1e-5


def run_tour(
    workdir: str | None = None, skip_network: bool = False, out: TextIO | None = None
) -> int:
    """Run the tour; return 0 when every check passed and 1 otherwise."""
    out = out or sys.stdout

    def say(text: str = "") -> None:
        out.write(text + "\n")
        out.flush()

    say("1. Query: which matrices A satisfy sigma(A x) = phi(A) sigma(x)?")
    for spec, params in TOUR_ACTIVATIONS:
        result = query(spec, params)
        label = (
            spec
            if not params
            else f"{spec} " + " ".join(f"{k}={v}" for k, v in params.items())
        )
        say(f"   {label:<28} {result.status:<21} {result.describe()}")
    say()

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(workdir) if workdir else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "relu.certificate.json"
        say("2. Certify: write the proof for relu as a JSON certificate.")
        certificate = write_certificate(query("relu"), path)
        claims = ", ".join(step["claim"] for step in certificate["steps"])
        say(f"   wrote {path} with the steps: {claims}")
        say()
        say("3. Verify: re-derive every step from the file alone.")
        report = verify_certificate(path)
        say(f"   {report.summary()}")
        forged = copy.deepcopy(certificate)
        forged["group"]["scalars"] = "nonzero"
        forged_path = folder / "relu.forged.json"
        forged_path.write_text(json.dumps(forged))
        try:
            verify_certificate(forged_path)
        except VerificationError as exc:
            say(f"   a copy that claims all nonzero scalings is rejected: {exc}")
        else:
            say("   ERROR: a forged certificate was accepted")
            return 1
    say()
    if skip_network:
        say("4. Skipped the pretrained network (--skip-network).")
        return 0
    return _network_part(say)


def _network_part(say) -> int:
    say("4. A real network: permute the feed-forward units of all-MiniLM-L6-v2.")
    try:
        from nn_bridge.tour import permute_minilm_feedforward
    except ImportError as exc:
        raise SymgroupsError(
            f"the network part needs the models extra ({exc.name} is missing): "
            "pip install -e '.[models]', or run the tour with --skip-network"
        ) from None
    started = time.perf_counter()
    report = permute_minilm_feedforward(seed=0)
    elapsed = time.perf_counter() - started
    for line in report.lines():
        say(f"   {line}")
    ok = report.max_abs_deviation <= EMBEDDING_TOLERANCE
    verdict = "unchanged" if ok else "CHANGED"
    say(
        f"   sentence embeddings {verdict}: max |delta| = "
        f"{report.max_abs_deviation:.2e} (tolerance {EMBEDDING_TOLERANCE:g}, "
        f"float32, {elapsed:.1f} s)"
    )
    return 0 if ok else 1
