"""Put our ``actionimages/*`` episode columns back after LeRobot's editing tools dropped them.

LeRobot's ``delete_episodes``, ``split_dataset`` and ``merge_datasets`` rebuild ``meta/episodes``
from LeRobot's own columns only, so the calibration (and task name, ``has_actions``, info, key) of
every episode is lost, while the frame data is copied unchanged. An edited episode is therefore
found in the original dataset(s) by its frame data: length, instruction and the exact float32
``action`` and ``observation.state`` rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actionimages.atomic import sha256_file
from actionimages.data.lerobot import (
    EXT,
    DatasetReader,
    episode_rows,
    lock_dataset,
    read_checksums,
    write_checksums,
    write_parquet_atomic,
)
from actionimages.errors import DataError

COLUMNS = ("calibration", "task", "has_actions", "info", "key")  # our per-episode columns, after EXT


def _fingerprint(reader: DatasetReader, i: int) -> str:
    """What identifies episode ``i`` across LeRobot's edits: its length, instruction and frame data."""
    arrays = reader.arrays(i)
    h = hashlib.sha256(repr((len(arrays["action"]), list(reader.meta(i).get("tasks") or []))).encode())
    for col in ("action", "observation.state"):
        h.update(np.ascontiguousarray(arrays[col], dtype=np.float32).tobytes())  # stored as float32
    return h.hexdigest()


def _source_columns(sources: Sequence[str | Path]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """``{fingerprint: [(where, {column: raw value})]}`` over the committed episodes of ``sources``."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for src in sources:
        reader = DatasetReader(src)
        n = len(reader)
        raw = {
            int(r["episode_index"]): {EXT + c: r.get(EXT + c) for c in COLUMNS}
            for _, r in episode_rows(src, ["episode_index", *(EXT + c for c in COLUMNS)])
            if int(r["episode_index"]) < n
        }
        for i in range(n):
            if raw.get(i, {}).get(EXT + "calibration") is None:
                continue  # nothing to restore from this one
            out.setdefault(_fingerprint(reader, i), []).append((f"{src} episode {i}", raw[i]))
    return out


def restore_columns(root: str | Path, sources: Sequence[str | Path]) -> dict[str, int]:
    """Write the ``actionimages/*`` columns of each episode of ``root`` from its twin in ``sources``.

    Args:
        root: a dataset edited by LeRobot's tools (episodes may be renumbered or packed per file).
        sources: the dataset(s) it was made from, written by :class:`DatasetWriter`.

    Returns ``{"episodes": restored, "files": meta/episodes files rewritten}``. Every episode must
    match exactly one source episode (or several with identical columns); otherwise a
    :class:`DataError` names it and nothing is written. Each file is replaced atomically, under
    the dataset's writer lock; recorded checksums of rewritten files are updated.
    """
    root = Path(root)
    if not sources:
        raise DataError(f"{root}: give at least one source dataset (--from) to restore columns from")
    for src in sources:
        if Path(src).resolve() == root.resolve():
            raise DataError(f"{root}: a dataset cannot restore its columns from itself")
    lock = lock_dataset(root)
    try:
        found = _source_columns(sources)
        reader = DatasetReader(root)
        n = len(reader)
        columns: dict[int, dict[str, Any]] = {}
        for i in range(n):
            matches = found.get(_fingerprint(reader, i), [])
            if not matches:
                raise DataError(
                    f"{root} episode {i}: no episode of {[str(s) for s in sources]} has the same length, "
                    "instruction and action/state rows; nothing was written"
                )
            if any(m[1] != matches[0][1] for m in matches[1:]):
                raise DataError(
                    f"{root} episode {i}: matches {[m[0] for m in matches]}, whose actionimages columns "
                    "differ (identical frame data, e.g. video-only episodes of equal length); nothing "
                    "was written"
                )
            columns[i] = matches[0][1]
        files = sorted({path for path, _ in episode_rows(root, ["episode_index"])})
        checksums = read_checksums(root)
        rewritten = 0
        for path in files:
            table = pq.read_table(path)
            index = [int(e) for e in table.column("episode_index").to_pylist()]
            if not any(e in columns for e in index):
                continue
            for name in (EXT + c for c in COLUMNS):
                values = [columns.get(e, {}).get(name) for e in index]
                array = pa.array(values, pa.bool_() if name.endswith("has_actions") else pa.string())
                if name in table.column_names:
                    table = table.set_column(table.column_names.index(name), name, array)
                else:
                    table = table.append_column(name, array)
            write_parquet_atomic(path, table)
            rewritten += 1
            rel = path.relative_to(root).as_posix()
            if checksums is not None and rel in checksums:
                checksums[rel] = sha256_file(path)
        if checksums is not None:
            write_checksums(root, checksums)
    finally:
        lock.close()
    return {"episodes": len(columns), "files": rewritten}
