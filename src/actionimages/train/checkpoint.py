"""Atomic, verifiable, resumable checkpoints.

A checkpoint is a directory ``<root>/step-00001234/`` written under a temporary name, every file
fsynced, then renamed into place, and only then named in ``<root>/latest`` (itself replaced
atomically). A crash (even ``kill -9``) during a save leaves the previous checkpoint and
``latest`` intact; a half-written temporary directory is ignored and cleaned up next time.

The last file written into a checkpoint is ``checksums.json``: the size and SHA-256 of every other
file. :func:`verify_checkpoint` checks them, so a checkpoint damaged afterwards (a truncated copy,
a flipped byte, an edited ``state.json``) is recognised before anything is loaded from it.
:func:`load_newest_intact` is what resuming uses: it tries the checkpoints newest first and skips a
damaged one with a warning naming the checkpoint, the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from actionimages.atomic import TMP_PREFIX, atomic_dir, sha256_file, write_json_atomic, write_text_atomic
from actionimages.errors import ActionImagesError

LATEST = "latest"
CHECKSUMS = "checksums.json"
_STEP_DIR = re.compile(r"step-(\d+)")

T = TypeVar("T")


class CheckpointDamaged(ActionImagesError):
    """A checkpoint's files are missing, truncated, changed or unreadable (the message names which)."""


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(root: Path, step: int, writer: Callable[[Path], None], keep: int = 3) -> Path:
    """Write a checkpoint for ``step`` atomically; ``writer(tmpdir)`` fills the directory.

    ``checksums.json`` (size and SHA-256 of each file ``writer`` wrote) is added last. Keeps the
    newest ``keep`` checkpoints up to ``step``: older ones are deleted after the new one is durable;
    newer ones (left by a run restarted from an earlier step) are left alone. Returns the final
    checkpoint directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{TMP_PREFIX}*"):  # leftovers of a crashed save
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    final = root / step_dir_name(step)
    with atomic_dir(final) as tmp:  # re-saving the same step replaces the old one
        writer(tmp)
        write_checksums(tmp)
    write_text_atomic(root / LATEST, final.name + "\n")
    if keep > 0:
        # Prune among this step and older ones only: a newer checkpoint left by an earlier run
        # (restarted from an older step) must not push out the one just written.
        upto = [p for p in list_checkpoints(root) if _step_of(p) <= step]
        for stale in upto[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def write_checksums(directory: Path) -> None:
    """Record the size and SHA-256 of every file under ``directory`` in its ``checksums.json``."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    record = {
        p.relative_to(directory).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in files
    }
    write_json_atomic(directory / CHECKSUMS, {"algorithm": "sha256", "files": record}, indent=1)


def verify_checkpoint(path: Path) -> None:
    """Check a checkpoint's files against its ``checksums.json``; :class:`CheckpointDamaged` if any
    is missing, has another size or another SHA-256.

    A checkpoint without ``checksums.json`` (written before they were recorded) passes; only
    loading it can tell whether it is damaged.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointDamaged(f"checkpoint {path} is not a directory")
    record_file = path / CHECKSUMS
    if record_file.is_file():
        _check_recorded(path, _read_checksums(record_file))


# What resolve_model_dir and export read from a step directory besides its model folder.
_STEP_METADATA = ("state.json",)


def verify_folder_checksums(folder: Path) -> Path | None:
    """Re-hash a model folder's files against the ``checksums.json`` that records them; returns that
    file, or None when nothing records them (then nothing is checked).

    ``folder`` may be a checkpoint step directory itself (all its listed files are checked, as
    :func:`verify_checkpoint` does) or a subfolder of one, e.g. ``step-N/model/``: then the files
    listed under it, and the step's ``state.json`` (its step and cost), are checked, not the
    optimizer state that loading the model never reads. :class:`CheckpointDamaged` names a missing,
    truncated or changed file (a changed one with the recorded and the found SHA-256).
    """
    folder = Path(folder)
    if (folder / CHECKSUMS).is_file():
        verify_checkpoint(folder)
        return folder / CHECKSUMS
    step_dir = folder.resolve().parent
    record_file = step_dir / CHECKSUMS
    if not record_file.is_file():
        return None
    expected = _read_checksums(record_file)
    prefix = folder.resolve().name + "/"
    wanted = {rel: v for rel, v in expected.items() if rel.startswith(prefix) or rel in _STEP_METADATA}
    if not any(rel.startswith(prefix) for rel in wanted):
        return None  # the parent's record is about other files
    _check_recorded(step_dir, wanted)
    return record_file


def _read_checksums(record_file: Path) -> dict[str, tuple[int, str]]:
    """``checksums.json`` as {relative path: (bytes, sha256)}; :class:`CheckpointDamaged` if unreadable."""
    try:
        files = json.loads(record_file.read_text())["files"]
        return {str(rel): (int(f["bytes"]), str(f["sha256"])) for rel, f in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointDamaged(f"{record_file} cannot be read ({type(exc).__name__}: {exc})") from exc


def _check_recorded(root: Path, expected: dict[str, tuple[int, str]]) -> None:
    """Each ``root / rel`` has the recorded size and SHA-256 (hashed in 1 MiB blocks)."""
    for rel, (size, digest) in expected.items():
        f = root / rel
        if not f.is_file():
            raise CheckpointDamaged(f"{f} is missing ({CHECKSUMS} lists it)")
        got = f.stat().st_size
        if got != size:
            kind = "truncated" if got < size else "longer than written"
            raise CheckpointDamaged(f"{f} is {kind} ({got} bytes; {size} were written)")
        found = sha256_file(f)
        if found != digest:
            raise CheckpointDamaged(
                f"{f} does not match the SHA-256 recorded when it was written "
                f"(recorded {digest[:12]}…, found {found[:12]}…)"
            )


@contextlib.contextmanager
def reading(checkpoint: Path, rel: str) -> Iterator[Path]:
    """Yield ``checkpoint / rel``; any error while reading it becomes :class:`CheckpointDamaged`
    naming the checkpoint and the file.

    For the block that only reads and parses the file. Every reader fails differently on a
    truncated or garbled file (``SafetensorError``, ``RuntimeError`` or ``UnpicklingError`` from
    ``torch.load``, ``JSONDecodeError``, ``KeyError`` for a missing field), hence ``Exception``.
    """
    try:
        yield Path(checkpoint) / rel
    except CheckpointDamaged:
        raise
    except Exception as exc:
        raise CheckpointDamaged(
            f"{Path(checkpoint) / rel} cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint directories ``step-N`` under ``root``, oldest (lowest step) first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.fullmatch(p.name) and p.is_dir()]
    return sorted(found, key=_step_of)


def _step_of(checkpoint: Path) -> int:
    return int(_STEP_DIR.fullmatch(checkpoint.name).group(1))


def resume_candidates(root: Path) -> list[Path]:
    """The checkpoints to resume from, in order of preference.

    The one ``root/latest`` names, then the older ones, newest first. Without a usable ``latest``
    (missing, or naming no directory), all checkpoints, newest first. Checkpoints newer than the one
    ``latest`` names belong to an earlier run that was restarted and are not offered.
    """
    root = Path(root)
    ckpts = list_checkpoints(root)[::-1]
    ptr = root / LATEST
    name = ptr.read_text().strip() if ptr.is_file() else ""
    named = [p for p in ckpts if p.name == name]
    if not named:
        return ckpts
    return ckpts[ckpts.index(named[0]) :]


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint named by ``root/latest`` (or the newest complete one), or None; not verified
    (resuming uses :func:`load_newest_intact`)."""
    candidates = resume_candidates(root)
    return candidates[0] if candidates else None


def load_newest_intact(root: Path, read: Callable[[Path], T]) -> tuple[Path, T] | None:
    """``(checkpoint, read(checkpoint))`` for the first of :func:`resume_candidates` that verifies
    and reads; None when ``root`` holds no checkpoint.

    A damaged checkpoint (failing :func:`verify_checkpoint`, or ``read`` raising
    :class:`CheckpointDamaged`) is skipped with a ``RuntimeWarning`` naming it and why, and a second
    warning names the checkpoint used instead. If none is intact, :class:`ActionImagesError` lists
    each one and its damage. Any other error from ``read`` (e.g. a checkpoint that does not fit the
    model) propagates: an older checkpoint would not fit either.
    """
    skipped: list[str] = []
    for ck in resume_candidates(root):
        try:
            verify_checkpoint(ck)
            loaded = read(ck)
        except CheckpointDamaged as exc:
            skipped.append(str(exc))
            warnings.warn(f"skipping damaged checkpoint {ck.name}: {exc}", RuntimeWarning, stacklevel=2)
            continue
        if skipped:
            warnings.warn(f"resuming from {ck}, the newest intact checkpoint", RuntimeWarning, stacklevel=2)
        return ck, loaded
    if skipped:
        raise ActionImagesError(f"no intact checkpoint in {root} to resume from: " + "; ".join(skipped))
    return None


# ------------------------------------------------- finding the model behind a --checkpoint argument
def resolve_model_dir(checkpoint: str | Path) -> tuple[Path, int | None]:
    """The loadable model directory (``config.json`` + safetensors) and its training step if known.

    Accepts a model directory itself, a trainer checkpoint ``step-XXXXXXXX`` (its ``model/``), or a
    training run directory (its exported ``model/`` if present, else the latest checkpoint).
    """
    p = Path(checkpoint)
    if not p.exists():
        raise ActionImagesError(f"checkpoint {p} does not exist")
    if (p / "config.json").is_file():
        step = _step_in_state(p.parent) if p.name == "model" else None
        return p, step
    if (p / "model" / "config.json").is_file():
        return p / "model", _step_in_state(p) if (p / "state.json").is_file() else _latest_step(p)
    ck = latest_checkpoint(p / "checkpoints")
    if ck is not None and (ck / "model" / "config.json").is_file():
        return ck / "model", _step_in_state(ck)
    raise ActionImagesError(
        f"{p} is not a model: expected config.json + *.safetensors, a trainer checkpoint with model/, "
        "or a run directory with model/ or checkpoints/"
    )


def _step_in_state(step_dir: Path) -> int | None:
    state = step_dir / "state.json"
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["step"])
        except (ValueError, KeyError, json.JSONDecodeError):
            return None
    return None


def _latest_step(run: Path) -> int | None:
    ck = latest_checkpoint(run / "checkpoints")
    return _step_in_state(ck) if ck is not None else None


def training_cpu_hours(checkpoint: str | Path) -> float | None:
    """CPU-hours the checkpoint's training took, where recorded: an exported model's or baseline's
    ``provenance.json`` (``cpu_hours``), a baseline run's ``baseline.json`` (``cpu_seconds``) or a
    trainer step's ``state.json`` (``cpu_hours``). None when nothing records it."""
    p = Path(checkpoint)
    candidates = [p / "provenance.json", p / "baseline.json", p / "state.json", p.parent / "state.json"]
    if (p / "checkpoints").is_dir():
        ck = latest_checkpoint(p / "checkpoints")
        if ck is not None:
            candidates.append(ck / "state.json")
    for c in candidates:
        if not c.is_file():
            continue
        try:
            rec = json.loads(c.read_text())
        except (OSError, ValueError):  # unreadable, not UTF-8, not JSON: loading it names the damage
            continue
        if rec.get("cpu_hours") is not None:
            return float(rec["cpu_hours"])
        if rec.get("cpu_seconds") is not None:
            return float(rec["cpu_seconds"]) / 3600.0
    return None
