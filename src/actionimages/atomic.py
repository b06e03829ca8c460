"""Atomic files and directories: a reader sees the old content or the new one, never a half-written one.

A file is written under a temporary name in its own directory, flushed and fsynced, renamed over
the target (``os.replace``), and the directory is fsynced so that the rename itself is durable.
A directory is built under a temporary sibling name, every file and directory in it fsynced, then
renamed into place; an existing destination is first renamed aside and removed once the new one
is in place.

Every temporary name starts with :data:`TMP_PREFIX`, so what a crash (even ``kill -9``) leaves
behind is recognisable: readers ignore it and writers clean it up.

- :func:`write_bytes_atomic`, :func:`write_text_atomic`, :func:`write_json_atomic`: whole files.
- :func:`atomic_path`: a temporary path for libraries that write by path (safetensors'
  ``save_file``, ``torch.save``, ``np.save``, ``pq.write_table``, PyAV).
- :func:`atomic_dir`: a temporary directory to fill, committed as the destination on success.
- :func:`fsync_tree`, :func:`fsync_dir`: durability of what is already written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"  # every temporary file or directory written here starts with this

# The process's umask, read once at import (os.umask can only read it by setting it; restored at
# once, before any thread of ours could create a file under the temporary 0).
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what a plain open(path, "w") gives a new file
DIR_MODE = 0o777 & ~_UMASK  # what a plain mkdir gives a new directory


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory so that entries created or renamed in it are durable.

    A no-op where the filesystem cannot fsync directories.
    """
    with contextlib.suppress(OSError):
        _fsync(path)


def fsync_tree(path: str | os.PathLike) -> None:
    """fsync every file and directory under ``path`` (directories last, so their entries are durable)."""
    for dirpath, _, files in os.walk(path, topdown=False):
        for name in files:
            _fsync(Path(dirpath) / name)
        fsync_dir(dirpath)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, fsync it and rename it onto ``path``.

    For libraries that write a file by path. The temporary name ends in ``path``'s suffix (or
    ``suffix``), since some writers choose the format by it (PyAV) or append one otherwise
    (``np.save``). The file has the permissions a plain ``open(path, "w")`` would give
    (``0o666 & ~umask``; shared datasets stay readable), whatever the writer made it. If the block
    raises, the temporary file is removed and ``path`` keeps its old content (or stays absent).
    Missing parent directories are created.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=TMP_PREFIX, suffix=final.suffix if suffix is None else suffix, dir=final.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600
        yield tmp
        # again: some writers replace the file rather than write into it (safetensors' save_file
        # writes its own temporary, 0600, and renames it onto the path)
        os.chmod(tmp, FILE_MODE)
        _fsync(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace the file ``path`` by ``data`` atomically and durably (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace the file ``path`` by ``text`` atomically and durably (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, data: Any, **dumps: Any) -> None:
    """Replace the file ``path`` by ``json.dumps(data, **dumps)`` atomically and durably.

    ``dumps`` are :func:`json.dumps` options (``indent``, ``ensure_ascii``, ...); no newline is added.
    """
    write_text_atomic(path, json.dumps(data, **dumps))


def _plain_file_modes(root: Path) -> None:
    """Give every regular file under ``root`` at least the permissions of a plain ``open(path, "w")``."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            f = Path(dirpath) / name
            st = f.lstat()
            if stat.S_ISREG(st.st_mode) and (st.st_mode | FILE_MODE) != st.st_mode:
                os.chmod(f, stat.S_IMODE(st.st_mode) | FILE_MODE)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory next to ``path``; when the block succeeds, commit it as ``path``.

    Commit: fsync every file and directory in it, rename it to ``path`` and fsync the parent. An
    existing ``path`` is renamed aside first and removed after the new directory is in place, so
    ``path`` always names a complete directory, except between those two renames. If the block
    raises, the temporary directory is removed and ``path`` is untouched. The directory has the
    permissions of a plain ``mkdir`` (``0o777 & ~umask``), and every file in it at least those of a
    plain ``open(path, "w")`` (writers that make 0600 files, like safetensors' ``save_file``, are
    widened to ``0o666 & ~umask``; execute bits are kept); missing parents are created.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}.", dir=final.parent))
    try:
        os.chmod(tmp, DIR_MODE)  # mkdtemp makes 0700
        yield tmp
        _plain_file_modes(tmp)
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f"{TMP_PREFIX}old-{final.name}.{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    fsync_dir(final.parent)


__all__ = [
    "TMP_PREFIX",
    "atomic_dir",
    "atomic_path",
    "fsync_dir",
    "fsync_tree",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (what provenance records and loading checks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
