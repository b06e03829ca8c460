"""Atomic, resumable checkpoints.

A checkpoint is a directory ``<root>/step-00001234/`` written under a temporary name, every file
fsynced, then renamed into place, and only then named in ``<root>/latest`` (itself replaced
atomically). A crash (even ``kill -9``) during a save leaves the previous checkpoint and
``latest`` intact; a half-written temporary directory is ignored and cleaned up next time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from actionimages.errors import ActionImagesError

LATEST = "latest"
TMP_PREFIX = ".tmp-"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file and directory under ``path`` (directories last, so entries are durable)."""
    for dirpath, _, files in os.walk(path, topdown=False):
        for name in files:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a fsynced temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent)


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(root: Path, step: int, writer: Callable[[Path], None], keep: int = 3) -> Path:
    """Write a checkpoint for ``step`` atomically; ``writer(tmpdir)`` fills the directory.

    Keeps the newest ``keep`` checkpoints (older ones are deleted after the new one is durable).
    Returns the final checkpoint directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{TMP_PREFIX}*"):  # leftovers of a crashed save
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f"{TMP_PREFIX}{final.name}.{os.getpid()}"
    tmp.mkdir()
    writer(tmp)
    fsync_tree(tmp)
    if final.exists():  # re-saving the same step: move the old one out of the way first
        old = root / f"{TMP_PREFIX}old-{final.name}.{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    _fsync_path(root)
    write_text_atomic(root / LATEST, final.name + "\n")
    if keep > 0:
        for stale in list_checkpoints(root)[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint directories under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if p.is_dir())


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint named by ``root/latest`` (or the newest complete one), or None."""
    root = Path(root)
    ptr = root / LATEST
    if ptr.is_file():
        cand = root / ptr.read_text().strip()
        if cand.is_dir():
            return cand
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def require_checkpoint(root: Path) -> Path:
    ck = latest_checkpoint(root)
    if ck is None:
        raise ActionImagesError(f"no checkpoint to resume from in {root}")
    return ck
