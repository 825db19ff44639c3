"""Atomic file output shared by symgroups and nn_bridge."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from typing import Any


class OutputPathError(OSError):
    """An output path that :func:`atomic_write` will not replace."""


def check_output_path(
    path: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str]] = (),
    label: str = "output path",
) -> None:
    """Raise :class:`OutputPathError` unless ``path`` may be written.

    ``label`` names the path in the message, such as a command-line option.

    ``path`` may name a regular file, which is replaced, or nothing yet. A
    directory, a symbolic link, a device or a FIFO is rejected, because
    replacing it would destroy something that is not a file of results. So
    is any of ``inputs``, the files the command reads, which must survive
    the run.
    """
    target = os.fspath(path)
    if not target:
        raise OutputPathError(f"invalid {label} {target!r}: it is empty")
    if os.path.lexists(target):
        mode = os.lstat(target).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a directory"
                if stat.S_ISDIR(mode)
                else "a symbolic link"
                if stat.S_ISLNK(mode)
                else "not a regular file"
            )
            raise OutputPathError(
                f"invalid {label} {target!r}: it is {kind}; give a new or regular file"
            )
        for source in inputs:
            source = os.fspath(source)
            if os.path.exists(source) and os.path.samefile(source, target):
                raise OutputPathError(
                    f"invalid {label} {target!r}: it is an input of this "
                    "command; write to another file"
                )
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise OutputPathError(
            f"invalid {label} {target!r}: directory {directory!r} does not exist"
        )


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[str], Any],
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Call ``write(temporary_path)`` and move the result onto ``path``.

    The temporary file lives in the target folder, so :func:`os.replace` is
    atomic: readers see the old file or the complete new one, never a part.
    It is removed if ``write`` raises. The file gets the permissions a plain
    ``open`` would give it (``0o666`` less the umask), set after ``write``
    because some writers replace the temporary file. ``path`` is checked
    with :func:`check_output_path` first.
    """
    target = os.fspath(path)
    check_output_path(target, inputs)
    directory = os.path.dirname(os.path.abspath(target))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    os.close(handle)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
