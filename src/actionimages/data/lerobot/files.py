"""What is on disk: the checksums of committed files, the episode files, the keys that make
re-runs idempotent, and the writer lock."""

from __future__ import annotations

import fcntl
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any

from actionimages.atomic import write_json_atomic
from actionimages.data.lerobot.layout import (
    CHECKSUMS_PATH,
    EPISODE_DIRS,
    INFO_PATH,
    JSON_STYLE,
    KEY_COLUMN,
    LOCK_NAME,
    episode_rows,
    load_info,
    load_json,
)
from actionimages.errors import DataError


def read_checksums(root: str | Path) -> dict[str, str] | None:
    """``{relative path: SHA-256}`` of the files :class:`DatasetWriter` committed (None: it recorded none)."""
    path = Path(root) / CHECKSUMS_PATH
    if not path.exists():
        return None
    doc = load_json(path)
    files = doc.get("files") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("algorithm") != "sha256"
        or not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    ):
        raise DataError(
            f"{path}: not a checksum file (want {{'algorithm': 'sha256', 'files': {{path: hex}}}})"
        )
    return dict(files)


def is_episode_file(rel: Any) -> bool:
    """Whether ``rel`` is a relative path inside ``data/``, ``meta/episodes/`` or ``videos/``."""
    if not isinstance(rel, str):
        return False
    path = PurePosixPath(rel)
    return (
        not path.is_absolute()
        and ".." not in path.parts
        and rel.startswith(tuple(d + "/" for d in EPISODE_DIRS))
    )


def write_checksums(root: Path, files: Mapping[str, str]) -> None:
    doc = {"algorithm": "sha256", "files": dict(sorted(files.items()))}
    write_json_atomic(root / CHECKSUMS_PATH, doc, **JSON_STYLE)


def dataset_keys(root: str | Path) -> dict[str, int]:
    """``{key: episode index}`` of the committed, keyed episodes of the dataset at ``root`` ({} if none)."""
    root = Path(root)
    if not (root / INFO_PATH).exists():
        return {}
    n = int(load_info(root)["total_episodes"])
    rows = episode_rows(root, ["episode_index", KEY_COLUMN])
    return {
        str(r[KEY_COLUMN]): int(r["episode_index"])
        for _, r in rows
        if r.get(KEY_COLUMN) and r["episode_index"] < n
    }


def episode_dir_files(root: str | Path) -> list[str]:
    """Every file under ``data/``, ``meta/episodes/`` and ``videos/`` (relative, ``/``-separated)."""
    root = Path(root)
    out = []
    for sub in EPISODE_DIRS:
        base = root / sub
        if base.is_dir():
            out += [p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file()]
    return sorted(out)


def lock_dataset(root: Path) -> IO[str]:
    """Take the dataset's advisory writer lock (released by closing the returned file)."""
    lock = open(root / LOCK_NAME, "a")  # noqa: SIM115 (held until the caller closes it)
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.close()
        raise DataError(f"{root}: another DatasetWriter holds this dataset") from exc
    return lock
