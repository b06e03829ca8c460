"""The atomic per-episode writer (the package docstring says how a crash is survived)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from actionimages.atomic import TMP_PREFIX, atomic_path, sha256_file, write_json_atomic
from actionimages.codec.poses import euler_to_rot6d
from actionimages.data.episode import Episode, calibration_to_json
from actionimages.data.lerobot.euler import EULER, euler_columns, mark_unwrapped, unwrap_euler
from actionimages.data.lerobot.files import (
    episode_dir_files,
    is_episode_file,
    lock_dataset,
    read_checksums,
    write_checksums,
)
from actionimages.data.lerobot.layout import (
    ACTION_NAMES,
    CHECKSUMS_PATH,
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    EXT,
    INFO_PATH,
    JOURNAL_PATH,
    JSON_STYLE,
    KEY_COLUMN,
    LOCK_NAME,
    ROT6D_FEATURES,
    ROT6D_NAMES,
    STATS_FRAMES,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    VIDEO_PREFIX,
    chunk_file,
    episode_rows,
    json_default,
    load_info,
    load_json,
    read_tasks,
    row_columns,
    row_files,
    tasks_table,
    video_key,
    write_parquet_atomic,
)
from actionimages.data.lerobot.stats import image_stats, jsonable, merge_stats, moments
from actionimages.data.video import (
    DEFAULT_CODEC,
    DEFAULT_CRF,
    DEFAULT_GOP,
    DEFAULT_PIX_FMT,
    encode_video,
    probe_video,
)
from actionimages.errors import DataError


def _vectors(x: np.ndarray) -> pa.FixedSizeListArray:
    """(N, D) values as the fixed-size list column LeRobot stores vector features in."""
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


class DatasetWriter:
    """Append episodes to a LeRobot v3 dataset at ``root``, one atomic commit per episode.

    Args:
        root: dataset directory (created; an existing dataset is reopened for appending).
        fps: frame rate; must match an existing dataset's.
        robot_type: stored in ``info.json``.
        crf, pix_fmt, gop, codec: video encoding (see :mod:`actionimages.data.video`).

    Only one writer may hold a dataset at a time (an advisory file lock enforces it). The Euler
    angles of ``action`` and ``observation.state`` are stored unwrapped along each episode (the same
    rotations, no 2*pi jump; :mod:`actionimages.data.lerobot.euler`), and a dataset this writer
    creates records that in ``meta/info.json``.
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
            self.info = load_info(self.root)
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
            self.info = mark_unwrapped(self.info)  # the Euler angles this writer stores (lerobot.euler)
        self._keys: dict[str, int] | None = None
        self._claimed: dict[int, str] = {}  # uncommitted episode index -> a foreign file with a row for it
        try:
            self._recover()
            self._refuse_stripped_episodes()
        except BaseException:
            self.close()
            raise
        self.stats = load_json(self.root / STATS_PATH) if (self.root / STATS_PATH).exists() else {}
        self.tasks = read_tasks(self.root)
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

    def _refuse_stripped_episodes(self) -> None:
        """Refuse to append to a dataset whose episode metadata lost our columns.

        LeRobot's editing tools (``delete_episodes``, ``split``, ...) rewrite ``meta/episodes`` with
        only LeRobot's columns. Appending then would not see the episodes' keys (so re-collect the
        seeds already there) and would write files with columns the others lack, which LeRobot's
        own loader then refuses (``CastError``)."""
        import pyarrow.parquet as pq

        if not len(self):
            return
        files = sorted((self.root / "meta" / "episodes").rglob("*.parquet"))
        stripped = [p for p in files if EXT + "calibration" not in pq.read_schema(p).names]
        if stripped:
            names = [p.relative_to(self.root).as_posix() for p in stripped[:3]]
            raise DataError(
                f"{self.root}: {len(stripped)} meta/episodes file(s) lack actionimages' columns ({names}): "
                "LeRobot's editing tools (delete_episodes, ...) drop them, or another program wrote this "
                "dataset. Appending would duplicate episodes and write files LeRobot can no longer load "
                f"beside them; run `actionimages dataset restore-calibration {self.root}` first"
            )

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
        journal = load_json(journal_path)
        if not isinstance(journal, dict) or not isinstance(journal.get("episode_index"), int):
            raise DataError(f"{journal_path}: malformed writer journal (no episode_index)")
        if journal["episode_index"] >= len(self):
            self._undo(journal, journal_path)
        journal_path.unlink()

    def _undo(self, journal: Mapping[str, Any], journal_path: Path) -> None:
        """Delete the files of the uncommitted episode ``journal`` names; restore stats and tasks."""
        files = journal.get("files")
        if not isinstance(files, list) or not all(is_episode_file(f) for f in files):
            raise DataError(f"{journal_path}: malformed writer journal (files must be episode file paths)")
        for rel in files:
            (self.root / rel).unlink(missing_ok=True)
            self.checksums.pop(rel, None)
        stats, tasks = journal.get("stats"), journal.get("tasks")
        if stats:
            write_json_atomic(self.root / STATS_PATH, stats, **JSON_STYLE)
        else:
            (self.root / STATS_PATH).unlink(missing_ok=True)
        if isinstance(tasks, list) and tasks != read_tasks(self.root):
            if tasks:
                write_parquet_atomic(self.root / TASKS_PATH, tasks_table(tasks))
            else:
                (self.root / TASKS_PATH).unlink(missing_ok=True)
        for rel in (STATS_PATH, TASKS_PATH):
            if rel in self.checksums and (self.root / rel).exists():
                self.checksums[rel] = sha256_file(self.root / rel)
            else:
                self.checksums.pop(rel, None)
        if (self.root / CHECKSUMS_PATH).exists():
            write_checksums(self.root, self.checksums)

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

        Order: the journal (what the next writer deletes if this episode never commits), the videos,
        the frame data, the episode's metadata row, then the dataset's tasks, statistics and
        checksums, and ``meta/info.json`` last: the commit point.
        """
        e = int(self.info["total_episodes"])
        features = self._admit(episode, key, e)
        idx, rels = self._free_slot(e, [video_key(cam) for cam in episode.camera_names])
        if episode.instruction in self.tasks:
            task_index, new_tasks = self.tasks.index(episode.instruction), self.tasks
        else:
            task_index, new_tasks = len(self.tasks), [*self.tasks, episode.instruction]
        journal = {
            "episode_index": e,
            "files": sorted(rels.values()),
            "stats": self.stats,
            "tasks": self.tasks,
        }
        write_json_atomic(self.root / JOURNAL_PATH, journal, **JSON_STYLE)
        ep_stats, video_cols = self._write_videos(episode, features, idx, rels)
        ep_stats.update(self._write_frames(episode, features, e, task_index, rels["data"]))
        self._write_row(episode, key, e, idx, video_cols, ep_stats, rels["meta"])
        self._commit(e, episode.num_frames, features, new_tasks, ep_stats, rels)
        if key is not None:
            self.keys[key] = e
        return e

    def _admit(self, episode: Episode, key: str | None, e: int) -> dict[str, Any]:
        """Check that ``episode`` (with ``key``) may become episode ``e``; returns the features to write."""
        if self._closed:
            raise DataError(f"{self.root}: writer is closed")
        if not isinstance(episode, Episode):
            raise DataError(f"{self.root}: add_episode needs an Episode, got {type(episode).__name__}")
        where = f"{self.root} episode {e}"
        if key is not None:
            if not isinstance(key, str) or not key:
                raise DataError(f"{where}: an episode key must be a non-empty string, got {key!r}")
            if key in self.keys:
                raise DataError(f"{where}: key {key!r} is already episode {self.keys[key]} of this dataset")
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
            return self._features_for(episode)
        self._check_compatible(episode, where)
        return self.info["features"]

    def _write_videos(
        self, episode: Episode, features: dict[str, Any], idx: Mapping[str, int], rels: Mapping[str, str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One video per camera; returns (their image statistics, the row's video columns)."""
        T = episode.num_frames
        ep_stats: dict[str, Any] = {}
        video_cols: dict[str, Any] = {}
        for cam in episode.camera_names:
            key = video_key(cam)
            frames = np.asarray(episode.frames[cam][np.arange(T)])
            path = self.root / rels[key]
            with atomic_path(path) as tmp:
                encode_video(tmp, frames, self.fps, **self.video_opts)
            sel = np.linspace(0, T - 1, min(T, STATS_FRAMES)).round().astype(int)
            ep_stats[key] = image_stats(frames[sel])
            video_cols[f"videos/{key}/chunk_index"] = idx["chunk_index"]
            video_cols[f"videos/{key}/file_index"] = idx["file_index"]
            video_cols[f"videos/{key}/from_timestamp"] = 0.0
            video_cols[f"videos/{key}/to_timestamp"] = T / self.fps
            if features[key].get("info") is None:
                features[key]["info"] = probe_video(path)
                features[key]["info"].pop("video.frames", None)
        return ep_stats, video_cols

    def _write_frames(
        self, episode: Episode, features: Mapping[str, Any], e: int, task_index: int, rel: str
    ) -> dict[str, Any]:
        """The frame data (actions, state, their rot6d twins, indices); returns their statistics."""
        T = episode.num_frames
        # Euler angles unwrapped along the episode (lerobot.euler); the same rotations as given
        poses = {"action": episode.actions, "observation.state": episode.state}
        unwrapped = {}
        for pose in euler_columns({"features": features}):
            unwrapped[pose] = np.array(poses[pose], dtype=np.float64, copy=True)
            unwrapped[pose][:, EULER] = unwrap_euler(poses[pose][:, EULER])
        actions = unwrapped.get("action", episode.actions).astype(np.float32)
        state = unwrapped.get("observation.state", episode.state).astype(np.float32)
        frame_index = np.arange(T, dtype=np.int64)
        start = int(self.info["total_frames"])
        # only where the dataset declares them: one written before they existed keeps its columns
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
        write_parquet_atomic(self.root / rel, data)
        ep_stats = {"action": moments(actions), "observation.state": moments(state)}
        ep_stats.update({k: moments(v) for k, v in rot6d.items()})
        for key, values in (("timestamp", data["timestamp"]), ("frame_index", frame_index)):
            ep_stats[key] = moments(np.asarray(values, dtype=np.float64)[:, None])
        return ep_stats

    def _write_row(
        self,
        episode: Episode,
        key: str | None,
        e: int,
        idx: Mapping[str, int],
        video_cols: Mapping[str, Any],
        ep_stats: Mapping[str, Any],
        rel: str,
    ) -> None:
        """The episode's ``meta/episodes`` row: where its files are, its statistics, our columns."""
        T, start = episode.num_frames, int(self.info["total_frames"])
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
        row[EXT + "info"] = json.dumps(episode.info, default=json_default)
        row[KEY_COLUMN] = key or ""
        write_parquet_atomic(self.root / rel, pa.Table.from_pylist([row]))

    def _commit(
        self,
        e: int,
        T: int,
        features: dict[str, Any],
        new_tasks: list[str],
        ep_stats: Mapping[str, Any],
        rels: Mapping[str, str],
    ) -> None:
        """Dataset-level metadata, ``meta/info.json`` last (the commit point); then drop the journal."""
        if new_tasks is not self.tasks:
            write_parquet_atomic(self.root / TASKS_PATH, tasks_table(new_tasks))
        stats = {k: merge_stats(self.stats.get(k), v) for k, v in ep_stats.items()}
        write_json_atomic(self.root / STATS_PATH, jsonable(stats), **JSON_STYLE)
        checksums = dict(self.checksums)
        for rel in [*rels.values(), STATS_PATH, *([TASKS_PATH] if new_tasks is not self.tasks else [])]:
            checksums[rel] = sha256_file(self.root / rel)
        write_checksums(self.root, checksums)
        start = int(self.info["total_frames"])
        info = dict(self.info)
        info["features"] = features
        info["total_episodes"] = e + 1
        info["total_frames"] = start + T
        info["total_tasks"] = len(new_tasks)
        info["splits"] = {"train": f"0:{e + 1}"}
        if e == 0:  # a dataset an older writer created empty: its episodes are all this writer's
            info = mark_unwrapped(info)
        write_json_atomic(self.root / INFO_PATH, info, **JSON_STYLE)
        (self.root / JOURNAL_PATH).unlink()  # committed; a journal that outlives a crash here is ignored
        self.info, self.tasks, self.stats, self.checksums = info, new_tasks, jsonable(stats), checksums
