"""Atomic file writes: a file the toolkit writes lands whole or not at all.

Models, forget sets, bank entries, results records, summaries and reports are written to a
temporary file in the target's folder and renamed over the target (an atomic step on POSIX), so
an interrupted run never leaves a half-written file where a later reader would trust it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# mkstemp creates files readable by their owner only; a finished file gets the permissions a plain
# open() would have given it (e.g. so a bank on a shared filesystem is readable by Ray workers).
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` if the block succeeds.

    `suffix` matters to writers that append their own extension (e.g. `numpy.savez` and ".npz").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def staged_path(path, suffix: str = ".tmp") -> Path:
    """A new empty temporary file beside `path`, for a write that is placed later (`place`).

    For files that must appear only once something else has committed (a model named by a ledger
    row appears after the row does): write here, commit, then `place`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def place(tmp, path, replace: bool = False) -> Path:
    """Move the staged file `tmp` to `path`; without `replace`, never over an existing file.

    The no-replace move is a hard link then an unlink: `link` fails if `path` exists, so two
    writers racing for one name cannot overwrite each other (a rename would, silently).
    """
    os.chmod(tmp, 0o666 & ~_UMASK)
    if replace:
        os.replace(tmp, path)
    else:
        os.link(tmp, path)
        os.unlink(tmp)
    return Path(path)
