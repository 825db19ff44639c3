"""Proved catalogue results shipped with the package.

Proving the whole catalogue takes seconds, but ``symgroups query relu`` should
return in about the time it takes to import sympy. The file
``data/catalogue.json`` stores each catalogue entry's result at its default
parameters, stamped with the symgroups and sympy versions that produced it;
a stamp that does not match the running versions, or an expression that no
longer matches the catalogue, makes the entry stale and it is recomputed.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sympy

from ._activation import Activation
from ._files import atomic_write
from ._version import __version__

if TYPE_CHECKING:
    from ._query import QueryResult

logger = logging.getLogger(__name__)

CACHE_FILE = "catalogue.json"


def _stamp() -> dict[str, str]:
    return {"symgroups": __version__, "sympy": sympy.__version__}


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    try:
        text = resources.files("symgroups").joinpath("data", CACHE_FILE).read_text()
    except (FileNotFoundError, OSError):
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        logger.warning("ignoring a corrupt result cache %s", CACHE_FILE)
        return {}
    if data.get("stamp") != _stamp():
        logger.info(
            "result cache was made by %s, running %s: recomputing",
            data.get("stamp"),
            _stamp(),
        )
        return {}
    return data.get("entries", {})


def lookup(activation: Activation) -> QueryResult | None:
    """Return the cached result for ``activation``, or None."""
    entry = _load().get(activation.cache_key())
    if entry is None:
        return None
    from ._group import GroupDescription
    from ._parse import expression_text
    from ._query import QueryResult

    if entry.get("expression") != expression_text(activation.expr):
        logger.info("cached expression for %s is stale", activation.cache_key())
        return None
    group = entry["group"]
    return QueryResult(
        activation,
        entry["status"],
        None if group is None else GroupDescription.from_json(group),
        entry["steps"],
        entry["evidence"],
        entry["notes"],
    )


#: Hard deadline, in seconds, for proving the whole catalogue in one worker.
CATALOGUE_TIMEOUT = 900.0


def prove_catalogue(
    progress: Callable[[str, float], None] | None = None,
) -> tuple[list[QueryResult], dict[str, float]]:
    """Prove every catalogue entry at its defaults from scratch.

    All entries are proved in one worker process, so sympy's caches and the
    numeric imports are shared between them; each sympy call keeps its step
    deadline. Returns the results and the wall time of each entry, in seconds.
    ``progress`` is called in the worker with each name and its time.
    """
    from . import _numeric  # noqa: F401  (imported once, inherited by the worker)
    from ._errors import SymgroupsError
    from ._worker import run_in_worker

    outcome = run_in_worker(_prove_all, progress, timeout=CATALOGUE_TIMEOUT)
    if outcome.status != "ok":
        raise SymgroupsError(f"proving the catalogue failed: {outcome.detail}")
    return outcome.value


def _prove_all(
    progress: Callable[[str, float], None] | None,
) -> tuple[list[QueryResult], dict[str, float]]:
    from ._catalogue import CATALOGUE, get_activation
    from ._query import query

    results, seconds = [], {}
    for name in CATALOGUE:
        started = time.perf_counter()
        result = query(get_activation(name), use_cache=False)
        seconds[name] = time.perf_counter() - started
        results.append(result)
        if progress is not None:
            progress(name, seconds[name])
    return results, seconds


def default_cache_path() -> Path:
    """Return the path of the cache file inside this package's source tree."""
    return Path(__file__).resolve().parent / "data" / CACHE_FILE


def write_cache(results: list[QueryResult], path: Path) -> None:
    """Write ``results`` as the shipped cache, atomically."""
    entries = {}
    for result in results:
        obj = result.to_json()
        entries[result.activation.cache_key()] = {
            key: obj[key]
            for key in ("expression", "status", "group", "steps", "evidence", "notes")
        }
    payload = {"stamp": _stamp(), "entries": entries}
    write_json_atomic(path, payload)
    _load.cache_clear()


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=1, sort_keys=False)
            stream.write("\n")

    atomic_write(path, write)
