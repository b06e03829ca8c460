"""The dataset layout: path templates, feature names, our extra columns, and reading what they
name (``meta/info.json``, ``meta/tasks.parquet``, the ``meta/episodes`` rows)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actionimages.atomic import atomic_path
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
UNWRAP_JOURNAL_PATH = "meta/actionimages_unwrap.json"  # the files `dataset unwrap-euler` is replacing
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


def write_parquet_atomic(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def tasks_table(tasks: Sequence[str]) -> pa.Table:
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


def read_tasks(root: Path) -> list[str]:
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


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"episode info value {obj!r} is not JSON-serialisable")


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable JSON: {exc}") from exc


def load_info(root: Path) -> dict[str, Any]:
    path = root / INFO_PATH
    if not path.exists():
        raise DataError(f"{root}: not a LeRobot dataset ({INFO_PATH} missing)")
    info = load_json(path)
    missing = [
        k for k in ("codebase_version", "fps", "features", "total_episodes", "data_path") if k not in info
    ]
    if missing:
        raise DataError(f"{path}: missing keys {missing}")
    if not str(info["codebase_version"]).startswith("v3."):
        raise DataError(
            f"{path}: codebase_version {info['codebase_version']!r} is not v3.x; LeRobot's own converter "
            "makes a v2.1 dataset v3.0: in an environment with LeRobot >= 0.4 (it pins its own torch), "
            f"python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=local/NAME --root={root} "
            '(docs/DATA.md, "LeRobot v2.1 datasets")'
        )
    return info


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
