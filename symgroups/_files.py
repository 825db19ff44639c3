"""Atomic file output shared by symgroups and nn_bridge."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
    """Call ``write(temporary_path)`` and move the result onto ``path``.

    The temporary file lives in the target folder, so :func:`os.replace` is
    atomic: readers see the old file or the complete new one, never a part.
    It is removed if ``write`` raises. The file gets the permissions a plain
    ``open`` would give it (``0o666`` less the umask), not the owner-only
    mode of ``mkstemp``.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    os.close(handle)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        write(temporary)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
