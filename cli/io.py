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


def _default_mode(base: int) -> int:
    """``base`` (0o666 for files, 0o777 for folders) less the process's umask: the mode
    ``open`` or ``mkdir`` would give, where ``mkstemp`` and ``mkdtemp`` give 0o600 and 0o700."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def check_output(target: Path, source: Path | None = None) -> Path:
    """``target`` with its symbolic links resolved, once it is known to be writable as an
    output file: in an existing folder, not a folder, device or pipe itself, and not the
    file ``source`` (the input, which it would destroy).  Commands call it before their
    work, so that a bad ``-o`` fails at once."""
    given, target = Path(target), Path(os.path.realpath(target))
    if target.is_dir():
        raise CliError(f"output is a directory: {given}")
    if not target.parent.is_dir():
        raise CliError(f"output folder does not exist: {given.parent}")
    if target.exists() and not target.is_file():
        raise CliError(f"output exists and is not a regular file: {given}")
    if source is not None and target.exists() and source.exists() and target.samefile(source):
        raise CliError(f"output would overwrite the input: {given}")
    return target


@contextmanager
def atomic_path(target: Path):
    """Yield a temporary path next to ``target`` (:func:`check_output`); move it into place
    only on success, with the mode of the file it replaces, or the mode a new file gets."""
    target = check_output(target)
    mode = target.stat().st_mode & 0o7777 if target.is_file() else _default_mode(0o666)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix
        )
    except OSError as e:
        raise CliError(f"cannot write {target.name} in {target.parent}: {e.strerror}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
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
    try:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))  # no suffix
    except OSError as e:
        raise CliError(f"cannot write {target}: {e.strerror}") from None
    try:
        yield tmp
        tmp.chmod(_default_mode(0o777))
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
