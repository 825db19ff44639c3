"""Time-limited execution of symbolic work.

sympy has no timeouts of its own, and some of its routines (``simplify``,
``limit``) can run for minutes on innocent input. Every analysis therefore runs
in a child process that the parent terminates at a hard deadline, and inside
that child each sympy call gets its own shorter deadline from
``signal.setitimer``. A deadline that is hit is reported, never turned into a
result.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: Hard limit, in seconds, for one analysis or verification in the child.
DEFAULT_TOTAL_TIMEOUT = 120.0

#: Limit, in seconds, for a single sympy call inside the child.
DEFAULT_STEP_TIMEOUT = 15.0

#: Address-space cap of the child, in bytes (sympy blow-ups hit this first).
DEFAULT_MEMORY_LIMIT = 4 * 1024**3

#: Set in a child, so that nested calls run in place instead of forking again.
_IN_WORKER = False

#: Step deadlines hit in this process so far (see :func:`timeout_count`).
_TIMEOUTS = 0


class StepTimeout(Exception):
    """A single sympy call ran past its deadline (internal; never escapes)."""


@dataclass(frozen=True)
class WorkerOutcome:
    """What came back from the child.

    ``status`` is ``"ok"`` (``value`` is the result), ``"timeout"`` (the
    hard deadline was hit and the child was terminated), ``"error"`` (the
    function raised; ``error`` is the exception, rebuilt in the parent) or
    ``"crashed"`` (the child died without a result, for example at the memory
    cap).
    """

    status: str
    value: Any = None
    error: BaseException | None = None
    detail: str = ""


def in_worker() -> bool:
    """Return whether this code runs inside a worker child."""
    return _IN_WORKER


def _context() -> multiprocessing.context.BaseContext:
    # fork starts in about 0.05 s and needs no __main__ guard; spawn is the
    # portable fallback where fork is missing (Windows) or unsafe (macOS).
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _child_main(
    conn: Any, func: Callable[..., Any], args: tuple, kwargs: dict, memory: int
) -> None:
    global _IN_WORKER
    _IN_WORKER = True
    torch = sys.modules.get("torch")
    if torch is not None:
        # A forked child inherits torch's intra-op thread pool without its
        # threads, and its first parallel op can hang waiting for them. One
        # thread runs black-box torch activations without that pool.
        torch.set_num_threads(1)
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover - non-POSIX
        pass
    try:
        result = func(*args, **kwargs)
    except BaseException as exc:  # the parent re-raises it
        try:
            conn.send(("error", exc, traceback.format_exc()))
        except Exception:  # an exception that does not pickle
            conn.send(("error", None, f"{type(exc).__name__}: {exc}"))
    else:
        conn.send(("ok", result, ""))
    finally:
        conn.close()


def run_in_worker(
    func: Callable[..., Any],
    *args: Any,
    timeout: float = DEFAULT_TOTAL_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    **kwargs: Any,
) -> WorkerOutcome:
    """Run ``func(*args, **kwargs)`` in a child process with a hard deadline.

    The child is terminated once ``timeout`` seconds have passed. Inside a
    worker the call runs in place, under the deadline of the outer worker.
    """
    if _IN_WORKER:
        try:
            return WorkerOutcome("ok", func(*args, **kwargs))
        except StepTimeout:
            return WorkerOutcome("timeout", detail="nested call timed out")
        except Exception as exc:
            return WorkerOutcome("error", error=exc, detail=str(exc))
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_child_main,
        args=(sender, func, args, kwargs, memory_limit),
        daemon=True,
    )
    process.start()
    sender.close()
    try:
        if receiver.poll(timeout):
            try:
                status, value, detail = receiver.recv()
            except EOFError:
                process.join(5)
                return WorkerOutcome(
                    "crashed",
                    detail=f"worker exited with code {process.exitcode} "
                    "before returning a result",
                )
            process.join(5)
            if status == "ok":
                return WorkerOutcome("ok", value)
            return WorkerOutcome("error", error=value, detail=detail)
        logger.info("symbolic worker hit the %g s deadline; terminating", timeout)
        return WorkerOutcome("timeout", detail=f"no result within {timeout:g} s")
    finally:
        receiver.close()
        if process.is_alive():
            process.terminate()
            process.join(2)
            if process.is_alive():  # pragma: no cover - ignores SIGTERM
                process.kill()
                process.join()


@contextlib.contextmanager
def step_deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`StepTimeout` in the block after ``seconds`` seconds.

    Uses ``SIGALRM``, so it only works in the main thread of a POSIX
    process; elsewhere the block runs without a step deadline and only the
    worker's hard deadline applies.
    """
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and seconds > 0
    )
    if not usable:
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise StepTimeout(f"step exceeded {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    outer_remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    # A nested deadline never outlives the one around it.
    if outer_remaining:
        seconds = min(seconds, outer_remaining)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_remaining:
            left = outer_remaining - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))


def call_with_deadline(
    func: Callable[..., Any], *args: Any, seconds: float = DEFAULT_STEP_TIMEOUT
) -> tuple[bool, Any]:
    """Run one sympy call with a step deadline.

    Returns ``(True, result)``, or ``(False, None)`` when the deadline was hit.
    """
    try:
        with step_deadline(seconds):
            return True, func(*args)
    except StepTimeout:
        global _TIMEOUTS
        _TIMEOUTS += 1
        logger.info("sympy call %s timed out after %g s", _name(func), seconds)
        return False, None
    except RecursionError:
        logger.info("sympy call %s hit the recursion limit", _name(func))
        return False, None


def timeout_count() -> int:
    """Return how many step deadlines this process has hit so far."""
    return _TIMEOUTS


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", repr(func))
