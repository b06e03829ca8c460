"""Dataset health checks (``actionimages dataset check``) and summaries (``dataset info``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from actionimages.atomic import TMP_PREFIX
from actionimages.data.episode import calibration_from_json
from actionimages.data.lerobot import EXT, DatasetReader, chunk_file, video_key
from actionimages.data.video import _AV_ERRORS, _open, count_frames, decode_frames
from actionimages.errors import DataError


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
    """Result of :func:`check_dataset`."""

    root: str
    episodes: list[EpisodeReport]
    dataset_problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.dataset_problems and all(e.ok for e in self.episodes)

    @property
    def bad_episodes(self) -> list[int]:
        return [e.index for e in self.episodes if not e.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "ok": self.ok,
            "dataset_problems": self.dataset_problems,
            "episodes": {e.index: e.problems for e in self.episodes if e.problems},
            "checked_episodes": len(self.episodes),
        }


def _video_frames_header(path: Path) -> tuple[int, int, int]:
    """(frames from the container header, width, height)."""
    with _open(path) as c:
        s = c.streams.video[0]
        return int(s.frames), int(s.codec_context.width), int(s.codec_context.height)


def check_episode(reader: DatasetReader, i: int, full: bool = False) -> EpisodeReport:
    """Check one episode: metadata, calibration, actions, frame counts and videos.

    ``full`` decodes every frame of every video; otherwise the container header is read and the
    first and last frames are decoded (which catches truncation and corruption in practice).
    """
    rep = EpisodeReport(i)
    try:
        row = reader.meta(i)
    except DataError as exc:
        rep.problems.append(str(exc))
        return rep
    T = int(row["length"])
    cams = reader.cameras

    # calibration
    calib = row.get(EXT + "calibration")
    if calib is None:
        rep.problems.append("missing calibration (no actionimages/calibration)")
    else:
        try:
            parsed = calibration_from_json(calib, f"episode {i}")
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
        except DataError as exc:
            rep.problems.append(str(exc))

    # frame data
    try:
        arrays = reader.arrays(i)
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
    except DataError as exc:
        rep.problems.append(str(exc))

    # videos
    for cam in cams:
        try:
            path = reader.video_path(i, cam)
        except DataError as exc:
            rep.problems.append(str(exc))
            continue
        if not path.exists():
            rep.problems.append(f"video missing: {path}")
            continue
        try:
            n, w, h = _video_frames_header(path)
            shape = reader.info["features"][video_key(cam)]["shape"]
            if (h, w) != (int(shape[0]), int(shape[1])):
                rep.problems.append(f"{path}: video is {w}x{h}, features say {shape[1]}x{shape[0]}")
            if full:
                n = count_frames(path, where=f"episode {i} camera {cam!r}")
            elif T > 0:
                decode_frames(path, [0, T - 1], reader.fps, where=f"episode {i} camera {cam!r}")
            if n and n != T:
                rep.problems.append(f"frame-count mismatch: {path} has {n} frames, episode has {T}")
        except DataError as exc:
            rep.problems.append(str(exc))
        except _AV_ERRORS as exc:
            rep.problems.append(f"unreadable video {path}: {exc}")
    return rep


def check_dataset(root: str | Path, full: bool = False, progress: bool = True) -> CheckReport:
    """Check every episode of the dataset at ``root`` (see :func:`check_episode`)."""
    reader = DatasetReader(root)
    problems: list[str] = []
    n = len(reader)
    total = 0
    reports = []
    for i in tqdm(range(n), desc="checking episodes", disable=not progress, leave=False):
        rep = check_episode(reader, i, full=full)
        reports.append(rep)
        try:
            total += int(reader.meta(i)["length"])
        except DataError:
            pass
    if total != int(reader.info.get("total_frames", total)):
        problems.append(
            f"info.json total_frames {reader.info['total_frames']} != sum of episode lengths {total}"
        )
    if n and not reader.cameras:
        problems.append("no video features in info.json")
    # leftovers of an interrupted write: harmless for readers, removed by the next writer
    cs = int(reader.info.get("chunks_size", 1000))
    committed = {tuple(chunk_file(i, cs).values()) for i in range(n)}
    leftovers = []
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and p.name.startswith(TMP_PREFIX):
            leftovers.append(str(p.relative_to(root)))
        elif p.is_file() and p.suffix in (".parquet", ".mp4") and p.parent.name.startswith("chunk-"):
            try:
                key = (int(p.parent.name.split("-")[1]), int(p.stem.split("-")[1]))
            except (IndexError, ValueError):
                continue
            if key not in committed:
                leftovers.append(str(p.relative_to(root)))
    if leftovers:
        problems.append(f"uncommitted leftover files from an interrupted write: {leftovers[:5]}")
    return CheckReport(str(root), reports, problems)


def dataset_info(root: str | Path) -> dict[str, Any]:
    """Summary: episodes, frames, tasks, cameras, image sizes, fps, codec, video-only episodes."""
    reader = DatasetReader(root)
    info = reader.info
    n = len(reader)
    lengths, task_names, video_only = [], set(), 0
    ep_files = sorted(Path(root).glob("meta/episodes/chunk-*/file-*.parquet"))
    for p in ep_files:
        cols = [
            c
            for c in ("episode_index", "length", EXT + "task", EXT + "has_actions")
            if c in pq.read_schema(p).names
        ]
        for row in pq.read_table(p, columns=cols).to_pylist():
            if row["episode_index"] >= n:
                continue  # uncommitted
            lengths.append(int(row["length"]))
            if row.get(EXT + "task"):
                task_names.add(row[EXT + "task"])
            video_only += int(row.get(EXT + "has_actions") is False)
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
        "frames": int(info.get("total_frames", sum(lengths))),
        "fps": reader.fps,
        "duration_s": float(sum(lengths) / reader.fps),
        "episode_length": {"min": min(lengths), "max": max(lengths), "mean": float(np.mean(lengths))}
        if lengths
        else None,
        "instructions": reader.tasks,
        "tasks": sorted(task_names),
        "cameras": cameras,
        "video_only_episodes": video_only,
    }
