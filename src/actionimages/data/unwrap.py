"""``actionimages dataset unwrap-euler``: unwrap the Euler angles of a dataset written before the
writer did (see :mod:`actionimages.data.lerobot.euler`), in place.

The frame data files of the episodes whose ``action`` / ``observation.state`` Euler angles jump by
whole turns are rewritten (same rotations, same float type; the ``.rot6d`` twins and every other
column untouched), then the statistics of those columns (each episode's in ``meta/episodes`` and
``meta/stats.json``, recomputed from what is written), the recorded checksums, and ``meta/info.json``
(which records the convention) last.

Crash safety: every new file is first written in full under a temporary name beside its target and
fsynced; ``meta/actionimages_unwrap.json`` then lists, for each file about to be replaced, the
SHA-256 of its old and new content; the files are renamed into place, the checksums updated, and
the list removed. A run that finds the list (one that was interrupted) accepts either content for
those files and finishes the job. A file whose content matches neither its recorded checksum nor
the list is refused: rewriting it would record a checksum for content nobody checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actionimages.atomic import FILE_MODE, TMP_PREFIX, fsync_dir, sha256_file, write_json_atomic
from actionimages.data.lerobot import (
    CHECKSUMS_PATH,
    INFO_PATH,
    JOURNAL_PATH,
    JSON_STYLE,
    STATS_PATH,
    UNWRAP_JOURNAL_PATH,
    DatasetReader,
    load_info,
    lock_dataset,
    read_checksums,
    write_checksums,
)
from actionimages.data.lerobot.euler import (
    EULER,
    UNWRAP_COMMAND,
    euler_columns,
    is_unwrapped,
    mark_unwrapped,
    unwrap_euler,
)
from actionimages.data.lerobot.layout import ACTION_NAMES, load_json
from actionimages.data.lerobot.stats import jsonable, merge_stats, moments
from actionimages.errors import DataError

STAT_NAMES = ("min", "max", "mean", "std", "count")  # what stats.moments computes


def unwrap_dataset(root: str | Path) -> dict[str, Any]:
    """Unwrap the Euler angles of ``action`` / ``observation.state`` along each episode of ``root``.

    Returns ``{"episodes": episodes changed, "frames": frames changed, "files": files rewritten,
    "marked": whether meta/info.json gained the convention}``; all zero / False when the dataset is
    already unwrapped and marked (a second run changes nothing). Raises :class:`DataError`, having
    written nothing, for a dataset it cannot safely rewrite: another writer holds it, an append was
    interrupted, ``action`` is not named ``x, y, z, rx, ry, rz, openness``, a file differs from its
    recorded checksum, unreadable metadata or frame data, statistics it cannot recompute.
    """
    root = Path(root)
    load_info(root)  # a dataset at all (before a lock file is created in it)
    lock = lock_dataset(root)
    try:
        return _Unwrap(root).run()
    finally:
        lock.close()


class _Unwrap:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.info = load_info(root)
        self._refuse_pending_append()
        self.columns = euler_columns(self.info)
        if "action" not in self.columns:
            names = (self.info["features"].get("action") or {}).get("names")
            raise DataError(
                f"{root}: meta/info.json names the action columns {names}, not {ACTION_NAMES}: no Euler "
                f"angles this command knows how to unwrap; nothing was written"
            )
        self.accepted = self._read_journal()  # rel -> hashes an interrupted run may have left
        self.checksums = read_checksums(root)
        self.hashes: dict[str, str] = {}

    def _refuse_pending_append(self) -> None:
        path = self.root / JOURNAL_PATH
        if not path.exists():
            return
        doc = load_json(path)
        index = doc.get("episode_index") if isinstance(doc, dict) else None
        if not isinstance(index, int) or index >= int(self.info["total_episodes"]):
            raise DataError(
                f"{self.root}: an interrupted append left {JOURNAL_PATH}; the next DatasetWriter cleans it "
                f"up (re-run the collect / convert that was writing), then run {UNWRAP_COMMAND} again; "
                "nothing was written"
            )

    def _read_journal(self) -> dict[str, set[str]]:
        path = self.root / UNWRAP_JOURNAL_PATH
        if not path.exists():
            return {}
        doc = load_json(path)
        files = doc.get("files") if isinstance(doc, dict) else None
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(h, str) for h in v)
            for k, v in files.items()
        ):
            raise DataError(
                f"{path}: malformed (want {{'files': {{path: [sha256, ...]}}}}); nothing was written"
            )
        return {k: set(v) for k, v in files.items()}

    # -------------------------------------------------------------- reading
    def _verified(self, rel: str) -> None:
        """Refuse ``rel`` if it differs from its recorded checksum (and from what an interrupted run
        wrote)."""
        want = (self.checksums or {}).get(rel)
        if want is None:
            return
        got = self.hashes[rel] = sha256_file(self.root / rel)
        if got != want and got not in self.accepted.get(rel, set()):
            raise DataError(
                f"{self.root}: {rel} changed since it was written (SHA-256 {got[:12]}..., {CHECKSUMS_PATH} "
                f"records {want[:12]}...): rewriting it would record a checksum for content nobody "
                f"checked; see `actionimages dataset check --full {self.root}`; nothing was written"
            )

    def _layout(self, reader: DatasetReader) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """``({data file: episodes}, {meta/episodes file: episodes})`` of the committed episodes."""
        data: dict[str, list[int]] = {}
        meta: dict[str, list[int]] = {}
        for i in range(len(reader)):
            data.setdefault(reader.data_path(i).relative_to(self.root).as_posix(), []).append(i)
            meta.setdefault(reader.episode_files(i)[0], []).append(i)
        return data, meta

    def _stat_names(self, names: list[str], where: str) -> None:
        for col in self.columns:
            extra = sorted(
                n.split("/")[-1]
                for n in names
                if n.startswith(f"stats/{col}/") and n.split("/")[-1] not in STAT_NAMES
            )
            if extra:
                raise DataError(
                    f"{where}: statistics {extra} of {col}, which this command cannot recompute "
                    f"(it writes {list(STAT_NAMES)}); nothing was written"
                )

    def _unwrap_file(
        self, rel: str, episodes: list[int], values: dict[tuple[int, str], np.ndarray]
    ) -> tuple[pa.Table | None, dict[int, int]]:
        """The data file ``rel`` with its episodes' Euler angles unwrapped (None: unchanged), and
        ``{episode: frames changed}``; ``values[(episode, column)]`` gets each episode's rows as stored."""
        path = self.root / rel
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: unreadable frame data: {exc}; nothing was written") from exc
        missing = [c for c in ("episode_index", "frame_index", *self.columns) if c not in table.column_names]
        if missing:
            raise DataError(f"{path}: no column(s) {missing}; nothing was written")
        index = np.asarray(table.column("episode_index").to_numpy(zero_copy_only=False))
        frame = np.asarray(table.column("frame_index").to_numpy(zero_copy_only=False))
        changed: dict[int, int] = {}
        new_table = table
        for col in self.columns:
            field = table.schema.field(col)
            value_type = getattr(field.type, "value_type", None)
            if value_type is None or not pa.types.is_floating(value_type):
                raise DataError(f"{path}: {col} is {field.type}, not a list of floats; nothing was written")
            dtype = np.dtype(value_type.to_pandas_dtype())
            try:
                stored = np.asarray(table.column(col).to_pylist(), dtype=np.float64).astype(dtype)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{path}: {col} rows are ragged or null: {exc}; nothing was written") from exc
            if stored.ndim != 2 or stored.shape[1] != 7:
                raise DataError(
                    f"{path}: {col} has shape {stored.shape}, expected (N, 7); nothing was written"
                )
            new = stored.copy()
            for e in episodes:
                rows = np.nonzero(index == e)[0]
                rows = rows[np.argsort(frame[rows], kind="stable")]
                angles = unwrap_euler(stored[rows][:, EULER].astype(np.float64)).astype(dtype)
                new[rows[:, None], np.arange(3, 6)] = angles
                diff = np.any((new[rows] != stored[rows]) & ~np.isnan(stored[rows]), axis=1)
                if diff.any():
                    changed[e] = max(changed.get(e, 0), int(diff.sum()))
                values[(e, col)] = new[rows].astype(np.float64)
            if not np.array_equal(new, stored, equal_nan=True):
                array = pa.array(new.tolist(), type=field.type)
                new_table = new_table.set_column(new_table.column_names.index(col), field, array)
        return (new_table if changed else None), changed

    def _episode_stats(
        self, rel: str, stale: set[int], values: Mapping[tuple[int, str], np.ndarray]
    ) -> pa.Table | None:
        """The ``meta/episodes`` file ``rel`` with the statistics of episodes ``stale`` recomputed from
        their frame data as written (None: they are up to date)."""
        path = self.root / rel
        table = pq.read_table(path)
        self._stat_names(table.column_names, str(path))
        index = [int(e) for e in table.column("episode_index").to_pylist()]
        rows = [r for r, e in enumerate(index) if e in stale and len(values[(e, "action")])]
        names = [n for n in table.column_names if any(n.startswith(f"stats/{c}/") for c in self.columns)]
        out = table
        for name in names:
            col, stat = name[len("stats/") :].rsplit("/", 1)
            column = table.column(name).to_pylist()
            for r in rows:
                column[r] = np.asarray(moments(values[(index[r], col)])[stat]).tolist()
            if column != table.column(name).to_pylist():
                field = table.schema.field(name)
                out = out.set_column(out.column_names.index(name), field, pa.array(column, type=field.type))
        return None if out is table else out

    # -------------------------------------------------------------- writing
    def _stage(self, rel: str, write: Any) -> tuple[Path, str]:
        """Write a new ``rel`` in full under a temporary name beside it, fsynced; ``(path, SHA-256)``."""
        final = self.root / rel
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=final.suffix, dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            write(tmp)
            os.chmod(tmp, FILE_MODE)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return tmp, sha256_file(tmp)

    def run(self) -> dict[str, Any]:
        reader = DatasetReader(self.root)
        data_files, meta_files = self._layout(reader)
        stats_path = self.root / STATS_PATH
        stats = load_json(stats_path) if stats_path.exists() else {}
        for col in self.columns:
            if isinstance(stats.get(col), dict):
                self._stat_names([f"stats/{col}/{k}" for k in stats[col]], str(stats_path))
        for rel in [*data_files, *meta_files, STATS_PATH]:  # before anything is written
            self._verified(rel)
        values: dict[tuple[int, str], np.ndarray] = {}
        changed: dict[int, int] = {}
        new_files: dict[str, Any] = {}  # rel -> writer of its new content
        for rel, episodes in data_files.items():
            table, ch = self._unwrap_file(rel, episodes, values)
            changed.update(ch)
            if table is not None:
                new_files[rel] = lambda tmp, t=table: pq.write_table(t, tmp)
        # statistics to recompute: of the episodes changed now, and of those an interrupted run changed
        stale = set(changed)
        stale.update(e for rel, episodes in data_files.items() if rel in self.accepted for e in episodes)
        if stale:
            for rel in meta_files:
                table = self._episode_stats(rel, stale, values)
                if table is not None:
                    new_files[rel] = lambda tmp, t=table: pq.write_table(t, tmp)
            recomputed = dict(stats)
            for col in self.columns:
                if col in stats:
                    merged = None
                    for i in range(len(reader)):
                        if len(values[(i, col)]):
                            merged = merge_stats(merged, moments(values[(i, col)]))
                    if merged is not None:
                        recomputed[col] = jsonable({col: merged})[col]
            if recomputed != stats:
                text = json.dumps(recomputed, **JSON_STYLE)
                new_files[STATS_PATH] = lambda tmp: tmp.write_text(text)
        for sub in ("data", "meta"):  # temporaries of an interrupted run (or append): never committed
            base = self.root / sub
            for path in base.rglob(TMP_PREFIX + "*") if base.is_dir() else []:
                if path.is_file():
                    path.unlink()
        staged: dict[str, tuple[Path, str]] = {}
        try:
            for rel, write in new_files.items():
                staged[rel] = self._stage(rel, write)
            self._replace(staged)
        except BaseException:
            for tmp, _ in staged.values():
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise
        marked = not is_unwrapped(self.info)
        if marked:
            write_json_atomic(self.root / INFO_PATH, mark_unwrapped(self.info), **JSON_STYLE)
        (self.root / UNWRAP_JOURNAL_PATH).unlink(missing_ok=True)
        fsync_dir(self.root / "meta")
        return {
            "episodes": len(changed),
            "frames": sum(changed.values()),
            "files": len(staged),
            "marked": marked,
        }

    def _replace(self, staged: Mapping[str, tuple[Path, str]]) -> None:
        """Journal, rename the staged files into place, then bring the recorded checksums up to date."""
        touched = set(staged) | set(self.accepted)
        if staged:
            journal = {rel: set(self.accepted.get(rel, set())) for rel in touched}
            for rel, (_, new) in staged.items():
                journal[rel] |= {h for h in (self.hashes.get(rel), (self.checksums or {}).get(rel), new) if h}
            doc = {"files": {rel: sorted(h) for rel, h in sorted(journal.items())}}
            write_json_atomic(self.root / UNWRAP_JOURNAL_PATH, doc, **JSON_STYLE)
            for rel, (tmp, _) in staged.items():
                os.replace(tmp, self.root / rel)
            for parent in {(self.root / rel).parent for rel in staged}:
                fsync_dir(parent)
        if self.checksums is not None:
            update = {
                rel: sha256_file(self.root / rel)
                for rel in touched
                if rel in self.checksums and (self.root / rel).exists()
            }
            if any(self.checksums[rel] != h for rel, h in update.items()):
                write_checksums(self.root, {**self.checksums, **update})
