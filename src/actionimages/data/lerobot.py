"""LeRobot v3.0 datasets on disk: an atomic per-episode writer and a random-access reader.

Layout (the published LeRobot ``v3.0`` templates, one file per episode)::

    meta/info.json                  codebase_version "v3.0", fps, features, path templates, totals
    meta/tasks.parquet              task (the instruction, pandas index) -> task_index
    meta/stats.json                 per-feature min / max / mean / std / count
    meta/episodes/chunk-CCC/file-FFF.parquet   one row per episode (+ our calibration columns)
    data/chunk-CCC/file-FFF.parquet            frames: action, observation.state, timestamp, ...
    videos/observation.images.<camera>/chunk-CCC/file-FFF.mp4

Episode ``e`` lives in chunk ``e // chunks_size``, file ``e % chunks_size`` (LeRobot's own
file-index rollover), so each episode's files are written once and never touched again.

Atomicity: every file is written under a temporary name in its final directory, fsynced and
renamed; ``meta/info.json`` (``total_episodes``) is replaced last and is the commit point. Files
of episodes at or beyond ``total_episodes`` are leftovers of a crash: readers ignore them and the
next writer removes them. Our additions live in extra columns prefixed ``actionimages/`` (per-episode
calibration, task name, ``has_actions``, info), which LeRobot carries through unread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actionimages.atomic import TMP_PREFIX, atomic_path, write_json_atomic
from actionimages.codec.camera import Camera
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
STATS_FRAMES = 16  # frames per episode sampled for image statistics
LOCK_NAME = ".actionimages.lock"
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
        self._lock_file = open(self.root / LOCK_NAME, "a")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            raise DataError(f"{self.root}: another DatasetWriter holds this dataset") from exc
        self._closed = False
        info_path = self.root / INFO_PATH
        if info_path.exists():
            self.info = _load_info(self.root)
            if abs(float(self.info["fps"]) - self.fps) > 1e-6:
                self.close()
                raise DataError(f"{self.root}: dataset fps is {self.info['fps']}, writer asked for {fps}")
            self.stats = _load_json(self.root / STATS_PATH) if (self.root / STATS_PATH).exists() else {}
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
            self.stats = {}
        self.tasks = _read_tasks(self.root)
        self._remove_uncommitted()
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

    def _remove_uncommitted(self) -> None:
        """Delete temp files and files of episodes beyond ``total_episodes`` (a crashed append)."""
        n, cs = int(self.info["total_episodes"]), int(self.info["chunks_size"])
        for sub in ("data", "meta/episodes", "videos"):
            base = self.root / sub
            if not base.exists():
                continue
            for path in base.rglob("*"):
                if not path.is_file():
                    continue
                if path.name.startswith(TMP_PREFIX):
                    path.unlink()
                    continue
                try:
                    chunk = int(path.parent.name.split("-")[1])
                    file = int(path.stem.split("-")[1])
                except (IndexError, ValueError):
                    continue
                if chunk * cs + file >= n:
                    path.unlink()
        for path in (self.root / "meta").glob(TMP_PREFIX + "*") if (self.root / "meta").exists() else []:
            path.unlink()

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
    def add_episode(self, episode: Episode) -> int:
        """Write ``episode`` atomically and return its episode index."""
        if self._closed:
            raise DataError(f"{self.root}: writer is closed")
        if not isinstance(episode, Episode):
            raise DataError(f"{self.root}: add_episode needs an Episode, got {type(episode).__name__}")
        e = int(self.info["total_episodes"])
        where = f"{self.root} episode {e}"
        if abs(episode.fps - self.fps) > 1e-6:
            raise DataError(f"{where}: episode fps {episode.fps} differs from dataset fps {self.fps}")
        if e == 0 and not self.info["features"]:
            features = self._features_for(episode)
        else:
            self._check_compatible(episode, where)
            features = self.info["features"]
        T = episode.num_frames
        cs = int(self.info["chunks_size"])
        idx = chunk_file(e, cs)
        start = int(self.info["total_frames"])

        if episode.instruction in self.tasks:
            task_index = self.tasks.index(episode.instruction)
            new_tasks = self.tasks
        else:
            task_index = len(self.tasks)
            new_tasks = [*self.tasks, episode.instruction]

        # 1. videos
        ep_stats: dict[str, Any] = {}
        video_cols: dict[str, Any] = {}
        for cam in episode.camera_names:
            key = video_key(cam)
            frames = np.asarray(episode.frames[cam][np.arange(T)])
            path = self.root / VIDEO_PATH.format(video_key=key, **idx)
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
        data = pa.table(
            {
                "action": pa.FixedSizeListArray.from_arrays(pa.array(actions.reshape(-1)), 7),
                "observation.state": pa.FixedSizeListArray.from_arrays(
                    pa.array(state.reshape(-1)), state.shape[1]
                ),
                "timestamp": pa.array((frame_index / self.fps).astype(np.float32)),
                "frame_index": pa.array(frame_index),
                "episode_index": pa.array(np.full(T, e, dtype=np.int64)),
                "index": pa.array(start + frame_index),
                "task_index": pa.array(np.full(T, task_index, dtype=np.int64)),
            }
        )
        _write_parquet_atomic(self.root / DATA_PATH.format(**idx), data)
        ep_stats["action"] = _moments(actions)
        ep_stats["observation.state"] = _moments(state)
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
        _write_parquet_atomic(self.root / EPISODES_PATH.format(**idx), pa.Table.from_pylist([row]))

        # 4. dataset-level metadata; info.json last (the commit point)
        if new_tasks is not self.tasks:
            _write_parquet_atomic(self.root / TASKS_PATH, _tasks_table(new_tasks))
        stats = {k: _merge_stats(self.stats.get(k), v) for k, v in ep_stats.items()}
        write_json_atomic(self.root / STATS_PATH, _jsonable(stats), **JSON_STYLE)
        info = dict(self.info)
        info["features"] = features
        info["total_episodes"] = e + 1
        info["total_frames"] = start + T
        info["total_tasks"] = len(new_tasks)
        info["splits"] = {"train": f"0:{e + 1}"}
        write_json_atomic(self.root / INFO_PATH, info, **JSON_STYLE)
        self.info, self.tasks, self.stats = info, new_tasks, _jsonable(stats)
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
        self._rows: dict[int, dict[str, Any]] = {}
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
            self._rows = {}
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
        row = None
        if path.exists():
            row = self._row_from(path, i)
        if row is None:  # a LeRobot-written dataset may pack several episodes per file
            for p in sorted((self.root / "meta/episodes").glob("chunk-*/file-*.parquet")):
                row = self._row_from(p, i)
                if row is not None:
                    break
        if row is None:
            raise DataError(f"{self.root} episode {i}: no metadata row in meta/episodes")
        for col in ("calibration", "info"):
            raw = row.get(EXT + col)
            if isinstance(raw, str):
                try:
                    row[EXT + col] = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path} episode {i}: {EXT + col} is not valid JSON: {exc}") from exc
        self._rows[i] = row
        return row

    def _row_from(self, path: Path, i: int) -> dict[str, Any] | None:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path} episode {i}: unreadable episode metadata: {exc}") from exc
        eps = table.column("episode_index").to_pylist()
        if i not in eps:
            return None
        return {k: v[0] for k, v in table.slice(eps.index(i), 1).to_pydict().items()}

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
        key = video_key(camera)
        offset = float(row.get(f"videos/{key}/from_timestamp", 0.0) or 0.0)
        fps = self.fps
        path = self.video_path(i, camera)
        if not path.exists():
            raise DataError(f"{self.root} episode {i}: video file missing: {path}")
        first = int(round(offset * fps))  # episodes packed in one file (LeRobot) start at an offset
        return decode_frames(path, idx + first, fps, where=f"episode {i} camera {camera!r}")

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        """Per-frame columns of episode ``i``: ``action`` (T, 7), ``observation.state`` (T, D), timestamps."""
        row = self.meta(i)
        path = self.data_path(i)
        try:
            table = pq.read_table(
                path, columns=["episode_index", "frame_index", "action", "observation.state", "timestamp"]
            )
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise DataError(f"{self.root} episode {i}: unreadable frame data {path}: {exc}") from exc
        if int(row["dataset_to_index"]) - int(row["dataset_from_index"]) != table.num_rows:
            mask = np.asarray(table.column("episode_index")) == i
            table = table.filter(pa.array(mask))
        out: dict[str, np.ndarray] = {}
        for col in ("action", "observation.state"):
            values = table.column(col).to_pylist()
            try:
                out[col] = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"{self.root} episode {i}: {col} rows in {path} are ragged or null: {exc}"
                ) from exc
        out["timestamp"] = np.asarray(table.column("timestamp"), dtype=np.float64)
        order = np.argsort(np.asarray(table.column("frame_index")))
        return {k: v[order] for k, v in out.items()}

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
            raise DataError(f"{where}: missing calibration (no {EXT}calibration column in meta/episodes)")
        cameras = calibration_from_json(calib, where)
        frames = {}
        for cam in self.cameras:
            if cam not in cameras:
                raise DataError(f"{where}: missing calibration for camera {cam!r}")
            shape = self.info["features"][video_key(cam)]["shape"]
            first = int(round(float(row.get(f"videos/{video_key(cam)}/from_timestamp") or 0.0) * self.fps))
            frames[cam] = VideoFile(
                self.video_path(i, cam),
                T,
                int(shape[0]),
                int(shape[1]),
                self.fps,
                frame_map=np.arange(first, first + T) if first else None,
                where=f"episode {i} camera {cam!r}",
            )
        extra = [c for c in cameras if c not in frames]
        if extra:
            raise DataError(
                f"{where}: camera count differs from video count: "
                f"calibrated {sorted(cameras)}, videos {sorted(frames)}"
            )
        info = dict(row.get(EXT + "info") or {})
        info.setdefault("source", where)
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
