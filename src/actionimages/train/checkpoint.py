"""Atomic, resumable checkpoints.

A checkpoint is a directory ``<root>/step-00001234/`` written under a temporary name, every file
fsynced, then renamed into place, and only then named in ``<root>/latest`` (itself replaced
atomically). A crash (even ``kill -9``) during a save leaves the previous checkpoint and
``latest`` intact; a half-written temporary directory is ignored and cleaned up next time.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from actionimages.atomic import TMP_PREFIX, atomic_dir, write_text_atomic

LATEST = "latest"


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
    with atomic_dir(final) as tmp:  # re-saving the same step replaces the old one
        writer(tmp)
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
