"""LeRobot v3.0 datasets on disk: an atomic per-episode writer and a random-access reader.

Layout (the published LeRobot ``v3.0`` templates, one file per episode)::

    meta/info.json                  codebase_version "v3.0", fps, features, path templates, totals
    meta/tasks.parquet              task (the instruction, pandas index) -> task_index
    meta/stats.json                 per-feature min / max / mean / std / count
    meta/episodes/chunk-CCC/file-FFF.parquet   one row per episode (+ our calibration columns)
    data/chunk-CCC/file-FFF.parquet            frames: action, observation.state, timestamp, ...
    videos/observation.images.<camera>/chunk-CCC/file-FFF.mp4

Episode ``e`` lives in chunk ``e // chunks_size``, file ``e % chunks_size`` (LeRobot's own
file-index rollover) unless a file of that index already exists (then the next free index), so
each episode's files are written once and never touched again.

Atomicity: every file is written under a temporary name in its final directory, fsynced and
renamed; ``meta/info.json`` (``total_episodes``) is replaced last and is the commit point. Before
writing an episode the writer records the files it is about to create (and the dataset statistics
and tasks as they were) in ``meta/actionimages_journal.json``; the next writer deletes exactly those
files if the episode never committed, plus its own temporary files, and nothing else: a file it
cannot prove it wrote (one of LeRobot's, say, whose file index exceeds ``total_episodes`` after
``delete_episodes``) is reported in a warning and left alone, and new episodes go to free file
indices beside it. ``meta/actionimages_checksums.json`` holds the SHA-256 of every file the writer
committed (``dataset check --full`` verifies them). An episode may carry a key (``actionimages/key``:
its source and seed) so that re-running a collection or conversion adds only what is missing.
Our additions live in extra columns prefixed ``actionimages/`` (per-episode calibration, task name,
``has_actions``, info, key), which LeRobot carries through unread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actionimages.atomic import TMP_PREFIX, atomic_path, sha256_file, write_json_atomic
from actionimages.codec.camera import Camera
from actionimages.codec.poses import euler_to_rot6d
from actionimages.data.episode import Episode, calibration_from_json, calibration_to_json
from actionimages.data.registry import register_source
from actionimages.data.video import (
    DEFAULT_CODEC,
    DEFAULT_CRF,
    DEFAULT_GOP,
    DEFAULT_PIX_FMT,
    VideoFile,
    decode_frames,
    encode_video,
    probe_video,
)
from actionimages.errors import DataError

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
VIDEO_PREFIX = "observation.images."
EXT = "actionimages/"  # prefix of our extra per-episode columns
ACTION_NAMES = ["x", "y", "z", "rx", "ry", "rz", "openness"]
# The continuous twin of a pose column's Euler angles (its columns 3:6): the tool's x and y axes in
# the world frame (codec.poses.matrix_to_rot6d). Euler rx of a top-down tool jumps between -pi and
# pi, so mean/std normalisation of the Euler columns is meaningless; LeRobot policies can use these.
ROT6D_NAMES = ["x_axis_x", "x_axis_y", "x_axis_z", "y_axis_x", "y_axis_y", "y_axis_z"]
ROT6D_FEATURES = {"action.rot6d": "action", "observation.state.rot6d": "observation.state"}
STATS_FRAMES = 16  # frames per episode sampled for image statistics
LOCK_NAME = ".actionimages.lock"
CHECKSUMS_PATH = "meta/actionimages_checksums.json"  # {"algorithm": "sha256", "files": {relative path: hex}}
JOURNAL_PATH = "meta/actionimages_journal.json"  # the files of the episode being written
KEY_COLUMN = EXT + "key"  # an episode's source and seed ("" if none): what makes re-runs idempotent
EPISODE_DIRS = ("data", "meta/episodes", "videos")  # where per-episode files live
JSON_STYLE: dict[str, Any] = {"indent": 4, "ensure_ascii": False}  # how LeRobot writes meta/*.json

DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def video_key(camera: str) -> str:
    """LeRobot feature key of a camera: ``observation.images.<camera>``."""
    return VIDEO_PREFIX + camera


def chunk_file(episode_index: int, chunks_size: int) -> dict[str, int]:
    """``{"chunk_index", "file_index"}`` of an episode's files."""
    return {"chunk_index": episode_index // chunks_size, "file_index": episode_index % chunks_size}


def _write_parquet_atomic(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _vectors(x: np.ndarray) -> pa.FixedSizeListArray:
    """(N, D) values as the fixed-size list column LeRobot stores vector features in."""
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def _tasks_table(tasks: Sequence[str]) -> pa.Table:
    """tasks.parquet as pandas writes ``DataFrame({"task_index": ...}, index=Index(tasks, name="task"))``."""
    table = pa.table(
        {"task": pa.array(list(tasks), pa.string()), "task_index": pa.array(range(len(tasks)), pa.int64())}
    )
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
        ],
        "creator": {"library": "actionimages", "version": "0"},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _read_tasks(root: Path) -> list[str]:
    path = root / TASKS_PATH
    if not path.exists():
        return []
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: unreadable tasks file: {exc}") from exc
    names = table.column("task").to_pylist() if "task" in table.column_names else None
    if names is None and "__index_level_0__" in table.column_names:
        names = table.column("__index_level_0__").to_pylist()
    if names is None:
        raise DataError(f"{path}: no 'task' column")
    order = table.column("task_index").to_pylist()
    out = [""] * len(names)
    for name, i in zip(names, order, strict=True):
        out[int(i)] = name
    return out


# ----------------------------------------------------------------------------- what is on disk
def read_checksums(root: str | Path) -> dict[str, str] | None:
    """``{relative path: SHA-256}`` of the files :class:`DatasetWriter` committed (None: it recorded none)."""
    path = Path(root) / CHECKSUMS_PATH
    if not path.exists():
        return None
    doc = _load_json(path)
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


def _is_episode_file(rel: Any) -> bool:
    """Whether ``rel`` is a relative path inside ``data/``, ``meta/episodes/`` or ``videos/``."""
    if not isinstance(rel, str):
        return False
    path = PurePosixPath(rel)
    return (
        not path.is_absolute()
        and ".." not in path.parts
        and rel.startswith(tuple(d + "/" for d in EPISODE_DIRS))
    )


def _write_checksums(root: Path, files: Mapping[str, str]) -> None:
    doc = {"algorithm": "sha256", "files": dict(sorted(files.items()))}
    write_json_atomic(root / CHECKSUMS_PATH, doc, **JSON_STYLE)


def row_columns(info: Mapping[str, Any]) -> list[str]:
    """The ``meta/episodes`` columns that say where an episode's files are (plus its key)."""
    cols = ["episode_index", "length", "data/chunk_index", "data/file_index", KEY_COLUMN]
    for key, feat in info.get("features", {}).items():
        if feat.get("dtype") == "video":
            cols += [
                f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
            ]
    return cols


def episode_rows(
    root: str | Path, columns: Sequence[str] | None = None
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(metadata file, row)`` for every row of every ``meta/episodes`` file, committed or not.

    ``columns``: read only these (those a file lacks are left out of its rows).
    """
    for path in sorted((Path(root) / "meta/episodes").glob("chunk-*/file-*.parquet")):
        try:
            if columns is None:
                table = pq.read_table(path)
            else:
                names = set(pq.read_schema(path).names)
                table = pq.read_table(path, columns=[c for c in columns if c in names])
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: unreadable episode metadata: {exc}") from exc
        if "episode_index" not in table.column_names:
            raise DataError(f"{path}: episode metadata without an episode_index column")
        for row in table.to_pylist():
            yield path, row


def row_files(
    root: str | Path, info: Mapping[str, Any], meta_file: Path, row: Mapping[str, Any]
) -> list[str]:
    """Paths (relative to ``root``, ``/``-separated) of an episode's metadata file, frame data and videos."""
    out = [Path(meta_file).relative_to(root).as_posix()]
    if row.get("data/chunk_index") is not None and row.get("data/file_index") is not None:
        out.append(
            info["data_path"].format(
                chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"])
            )
        )
    for key, feat in info.get("features", {}).items():
        chunk, file = row.get(f"videos/{key}/chunk_index"), row.get(f"videos/{key}/file_index")
        if feat.get("dtype") == "video" and chunk is not None and file is not None:
            template = info.get("video_path") or VIDEO_PATH
            out.append(template.format(video_key=key, chunk_index=int(chunk), file_index=int(file)))
    return out


def dataset_keys(root: str | Path) -> dict[str, int]:
    """``{key: episode index}`` of the committed, keyed episodes of the dataset at ``root`` ({} if none)."""
    root = Path(root)
    if not (root / INFO_PATH).exists():
        return {}
    n = int(_load_info(root)["total_episodes"])
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


# ----------------------------------------------------------------------------- statistics
def _moments(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-feature stats of (N, D) values in LeRobot's stats.json layout."""
    x = np.asarray(x, dtype=np.float64)
    return {
        "min": x.min(0),
        "max": x.max(0),
        "mean": x.mean(0),
        "std": x.std(0),
        "count": np.array([len(x)]),
    }


def _merge_stats(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> dict[str, Any]:
    """Combine two stats dicts (parallel-variance formula); shapes come from ``b``."""
    if not a:
        return {k: np.asarray(v, dtype=np.float64) for k, v in b.items()}
    na, nb = float(np.asarray(a["count"]).sum()), float(np.asarray(b["count"]).sum())
    ma, mb = np.asarray(a["mean"], dtype=np.float64), np.asarray(b["mean"], dtype=np.float64)
    sa, sb = np.asarray(a["std"], dtype=np.float64), np.asarray(b["std"], dtype=np.float64)
    n = na + nb
    mean = (na * ma + nb * mb) / n
    var = (na * (sa**2 + (ma - mean) ** 2) + nb * (sb**2 + (mb - mean) ** 2)) / n
    return {
        "min": np.minimum(np.asarray(a["min"]), np.asarray(b["min"])),
        "max": np.maximum(np.asarray(a["max"]), np.asarray(b["max"])),
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
        "count": np.array([int(n)]),
    }


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Channel stats of uint8 (N, H, W, 3) in [0, 1], shaped (3, 1, 1) like LeRobot's."""
    x = frames.astype(np.float64).reshape(-1, 3) / 255.0
    st = _moments(x)
    out = {k: v.reshape(3, 1, 1) for k, v in st.items() if k != "count"}
    out["count"] = np.array([len(frames)])
    return out


def _jsonable(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


# ----------------------------------------------------------------------------- writer
class DatasetWriter:
    """Append episodes to a LeRobot v3 dataset at ``root``, one atomic commit per episode.

    Args:
        root: dataset directory (created; an existing dataset is reopened for appending).
        fps: frame rate; must match an existing dataset's.
        robot_type: stored in ``info.json``.
        crf, pix_fmt, gop, codec: video encoding (see :mod:`actionimages.data.video`).

    Only one writer may hold a dataset at a time (an advisory file lock enforces it).
    """

    def __init__(
        self,
        root: str | Path,
        fps: float,
        robot_type: str = "panda",
        *,
        crf: int = DEFAULT_CRF,
        pix_fmt: str = DEFAULT_PIX_FMT,
        gop: int = DEFAULT_GOP,
        codec: str = DEFAULT_CODEC,
        chunks_size: int = CHUNKS_SIZE,
    ) -> None:
        self.root = Path(root)
        self.fps = float(fps)
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise DataError(f"{self.root}: fps must be positive, got {fps}")
        self.video_opts = {"crf": int(crf), "pix_fmt": pix_fmt, "gop": int(gop), "codec": codec}
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_file = lock_dataset(self.root)
        self._closed = False
        info_path = self.root / INFO_PATH
        if info_path.exists():
            self.info = _load_info(self.root)
            if abs(float(self.info["fps"]) - self.fps) > 1e-6:
                self.close()
                raise DataError(f"{self.root}: dataset fps is {self.info['fps']}, writer asked for {fps}")
        else:
            leftovers = [
                p.name for p in self.root.iterdir() if p.name not in (LOCK_NAME, "meta", "data", "videos")
            ]
            if leftovers:
                self.close()
                raise DataError(f"{self.root}: not a dataset and not empty ({leftovers[:5]})")
            self.info = {
                "codebase_version": CODEBASE_VERSION,
                "robot_type": robot_type,
                "total_episodes": 0,
                "total_frames": 0,
                "total_tasks": 0,
                "chunks_size": int(chunks_size),
                "data_files_size_in_mb": 100,
                "video_files_size_in_mb": 500,
                "fps": self.fps if self.fps != int(self.fps) else int(self.fps),
                "splits": {},
                "data_path": DATA_PATH,
                "video_path": VIDEO_PATH,
                "features": {},
            }
        self._keys: dict[str, int] | None = None
        self._claimed: dict[int, str] = {}  # uncommitted episode index -> a foreign file with a row for it
        try:
            self._recover()
        except BaseException:
            self.close()
            raise
        self.stats = _load_json(self.root / STATS_PATH) if (self.root / STATS_PATH).exists() else {}
        self.tasks = _read_tasks(self.root)
        if not info_path.exists():  # an empty but valid dataset from the start (readers see 0 episodes)
            write_json_atomic(info_path, self.info, **JSON_STYLE)

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the dataset lock (episodes are already committed)."""
        if not getattr(self, "_closed", True):
            self._closed = True
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()

    def __len__(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def keys(self) -> dict[str, int]:
        """``{key: episode index}`` of the committed episodes that carry a key (see :meth:`add_episode`)."""
        if self._keys is None:
            self._scan()
        assert self._keys is not None
        return self._keys

    def _scan(self) -> set[str]:
        """Read every episode row: note keys and foreign rows of uncommitted episodes; return files in use."""
        n, used, keys, claimed = len(self), set(), {}, {}
        for meta_file, row in episode_rows(self.root, row_columns(self.info)):
            e = int(row["episode_index"])
            if e >= n:
                claimed.setdefault(e, meta_file.relative_to(self.root).as_posix())
                continue
            used.update(row_files(self.root, self.info, meta_file, row))
            if row.get(KEY_COLUMN):
                keys[str(row[KEY_COLUMN])] = e
        self._keys, self._claimed = keys, claimed
        return used

    def _recover(self) -> None:
        """Clean up after an interrupted append, deleting only files this writer provably wrote.

        Deleted: files with the atomic module's temporary prefix, and the files the journal lists
        for an episode that never committed (``stats.json`` and ``tasks.parquet`` go back to what
        the journal saved). Any other file under ``data/``, ``meta/episodes/`` or ``videos/`` that no
        committed episode uses is left in place and named in a warning.
        """
        for sub in ("meta", "data", "videos"):
            base = self.root / sub
            for path in base.rglob(TMP_PREFIX + "*") if base.is_dir() else []:
                if path.is_file():
                    path.unlink()
        self.checksums = read_checksums(self.root) or {}
        self._undo_pending()
        unknown = [f for f in episode_dir_files(self.root) if f not in self.checksums]
        if unknown:
            foreign = sorted(set(unknown) - self._scan())
            if foreign:
                more = f" and {len(foreign) - 10} more" if len(foreign) > 10 else ""
                warnings.warn(
                    f"{self.root}: {len(foreign)} file(s) that no committed episode uses and that this "
                    f"writer did not write are left in place (new episodes go beside them): "
                    f"{foreign[:10]}{more}",
                    stacklevel=3,
                )

    def _undo_pending(self) -> None:
        """If the journal names an episode that never committed, delete its files and restore
        ``stats.json`` and ``tasks.parquet``; then drop the journal."""
        journal_path = self.root / JOURNAL_PATH
        if not journal_path.exists():
            return
        journal = _load_json(journal_path)
        if not isinstance(journal, dict) or not isinstance(journal.get("episode_index"), int):
            raise DataError(f"{journal_path}: malformed writer journal (no episode_index)")
        if journal["episode_index"] >= len(self):
            self._undo(journal, journal_path)
        journal_path.unlink()

    def _undo(self, journal: Mapping[str, Any], journal_path: Path) -> None:
        """Delete the files of the uncommitted episode ``journal`` names; restore stats and tasks."""
        files = journal.get("files")
        if not isinstance(files, list) or not all(_is_episode_file(f) for f in files):
            raise DataError(f"{journal_path}: malformed writer journal (files must be episode file paths)")
        for rel in files:
            (self.root / rel).unlink(missing_ok=True)
            self.checksums.pop(rel, None)
        stats, tasks = journal.get("stats"), journal.get("tasks")
        if stats:
            write_json_atomic(self.root / STATS_PATH, stats, **JSON_STYLE)
        else:
            (self.root / STATS_PATH).unlink(missing_ok=True)
        if isinstance(tasks, list) and tasks != _read_tasks(self.root):
            if tasks:
                _write_parquet_atomic(self.root / TASKS_PATH, _tasks_table(tasks))
            else:
                (self.root / TASKS_PATH).unlink(missing_ok=True)
        for rel in (STATS_PATH, TASKS_PATH):
            if rel in self.checksums and (self.root / rel).exists():
                self.checksums[rel] = sha256_file(self.root / rel)
            else:
                self.checksums.pop(rel, None)
        if (self.root / CHECKSUMS_PATH).exists():
            _write_checksums(self.root, self.checksums)

    # -------------------------------------------------------------- features
    def _features_for(self, ep: Episode) -> dict[str, Any]:
        feats: dict[str, Any] = {
            "action": {"dtype": "float32", "shape": [7], "names": list(ACTION_NAMES)},
            "observation.state": {
                "dtype": "float32",
                "shape": [int(ep.state.shape[1])],
                "names": list(ACTION_NAMES) if ep.state.shape[1] == 7 else None,
            },
        }
        for key, pose in ROT6D_FEATURES.items():
            if feats[pose]["names"] == ACTION_NAMES:  # (a state of another layout has no Euler angles)
                feats[key] = {"dtype": "float32", "shape": [6], "names": list(ROT6D_NAMES)}
        for cam in ep.camera_names:
            _, H, W, _ = ep.frames[cam].shape
            feats[video_key(cam)] = {
                "dtype": "video",
                "shape": [int(H), int(W), 3],
                "names": ["height", "width", "channels"],
                "info": None,
            }
        feats.update(json.loads(json.dumps(DEFAULT_FEATURES)))
        return feats

    def _check_compatible(self, ep: Episode, where: str) -> None:
        want = self.info["features"]
        have = self._features_for(ep)
        cams_want = sorted(k for k in want if k.startswith(VIDEO_PREFIX))
        cams_have = sorted(k for k in have if k.startswith(VIDEO_PREFIX))
        if cams_want != cams_have:
            raise DataError(f"{where}: cameras {cams_have} differ from the dataset's {cams_want}")
        for key in [*cams_want, "observation.state"]:
            if list(want[key]["shape"]) != list(have[key]["shape"]):
                raise DataError(
                    f"{where}: {key} has shape {have[key]['shape']}, dataset has {want[key]['shape']}"
                )

    # -------------------------------------------------------------- append
    def _free_slot(self, e: int, video_keys: Sequence[str]) -> tuple[dict[str, int], dict[str, str]]:
        """``(chunk/file index, {role: relative path})`` of the first file index at or after ``e``
        where none of the episode's files exists yet (so no file is ever overwritten)."""
        cs = int(self.info["chunks_size"])
        video_path = self.info.get("video_path") or VIDEO_PATH
        s = e
        while True:
            idx = chunk_file(s, cs)
            rels = {"meta": EPISODES_PATH.format(**idx), "data": self.info["data_path"].format(**idx)}
            rels.update({k: video_path.format(video_key=k, **idx) for k in video_keys})
            if not any((self.root / r).exists() for r in rels.values()):
                return idx, rels
            s += 1

    def add_episode(self, episode: Episode, key: str | None = None) -> int:
        """Write ``episode`` atomically and return its episode index.

        ``key`` (optional) names the episode's origin, e.g. ``"sim:reach_target/train/seed3"``; it is
        stored in ``actionimages/key`` and listed in :attr:`keys`, and a key already in the dataset
        is refused, so re-running a command that writes keyed episodes can skip what is there.
        """
        if self._closed:
            raise DataError(f"{self.root}: writer is closed")
        if not isinstance(episode, Episode):
            raise DataError(f"{self.root}: add_episode needs an Episode, got {type(episode).__name__}")
        e = int(self.info["total_episodes"])
        where = f"{self.root} episode {e}"
        ep_key = key  # (``key`` names feature keys below)
        if ep_key is not None:
            if not isinstance(ep_key, str) or not ep_key:
                raise DataError(f"{where}: an episode key must be a non-empty string, got {ep_key!r}")
            if ep_key in self.keys:
                raise DataError(
                    f"{where}: key {ep_key!r} is already episode {self.keys[ep_key]} of this dataset"
                )
        self._undo_pending()  # an earlier add_episode of this writer that raised part-way
        if e in self._claimed:
            raise DataError(
                f"{where}: {self.root / self._claimed[e]} has a row for episode {e}, which was never "
                "committed and which this writer did not write; it would be read as the new episode. "
                "Remove it by hand (a leftover of an interrupted write by an older version?)"
            )
        if abs(episode.fps - self.fps) > 1e-6:
            raise DataError(f"{where}: episode fps {episode.fps} differs from dataset fps {self.fps}")
        if e == 0 and not self.info["features"]:
            features = self._features_for(episode)
        else:
            self._check_compatible(episode, where)
            features = self.info["features"]
        T = episode.num_frames
        idx, rels = self._free_slot(e, [video_key(cam) for cam in episode.camera_names])
        start = int(self.info["total_frames"])

        if episode.instruction in self.tasks:
            task_index = self.tasks.index(episode.instruction)
            new_tasks = self.tasks
        else:
            task_index = len(self.tasks)
            new_tasks = [*self.tasks, episode.instruction]

        # 0. the journal: what the next writer deletes if this episode never commits
        journal = {
            "episode_index": e,
            "files": sorted(rels.values()),
            "stats": self.stats,
            "tasks": self.tasks,
        }
        write_json_atomic(self.root / JOURNAL_PATH, journal, **JSON_STYLE)

        # 1. videos
        ep_stats: dict[str, Any] = {}
        video_cols: dict[str, Any] = {}
        for cam in episode.camera_names:
            key = video_key(cam)
            frames = np.asarray(episode.frames[cam][np.arange(T)])
            path = self.root / rels[key]
            with atomic_path(path) as tmp:
                encode_video(tmp, frames, self.fps, **self.video_opts)
            sel = np.linspace(0, T - 1, min(T, STATS_FRAMES)).round().astype(int)
            ep_stats[key] = _image_stats(frames[sel])
            video_cols[f"videos/{key}/chunk_index"] = idx["chunk_index"]
            video_cols[f"videos/{key}/file_index"] = idx["file_index"]
            video_cols[f"videos/{key}/from_timestamp"] = 0.0
            video_cols[f"videos/{key}/to_timestamp"] = T / self.fps
            if features[key].get("info") is None:
                features[key]["info"] = probe_video(path)
                features[key]["info"].pop("video.frames", None)

        # 2. frame data
        actions = episode.actions.astype(np.float32)
        state = episode.state.astype(np.float32)
        frame_index = np.arange(T, dtype=np.int64)
        # only where the dataset declares them: one written before they existed keeps its columns
        poses = {"action": episode.actions, "observation.state": episode.state}
        rot6d = {
            key: euler_to_rot6d(poses[pose][:, 3:6]).astype(np.float32)
            for key, pose in ROT6D_FEATURES.items()
            if key in features
        }
        data = pa.table(
            {
                "action": _vectors(actions),
                "observation.state": _vectors(state),
                **{k: _vectors(v) for k, v in rot6d.items()},
                "timestamp": pa.array((frame_index / self.fps).astype(np.float32)),
                "frame_index": pa.array(frame_index),
                "episode_index": pa.array(np.full(T, e, dtype=np.int64)),
                "index": pa.array(start + frame_index),
                "task_index": pa.array(np.full(T, task_index, dtype=np.int64)),
            }
        )
        _write_parquet_atomic(self.root / rels["data"], data)
        ep_stats["action"] = _moments(actions)
        ep_stats["observation.state"] = _moments(state)
        ep_stats.update({k: _moments(v) for k, v in rot6d.items()})
        for key, values in (("timestamp", data["timestamp"]), ("frame_index", frame_index)):
            ep_stats[key] = _moments(np.asarray(values, dtype=np.float64)[:, None])

        # 3. episode metadata row
        row: dict[str, Any] = {
            "episode_index": e,
            "tasks": [episode.instruction],
            "length": T,
            "data/chunk_index": idx["chunk_index"],
            "data/file_index": idx["file_index"],
            "dataset_from_index": start,
            "dataset_to_index": start + T,
            **video_cols,
            "meta/episodes/chunk_index": idx["chunk_index"],
            "meta/episodes/file_index": idx["file_index"],
        }
        for feat, st in ep_stats.items():
            for name, value in st.items():
                row[f"stats/{feat}/{name}"] = np.asarray(value).tolist()
        row[EXT + "task"] = episode.task
        row[EXT + "has_actions"] = episode.has_actions
        row[EXT + "calibration"] = json.dumps(calibration_to_json(episode.cameras))
        row[EXT + "info"] = json.dumps(episode.info, default=_json_default)
        row[KEY_COLUMN] = ep_key or ""
        _write_parquet_atomic(self.root / rels["meta"], pa.Table.from_pylist([row]))

        # 4. dataset-level metadata; info.json last (the commit point)
        if new_tasks is not self.tasks:
            _write_parquet_atomic(self.root / TASKS_PATH, _tasks_table(new_tasks))
        stats = {k: _merge_stats(self.stats.get(k), v) for k, v in ep_stats.items()}
        write_json_atomic(self.root / STATS_PATH, _jsonable(stats), **JSON_STYLE)
        checksums = dict(self.checksums)
        for rel in [*rels.values(), STATS_PATH, *([TASKS_PATH] if new_tasks is not self.tasks else [])]:
            checksums[rel] = sha256_file(self.root / rel)
        _write_checksums(self.root, checksums)
        info = dict(self.info)
        info["features"] = features
        info["total_episodes"] = e + 1
        info["total_frames"] = start + T
        info["total_tasks"] = len(new_tasks)
        info["splits"] = {"train": f"0:{e + 1}"}
        write_json_atomic(self.root / INFO_PATH, info, **JSON_STYLE)
        (self.root / JOURNAL_PATH).unlink()  # committed; a journal that outlives a crash here is ignored
        self.info, self.tasks, self.stats, self.checksums = info, new_tasks, _jsonable(stats), checksums
        if ep_key is not None:
            self.keys[ep_key] = e
        return e


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"episode info value {obj!r} is not JSON-serialisable")


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable JSON: {exc}") from exc


def _load_info(root: Path) -> dict[str, Any]:
    path = root / INFO_PATH
    if not path.exists():
        raise DataError(f"{root}: not a LeRobot dataset ({INFO_PATH} missing)")
    info = _load_json(path)
    missing = [
        k for k in ("codebase_version", "fps", "features", "total_episodes", "data_path") if k not in info
    ]
    if missing:
        raise DataError(f"{path}: missing keys {missing}")
    if not str(info["codebase_version"]).startswith("v3."):
        raise DataError(f"{path}: codebase_version {info['codebase_version']!r} is not v3.x")
    return info


# ----------------------------------------------------------------------------- reader
@register_source
class DatasetReader:
    """Random access to a LeRobot v3 dataset written by :class:`DatasetWriter` (or LeRobot itself).

    ``len(reader)`` is the number of committed episodes. Metadata is cached only while
    ``meta/info.json`` is unchanged (checked by ``stat`` on each access), so a reader sees episodes
    appended after it was opened and never serves stale rows. Videos are not cached.
    """

    kind = "lerobot"
    root_markers = (INFO_PATH,)

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset directory does not exist")
        self._key: tuple[int, int, int] | None = None
        self._refresh()

    # -------------------------------------------------------------- metadata
    def _refresh(self) -> None:
        try:
            st = (self.root / INFO_PATH).stat()
        except OSError as exc:
            raise DataError(f"{self.root}: not a LeRobot dataset ({INFO_PATH} missing)") from exc
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._key:
            self.info = _load_info(self.root)
            self.tasks = _read_tasks(self.root)
            self._rows: dict[int, dict[str, Any]] = {}  # decoded rows
            self._raw: dict[int, dict[str, Any]] = {}  # rows as read, of every metadata file loaded
            self._row_file: dict[int, Path] = {}
            self._loaded: set[Path] = set()
            self._data: tuple[tuple[Any, ...], pa.Table] | None = None  # last frame-data file read
            self._key = key

    @property
    def fps(self) -> float:
        """Frame rate in Hz."""
        self._refresh()
        return float(self.info["fps"])

    @property
    def cameras(self) -> list[str]:
        """Camera names (features ``observation.images.<name>``)."""
        self._refresh()
        return [k[len(VIDEO_PREFIX) :] for k, v in self.info["features"].items() if v.get("dtype") == "video"]

    def __len__(self) -> int:
        self._refresh()
        return int(self.info["total_episodes"])

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not isinstance(i, (int, np.integer)) or not 0 <= int(i) < n:
            raise IndexError(f"{self.root}: episode {i} out of range for {n} episodes")
        return int(i)

    def meta(self, i: int) -> dict[str, Any]:
        """Episode ``i``'s metadata row (LeRobot columns + ``actionimages/*``; JSON columns decoded)."""
        i = self._check_index(i)
        if i in self._rows:
            return self._rows[i]
        cs = int(self.info.get("chunks_size", CHUNKS_SIZE))
        path = self.root / EPISODES_PATH.format(**chunk_file(i, cs))
        # its own file first; else every file (LeRobot packs episodes, and our writer moves an
        # episode to a free file index when a file it did not write holds its own)
        if path not in self._loaded and path.exists():
            self._load_rows(path)
        if i not in self._raw:
            for p in sorted((self.root / "meta/episodes").glob("chunk-*/file-*.parquet")):
                if p not in self._loaded:
                    self._load_rows(p)
                    if i in self._raw:
                        break
        if i not in self._raw:
            state = "has no row for it" if path.exists() else "is missing"
            raise DataError(
                f"{self.root} episode {i}: no metadata row in meta/episodes "
                f"({path.relative_to(self.root)} {state}, and no other file has one)"
            )
        row = dict(self._raw[i])
        for col in ("calibration", "info"):
            raw = row.get(EXT + col)
            if isinstance(raw, str):
                try:
                    row[EXT + col] = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"{self._row_file[i]} episode {i}: {EXT + col} is not valid JSON: {exc}"
                    ) from exc
        self._rows[i] = row
        return row

    def _load_rows(self, path: Path) -> None:
        """Remember the rows of committed episodes in one ``meta/episodes`` file."""
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: unreadable episode metadata: {exc}") from exc
        if "episode_index" not in table.column_names:
            raise DataError(f"{path}: episode metadata without an episode_index column")
        self._loaded.add(path)
        n = int(self.info["total_episodes"])
        for row in table.to_pylist():
            e = int(row["episode_index"])
            if e < n and e not in self._raw:
                self._raw[e], self._row_file[e] = row, path

    def episode_files(self, i: int) -> list[str]:
        """Paths (relative to the root) of episode ``i``'s files: metadata file, frame data, videos."""
        row = self.meta(i)
        return row_files(self.root, self.info, self._row_file[i], row)

    def episode_id(self, i: int) -> str:
        """A name of episode ``i`` that stays the same as the dataset grows: its index."""
        return str(self._check_index(i))

    def num_frames(self, i: int) -> int:
        """Length of episode ``i`` (from metadata; no decoding)."""
        return int(self.meta(i)["length"])

    def video_path(self, i: int, camera: str) -> Path:
        """Path of episode ``i``'s video of ``camera``."""
        row = self.meta(i)
        key = video_key(camera)
        if f"videos/{key}/chunk_index" not in row:
            raise DataError(
                f"{self.root} episode {i}: no video for camera {camera!r} (cameras: {self.cameras})"
            )
        return self.root / self.info["video_path"].format(
            video_key=key,
            chunk_index=int(row[f"videos/{key}/chunk_index"]),
            file_index=int(row[f"videos/{key}/file_index"]),
        )

    def video_span(self, i: int, camera: str) -> tuple[int, int]:
        """``(first, end)``: episode ``i``'s frames of ``camera`` are frames ``first .. end - 1`` of its video
        file (``first`` > 0 where LeRobot packed several episodes in one file), from the row's
        ``from_timestamp`` / ``to_timestamp`` (``end = first + length`` without the latter)."""
        row = self.meta(i)
        key = video_key(camera)
        first = int(round(float(row.get(f"videos/{key}/from_timestamp") or 0.0) * self.fps))
        stop = row.get(f"videos/{key}/to_timestamp")
        end = first + int(row["length"]) if stop is None else int(round(float(stop) * self.fps))
        return first, end

    def data_path(self, i: int) -> Path:
        """Path of the parquet file holding episode ``i``'s frames."""
        row = self.meta(i)
        return self.root / self.info["data_path"].format(
            chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"])
        )

    # -------------------------------------------------------------- frames
    def frames(self, i: int, camera: str, indices: Any) -> np.ndarray:
        """Decode frames ``indices`` (N,) of episode ``i``'s ``camera``: uint8 (N, H, W, 3)."""
        row = self.meta(i)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        T = int(row["length"])
        if idx.size and (idx.min() < 0 or idx.max() >= T):
            raise IndexError(
                f"{self.root} episode {i}: frame indices must lie in [0, {T}), got {idx.min()}..{idx.max()}"
            )
        path = self.video_path(i, camera)
        if not path.exists():
            raise DataError(f"{self.root} episode {i}: video file missing: {path}")
        first, _ = self.video_span(i, camera)  # episodes packed in one file (LeRobot) start at an offset
        return decode_frames(path, idx + first, self.fps, where=f"episode {i} camera {camera!r}")

    def columns(self, i: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-frame columns ``names`` of episode ``i`` in frame order: float64 (T,) or (T, D) each.

        A column the frame data lacks raises :class:`DataError` naming it and the columns there are.
        """
        row = self.meta(i)
        path = self.data_path(i)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DataError(f"{self.root} episode {i}: frame data missing: {path}") from None
        wanted = ("episode_index", "frame_index", *names)
        stamp = (path, st.st_mtime_ns, st.st_size, wanted)
        if self._data is not None and self._data[0] == stamp:  # episodes packed in one file (LeRobot)
            table = self._data[1]
        else:
            try:
                have = pq.read_schema(path).names
            except (OSError, pa.ArrowException) as exc:
                raise DataError(f"{self.root} episode {i}: unreadable frame data {path}: {exc}") from exc
            missing = [c for c in wanted if c not in have]
            if missing:
                raise DataError(
                    f"{self.root} episode {i}: no column {', '.join(map(repr, missing))} in {path}; "
                    f"its columns: {have}"
                )
            try:
                table = pq.read_table(path, columns=list(dict.fromkeys(wanted)))
            except (OSError, pa.ArrowException) as exc:
                raise DataError(f"{self.root} episode {i}: unreadable frame data {path}: {exc}") from exc
            self._data = (stamp, table)
        if int(row["dataset_to_index"]) - int(row["dataset_from_index"]) != table.num_rows:
            mask = np.asarray(table.column("episode_index")) == i
            table = table.filter(pa.array(mask))
        out: dict[str, np.ndarray] = {}
        for col in names:
            values = table.column(col).to_pylist()
            try:
                out[col] = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"{self.root} episode {i}: {col} rows in {path} are ragged or null: {exc}"
                ) from exc
        order = np.argsort(np.asarray(table.column("frame_index")))
        return {k: v[order] for k, v in out.items()}

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        """Per-frame columns of episode ``i``: ``action`` (T, 7), ``observation.state`` (T, D), timestamps,
        and ``action.rot6d`` / ``observation.state.rot6d`` (T, 6) where the dataset has them."""
        rot6d = [k for k in ROT6D_FEATURES if k in self.info["features"]]
        return self.columns(i, ["action", "observation.state", "timestamp", *rot6d])

    def video_file(self, i: int, camera: str) -> VideoFile:
        """Episode ``i``'s frames of ``camera`` (a lazily decoded :class:`VideoFile` of its span)."""
        T = self.num_frames(i)
        features = self.info["features"]
        if video_key(camera) not in features:
            raise DataError(
                f"{self.root} episode {i}: no video for camera {camera!r} (cameras: {self.cameras})"
            )
        shape = features[video_key(camera)]["shape"]
        first, _ = self.video_span(i, camera)
        return VideoFile(
            self.video_path(i, camera),
            T,
            int(shape[0]),
            int(shape[1]),
            self.fps,
            frame_map=np.arange(first, first + T) if first else None,
            where=f"episode {i} camera {camera!r}",
        )

    def episode(self, i: int) -> Episode:
        """Episode ``i`` with lazily decoded frames (a :class:`VideoFile` per camera)."""
        row = self.meta(i)
        where = f"{self.root} episode {i}"
        arrays = self.arrays(i)
        T = int(row["length"])
        if len(arrays["action"]) != T:
            raise DataError(
                f"{where}: frame-count mismatch: metadata says {T} frames, "
                f"{self.data_path(i)} has {len(arrays['action'])}"
            )
        calib = row.get(EXT + "calibration")
        if calib is None:
            raise DataError(
                f"{where}: missing calibration (no {EXT}calibration column in meta/episodes); a dataset "
                "from your own robot converts with --calibration and a pose source (docs/DEPLOY.md)"
            )
        cameras = calibration_from_json(calib, where)
        frames = {}
        for cam in self.cameras:
            if cam not in cameras:
                raise DataError(f"{where}: missing calibration for camera {cam!r}")
            frames[cam] = self.video_file(i, cam)
        extra = [c for c in cameras if c not in frames]
        if extra:
            raise DataError(
                f"{where}: camera count differs from video count: "
                f"calibrated {sorted(cameras)}, videos {sorted(frames)}"
            )
        info = dict(row.get(EXT + "info") or {})
        # messages about this episode name the dataset and episode first, then where it was recorded
        recorded = info.get("source")
        info["source"] = f"{where} (recorded from {recorded})" if recorded and recorded != where else where
        info["episode_index"] = i
        tasks = row.get("tasks") or [""]
        return Episode(
            frames=frames,
            cameras=cameras,
            actions=arrays["action"],
            state=arrays["observation.state"],
            instruction=str(tasks[0]),
            task=str(row.get(EXT + "task") or ""),
            fps=self.fps,
            info=info,
            has_actions=bool(row.get(EXT + "has_actions", True)),
        )

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self.episode(i)

    def camera(self, i: int, camera: str) -> Camera | list[Camera]:
        """Calibration of ``camera`` in episode ``i``."""
        return self.episode(i).cameras[camera]
