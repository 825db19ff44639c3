"""Prove the whole catalogue and write ``symgroups/data/catalogue.json``.

Run after changing the catalogue, the prover or the pinned sympy version:

    python tools/build_cache.py
"""

from __future__ import annotations

import sys

from symgroups._cache import default_cache_path, prove_catalogue, write_cache


def main() -> int:
    def progress(name: str, seconds: float) -> None:
        sys.stderr.write(f"{name:<14} {seconds:6.2f} s\n")

    results, seconds = prove_catalogue(progress)
    open_results = [r.activation.name for r in results if r.status != "proved"]
    if open_results:
        sys.stderr.write(f"not proved: {open_results}\n")
    path = default_cache_path()
    write_cache(results, path)
    sys.stderr.write(
        f"wrote {path} ({len(results)} entries, {sum(seconds.values()):.1f} s)\n"
    )
    return 1 if open_results else 0


if __name__ == "__main__":
    raise SystemExit(main())
