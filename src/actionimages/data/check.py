"""Dataset health checks (``actionimages dataset check``) and summaries (``dataset info``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from actionimages.atomic import TMP_PREFIX, sha256_file
from actionimages.codec.poses import euler_to_matrix, rot6d_to_matrix, rotation_angle_between
from actionimages.data.episode import calibration_from_json
from actionimages.data.lerobot import (
    CHECKSUMS_PATH,
    EPISODE_DIRS,
    EXT,
    JOURNAL_PATH,
    ROT6D_FEATURES,
    UNWRAP_JOURNAL_PATH,
    DatasetReader,
    episode_dir_files,
    read_checksums,
    video_key,
)
from actionimages.data.lerobot.euler import EULER, UNWRAP_COMMAND, EulerJump, euler_columns, euler_jumps
from actionimages.data.video import count_frames, decode_frames, probe_video
from actionimages.errors import ActionImagesError, DataError

ROT6D_TOL_DEG = 0.01  # float32 storage agrees to ~1e-5 degrees; more means one column was edited


@dataclass
class EpisodeReport:
    """Problems found in one episode (empty ``problems`` = healthy)."""

    index: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`; ``notes`` say what could not be checked (not problems)."""

    root: str
    episodes: list[EpisodeReport]
    dataset_problems: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.dataset_problems and all(e.ok for e in self.episodes)

    @property
    def bad_episodes(self) -> list[int]:
        return [e.index for e in self.episodes if not e.ok]

    def problems(self) -> list[str]:
        """Every problem as one line (dataset problems first)."""
        per_episode = [
            p if f"episode {e.index}" in p else f"episode {e.index}: {p}"
            for e in self.episodes
            for p in e.problems
        ]
        return [*self.dataset_problems, *per_episode]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "ok": self.ok,
            "dataset_problems": self.dataset_problems,
            "episodes": {e.index: e.problems for e in self.episodes if e.problems},
            "checked_episodes": len(self.episodes),
            "notes": self.notes,
        }


class _Checker:
    """State shared by the episode checks of one dataset: recorded checksums, hashes computed, and
    how many frames each video file has and how many its episodes use (packed files are shared)."""

    def __init__(self, reader: DatasetReader, full: bool, videos: bool = True) -> None:
        self.reader, self.full, self.videos = reader, full, videos
        # Recorded SHA-256s are verified by every check (a flipped byte in an mp4 or a parquet file
        # is caught without decoding); --full also decodes every frame. dataset info skips both.
        self.checksums = read_checksums(reader.root) if (full or videos) else None
        self.hashes: dict[str, str] = {}
        self.video_frames: dict[Path, tuple[int, int]] = {}  # path -> (frames in file, frames used)
        self.unhashed: list[int] = []  # episodes with a file no checksum covers
        self.singular: dict[int, int] = {}  # episode -> frames with an Euler jump unwrapping cannot remove

    def sha256(self, rel: str) -> str:
        if rel not in self.hashes:
            self.hashes[rel] = sha256_file(self.reader.root / rel)
        return self.hashes[rel]

    def episode(self, i: int) -> EpisodeReport:
        rep = EpisodeReport(i)
        try:
            row = self.reader.meta(i)
        except DataError as exc:
            rep.problems.append(str(exc))
            return rep
        T = int(row["length"])
        self._calibration(row, i, T, rep)
        self._frame_data(i, T, rep)
        if self.videos:
            for cam in self.reader.cameras:
                try:
                    self._video(i, cam, T, rep)
                except DataError as exc:
                    rep.problems.append(str(exc))
        if self.checksums is not None:
            self._checksums(i, rep)
        return rep

    def _calibration(self, row: dict[str, Any], i: int, T: int, rep: EpisodeReport) -> None:
        cams = self.reader.cameras
        calib = row.get(EXT + "calibration")
        if calib is None:
            rep.problems.append(NO_CALIBRATION)
            return
        try:
            parsed = calibration_from_json(calib, f"episode {i}")
        except DataError as exc:
            rep.problems.append(str(exc))
            return
        for cam in cams:
            if cam not in parsed:
                rep.problems.append(f"missing calibration for camera {cam!r}")
                continue
            spec = parsed[cam]
            if isinstance(spec, list) and len(spec) != T:
                rep.problems.append(f"camera {cam!r}: {len(spec)} per-frame calibrations for {T} frames")
        extra = sorted(set(parsed) - set(cams))
        if extra:
            rep.problems.append(f"calibration for cameras without video: {extra}")

    def _frame_data(self, i: int, T: int, rep: EpisodeReport) -> None:
        try:
            arrays = self.reader.arrays(i)
        except DataError as exc:
            rep.problems.append(str(exc))
            return
        acts = arrays["action"]
        if acts.ndim != 2 or acts.shape[1] != 7:
            rep.problems.append(f"actions have shape {acts.shape}, expected (T, 7)")
        bad = ~np.isfinite(acts)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            rep.problems.append(f"NaN/inf actions in {len(rows)} frames (first at frame {int(rows[0])})")
        if not np.all(np.isfinite(arrays["observation.state"])):
            rep.problems.append("NaN/inf in observation.state")
        if len(acts) != T:
            rep.problems.append(f"frame-count mismatch: metadata length {T}, frame data has {len(acts)} rows")
        for key, pose in ROT6D_FEATURES.items():
            if key in arrays and len(arrays[key]) == len(arrays[pose]):
                problem = _rot6d_problem(key, arrays[key], arrays[pose], pose)
                if problem:
                    rep.problems.append(problem)
        for pose in euler_columns(self.reader.info):
            values = arrays[pose]
            if values.ndim == 2 and values.shape[1] == 7:
                jumps = euler_jumps(values[:, EULER])
                wraps = [j for j in jumps if j.wrap]
                if wraps:
                    rep.problems.append(self._wrap_problem(i, pose, wraps))
                if len(jumps) > len(wraps):
                    self.singular[i] = self.singular.get(i, 0) + len(jumps) - len(wraps)

    def _wrap_problem(self, i: int, pose: str, wraps: list[EulerJump]) -> str:
        j = wraps[0]
        more = f" (and {len(wraps) - 1} more frame(s))" if len(wraps) > 1 else ""
        claimed = ", although meta/info.json records them unwrapped" if self.reader.euler_unwrapped else ""
        return (
            f"episode {i} frame {j.frame}: {pose} Euler angle {j.component} jumps from {j.before:+.5f} to "
            f"{j.after:+.5f} rad while the rotation turns {j.turn_deg:.2g} deg: a 2*pi wrap{more}{claimed}; "
            f"it ruins mean/std normalisation of {pose}. Fix: {UNWRAP_COMMAND} {self.reader.root}"
        )

    def _video(self, i: int, cam: str, T: int, rep: EpisodeReport) -> None:
        reader, label = self.reader, f"episode {i} camera {cam!r}"
        path = reader.video_path(i, cam)
        first, end = reader.video_span(i, cam)
        if end - first != T:
            rep.problems.append(
                f"frame-count mismatch: {video_key(cam)} from/to timestamps span {end - first} frames, "
                f"episode has {T}"
            )
        if not path.exists():
            rep.problems.append(f"video missing: {path}")
            return
        head = probe_video(path, label)
        shape = reader.info["features"][video_key(cam)]["shape"]
        if (head["video.height"], head["video.width"]) != (int(shape[0]), int(shape[1])):
            rep.problems.append(
                f"{path}: video is {head['video.width']}x{head['video.height']}, "
                f"features say {shape[1]}x{shape[0]}"
            )
        n = head["video.frames"]  # 0 where the header does not say
        if self.full:
            n = count_frames(path, where=label)
            if n == 0:
                rep.problems.append(f"{label}: {path}: truncated or corrupt video (no decodable frames)")
                return
        elif T > 0:
            decode_frames(path, [first, first + T - 1], reader.fps, where=label)
        if n and n < first + T:
            what = f"frames {first}..{first + T - 1}" if first else f"{T} frames"
            rep.problems.append(f"frame-count mismatch: {path} has {n} frames, episode needs {what}")
        if n:
            have, used = self.video_frames.get(path, (n, 0))
            self.video_frames[path] = (have, max(used, first + T))

    def _checksums(self, i: int, rep: EpisodeReport) -> None:
        assert self.checksums is not None
        try:
            files = self.reader.episode_files(i)
        except DataError:
            return  # reported by the structural checks
        covered = True
        for rel in files:
            want = self.checksums.get(rel)
            if want is None:
                covered = False
            elif (self.reader.root / rel).exists() and self.sha256(rel) != want:
                rep.problems.append(_changed(rel, self.hashes[rel], want))
        if not covered:
            self.unhashed.append(i)


def _changed(rel: str, got: str, want: str) -> str:
    return (
        f"checksum mismatch: {rel} changed since it was written "
        f"(SHA-256 {got[:12]}..., {CHECKSUMS_PATH} records {want[:12]}...)"
    )


def check_episode(reader: DatasetReader, i: int, full: bool = False) -> EpisodeReport:
    """Check one episode: metadata, calibration, actions, frame counts and videos.

    The SHA-256 of the episode's files is verified against ``meta/actionimages_checksums.json`` (a
    flipped byte anywhere is caught). ``full`` also decodes every frame of every video; otherwise
    the container header is read and the episode's first and last frames are decoded.
    Episodes that LeRobot packed into one file are checked over their own span of it.
    """
    return _Checker(reader, full).episode(i)


def _episode_ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    out, start = [], None
    for k, i in enumerate(indices):
        if start is None:
            start = i
        if k + 1 == len(indices) or indices[k + 1] != i + 1:
            out.append(str(i) if i == start else f"{start}-{i}")
            start = None
    return ", ".join(out)


NO_CALIBRATION = "missing calibration (no actionimages/calibration)"


def check_dataset(
    root: str | Path, full: bool = False, progress: bool = True, videos: bool = True
) -> CheckReport:
    """Check every episode of the dataset at ``root`` (see :func:`check_episode`) and the dataset as a whole.

    ``videos=False`` skips the videos (metadata, calibration and frame data only; what
    ``dataset info`` runs). Files under ``data/``, ``meta/episodes/`` and ``videos/`` that no
    committed episode uses are problems (LeRobot reads every parquet file there); so are leftovers
    of an interrupted write, which the next :class:`DatasetWriter` removes.
    """
    root = Path(root)
    reader = DatasetReader(root)
    checker = _Checker(reader, full, videos)
    problems: list[str] = []
    n = len(reader)
    total = 0
    reports = []
    used: set[str] = set()
    for i in tqdm(range(n), desc="checking episodes", disable=not progress, leave=False):
        rep = checker.episode(i)
        reports.append(rep)
        try:
            total += int(reader.meta(i)["length"])
            used.update(reader.episode_files(i))
        except DataError:
            pass
    if total != int(reader.info.get("total_frames", total)):
        problems.append(
            f"info.json total_frames {reader.info['total_frames']} != sum of episode lengths {total}"
        )
    if n and not reader.cameras:
        problems.append("no video features in info.json")
    for path, (have, want) in sorted(checker.video_frames.items()):
        if have > want:
            problems.append(f"frame-count mismatch: {path} has {have} frames, its episodes use {want}")
    problems += _stray_files(root, n, used)
    if (root / UNWRAP_JOURNAL_PATH).exists():
        problems.append(
            f"{UNWRAP_JOURNAL_PATH}: an interrupted `{UNWRAP_COMMAND}` (some files rewritten, their "
            f"checksums perhaps not yet); run `{UNWRAP_COMMAND} {root}` again to finish it"
        )
    if checker.checksums is not None:
        problems += _dataset_checksums(checker)
    notes = _notes(checker, full, n)
    if checker.singular:
        notes.append(
            f"{sum(checker.singular.values())} frame(s) of episode(s) "
            f"{_episode_ranges(sorted(checker.singular))} have an Euler angle jump near the Euler "
            "singularity (ry near +-90 deg) that is not a whole "
            "turn, so unwrapping cannot remove it; normalise the .rot6d columns for those"
        )
    if n and all(NO_CALIBRATION in rep.problems for rep in reports):
        notes.append(
            f"none of the {n} episodes has actionimages' columns: a LeRobot recording of your own robot "
            "is imported with `actionimages dataset convert SRC OUT --calibration FILE ...` (docs/DEPLOY.md, "
            "\"Import your robot's LeRobot data\"); a dataset actionimages wrote and LeRobot's tools then "
            "edited gets its columns back with `actionimages dataset restore-calibration`"
        )
    return CheckReport(str(root), reports, problems, notes)


def _stray_files(root: Path, n: int, used: set[str]) -> list[str]:
    """Leftovers of an interrupted write, and files no committed episode uses."""
    pending: set[str] = set()
    journal = root / JOURNAL_PATH
    if journal.exists():
        try:
            doc = json.loads(journal.read_text())
            if int(doc["episode_index"]) >= n:
                pending = {str(f) for f in doc["files"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return [f"{journal}: malformed writer journal: {exc}"]
    leftovers = sorted(
        {p.relative_to(root).as_posix() for p in root.rglob(TMP_PREFIX + "*") if p.is_file()}
        | (pending - used) & set(episode_dir_files(root))
    )
    stray = [
        f
        for f in episode_dir_files(root)
        if f not in used and f not in pending and not Path(f).name.startswith(TMP_PREFIX)
    ]
    out = []
    if leftovers:
        out.append(
            f"uncommitted leftover files from an interrupted write (the next DatasetWriter removes them): "
            f"{leftovers[:5]}"
        )
    if stray:
        out.append(
            f"{len(stray)} file(s) under {'/, '.join(EPISODE_DIRS)}/ that no committed episode uses "
            f"(not removed by the writer; LeRobot would read stray parquet files): {stray[:5]}"
        )
    return out


def _dataset_checksums(checker: _Checker) -> list[str]:
    """Verify the recorded checksums no episode check compared: ``stats.json``, ``tasks.parquet``, and
    the files of episodes whose metadata could not be read."""
    out = []
    for rel, want in sorted((checker.checksums or {}).items()):
        if rel in checker.hashes:
            continue  # compared with its episode
        if not (checker.reader.root / rel).exists():
            if not rel.startswith(tuple(d + "/" for d in EPISODE_DIRS)):  # episodes' files: checked with them
                out.append(f"{rel}: missing (its checksum is recorded in {CHECKSUMS_PATH})")
        elif checker.sha256(rel) != want:
            out.append(_changed(rel, checker.hashes[rel], want))
    return out


def _notes(checker: _Checker, full: bool, n: int) -> list[str]:
    if not full or not n:
        return []
    if checker.checksums is None:
        return [
            f"no checksums recorded ({CHECKSUMS_PATH} absent: not written by actionimages' DatasetWriter, "
            "or written before it recorded them); files were checked structurally only"
        ]
    if checker.unhashed:
        return [
            f"{len(checker.unhashed)} episode(s) have files without a recorded checksum (not written by "
            f"actionimages' DatasetWriter); checked structurally only: {_episode_ranges(checker.unhashed)}"
        ]
    return []


def _rot6d_problem(key: str, rot6d: np.ndarray, pose: np.ndarray, pose_key: str) -> str | None:
    """Whether the 6-D rotations (T, 6) describe the same rotations as the Euler angles ``pose[:, 3:6]``."""
    try:
        angle = np.degrees(rotation_angle_between(rot6d_to_matrix(rot6d), euler_to_matrix(pose[:, 3:6])))
    except ActionImagesError as exc:  # NaN or degenerate (NaN Euler angles are reported above)
        return None if not np.all(np.isfinite(pose)) else f"{key}: {exc}"
    t = int(np.argmax(angle)) if len(angle) else 0
    if len(angle) and angle[t] > ROT6D_TOL_DEG:
        return (
            f"{key} disagrees with {pose_key}'s Euler angles by {angle[t]:.3g} deg (frame {t}): "
            "one was edited without the other"
        )
    return None


def dataset_info(root: str | Path) -> dict[str, Any]:
    """Summary: episodes, frames, tasks, cameras, image sizes, fps, codec, video-only episodes.

    The numbers come from the episode rows that can be read; ``check`` is the result of a quick
    :func:`check_dataset` (metadata and frame data, no video decoding): ``{"ok": bool, "problems":
    [first problems]}``, so a summary of a broken dataset says that it is broken.
    """
    reader = DatasetReader(root)
    info = reader.info
    n = len(reader)
    lengths, task_names, video_only = [], set(), 0
    for i in range(n):
        try:
            row = reader.meta(i)
        except DataError:
            continue  # reported by the check below
        lengths.append(int(row["length"]))
        if row.get(EXT + "task"):
            task_names.add(row[EXT + "task"])
        video_only += int(row.get(EXT + "has_actions") is False)
    report = check_dataset(root, progress=False, videos=False)
    frames = int(info.get("total_frames", sum(lengths)))  # the committed total (the check compares it)
    feats = info["features"]
    cameras = {
        cam: {
            "height": feats[video_key(cam)]["shape"][0],
            "width": feats[video_key(cam)]["shape"][1],
            "codec": (feats[video_key(cam)].get("info") or {}).get("video.codec"),
            "pix_fmt": (feats[video_key(cam)].get("info") or {}).get("video.pix_fmt"),
        }
        for cam in reader.cameras
    }
    return {
        "root": str(root),
        "codebase_version": info["codebase_version"],
        "robot_type": info.get("robot_type"),
        "episodes": n,
        "frames": frames,
        "fps": reader.fps,
        "duration_s": float(frames / reader.fps),
        "episode_length": {"min": min(lengths), "max": max(lengths), "mean": float(np.mean(lengths))}
        if lengths
        else None,
        "instructions": reader.tasks,
        "tasks": sorted(task_names),
        "cameras": cameras,
        "video_only_episodes": video_only,
        "check": {"ok": report.ok, "problems": report.problems()[:10], "count": len(report.problems())},
    }
