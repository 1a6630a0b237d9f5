"""File helpers for the command line: atomic writes and one-line errors."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


class CliError(Exception):
    """A user-facing failure: printed as one ``error:`` line, exit status 2."""


@contextmanager
def atomic_path(target: Path):
    """Yield a temporary path next to ``target``; move it into place only on success."""
    target = Path(target)
    if target.is_dir():
        raise CliError(f"output is a directory: {target}")
    if not target.parent.is_dir():
        raise CliError(f"output folder does not exist: {target.parent}")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(target: Path):
    """Yield a temporary folder next to ``target``; rename it to ``target`` only on success.

    ``target`` must not exist, or be an empty folder (which it then replaces).
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CliError(f"output exists and is not an empty folder: {target}")
    if not target.parent.is_dir():
        raise CliError(f"output folder does not exist: {target.parent}")
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))  # no suffix
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``target``."""
    with atomic_path(target) as tmp:
        write(tmp)


def read_bytes(path: Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    try:
        return path.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None
