"""Benchmarks of the symgroups engine, printed as Markdown tables.

    python benchmarks/bench_symgroups.py [--repeat 10]

1. Cold start: ``symgroups query relu --json`` against ``python -c "import
   sympy"``, run alternately in fresh processes, median wall time of each.
2. Proving the whole catalogue from scratch (no result cache): each entry's
   wall time and the total.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

from symgroups._cache import prove_catalogue


def wall_time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def cold_start(repeat: int) -> None:
    script = shutil.which("symgroups")
    if script is None:
        sys.exit("install the package first: pip install -e .")
    query = [script, "query", "relu", "--json"]
    baseline = [sys.executable, "-c", "import sympy"]
    wall_time(query)  # warm the file cache once
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(wall_time(query))
        theirs.append(wall_time(baseline))
    a, b = statistics.median(ours), statistics.median(theirs)
    print("| command | median wall time (s) |")
    print("|---|---|")
    print(f"| `symgroups query relu --json` | {a:.3f} |")
    print(f'| `python -c "import sympy"` | {b:.3f} |')
    print(f"| ratio | {a / b:.2f} |")
    print()


def catalogue() -> None:
    results, seconds = prove_catalogue()
    print("| activation | status | group | time (s) |")
    print("|---|---|---|---|")
    for result in results:
        name = result.activation.name
        group = result.describe().replace("|", "\\|")  # |A| inside a table cell
        print(f"| {name} | {result.status} | {group} | {seconds[name]:.2f} |")
    print(f"| **total** | | | **{sum(seconds.values()):.1f}** |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="cold-start repetitions")
    args = parser.parse_args()
    print(
        f"date: {datetime.date.today()}, python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    )
    print()
    cold_start(args.repeat)
    catalogue()


if __name__ == "__main__":
    main()
