"""File helpers for the command line: atomic writes and one-line errors."""

from __future__ import annotations

import os
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
