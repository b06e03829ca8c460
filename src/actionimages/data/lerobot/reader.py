"""The random-access reader (registered as the ``lerobot`` dataset source)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actionimages.codec.camera import Camera
from actionimages.data.episode import Episode, calibration_from_json
from actionimages.data.lerobot.euler import is_unwrapped
from actionimages.data.lerobot.layout import (
    CHUNKS_SIZE,
    EPISODES_PATH,
    EXT,
    INFO_PATH,
    ROT6D_FEATURES,
    VIDEO_PREFIX,
    chunk_file,
    load_info,
    read_tasks,
    row_files,
    video_key,
)
from actionimages.data.registry import register_source
from actionimages.data.video import (
    VideoFile,
    decode_frames,
)
from actionimages.errors import DataError


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
            what = (
                "is a file, not a dataset directory"
                if self.root.exists()
                else "dataset directory does not exist"
            )
            raise DataError(f"{self.root}: {what}")
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
            self.info = load_info(self.root)
            self.tasks = read_tasks(self.root)
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

    @property
    def euler_unwrapped(self) -> bool:
        """Whether ``info.json`` says the Euler angles of ``action`` / ``observation.state`` are unwrapped
        along each episode (no 2*pi jumps; :mod:`actionimages.data.lerobot.euler`). False for a
        dataset written before that convention or by another tool (its angles may wrap)."""
        self._refresh()
        return is_unwrapped(self.info)

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
