"""LeRobot v3.0 datasets on disk: an atomic per-episode writer and a random-access reader.

Modules: ``layout`` (paths, features, our columns, reading metadata), ``files`` (checksums, episode
files, keys, the writer lock), ``stats`` (meta/stats.json), ``euler`` (the pose columns' Euler
angles), ``writer`` (:class:`DatasetWriter`), ``reader`` (:class:`DatasetReader`, the ``lerobot``
dataset source).

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
``has_actions``, info, key), which LeRobot carries through unread, and in ``meta/info.json``'s
``actionimages`` field: ``{"euler_angles": "unwrapped"}`` says the Euler angles of ``action`` and
``observation.state`` are unwrapped along each episode (no 2*pi jumps; ``euler``; ``actionimages
dataset unwrap-euler`` migrates a dataset written before).
"""

from actionimages.data.lerobot.files import (
    dataset_keys,
    episode_dir_files,
    is_episode_file,
    lock_dataset,
    read_checksums,
    write_checksums,
)
from actionimages.data.lerobot.layout import (
    CHECKSUMS_PATH,
    EPISODE_DIRS,
    EXT,
    INFO_PATH,
    JOURNAL_PATH,
    JSON_STYLE,
    KEY_COLUMN,
    ROT6D_FEATURES,
    ROT6D_NAMES,
    STATS_PATH,
    TASKS_PATH,
    UNWRAP_JOURNAL_PATH,
    VIDEO_PREFIX,
    episode_rows,
    load_info,
    read_tasks,
    row_columns,
    row_files,
    video_key,
    write_parquet_atomic,
)
from actionimages.data.lerobot.reader import DatasetReader
from actionimages.data.lerobot.writer import DatasetWriter

__all__ = [
    "CHECKSUMS_PATH",
    "EPISODE_DIRS",
    "EXT",
    "INFO_PATH",
    "JOURNAL_PATH",
    "JSON_STYLE",
    "KEY_COLUMN",
    "ROT6D_FEATURES",
    "ROT6D_NAMES",
    "STATS_PATH",
    "TASKS_PATH",
    "UNWRAP_JOURNAL_PATH",
    "VIDEO_PREFIX",
    "DatasetReader",
    "DatasetWriter",
    "dataset_keys",
    "episode_dir_files",
    "episode_rows",
    "is_episode_file",
    "load_info",
    "lock_dataset",
    "read_checksums",
    "read_tasks",
    "row_columns",
    "row_files",
    "video_key",
    "write_checksums",
    "write_parquet_atomic",
]
