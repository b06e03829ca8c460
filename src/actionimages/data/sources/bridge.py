"""BridgeV2 as video-only data (``has_actions=False``) with estimated cameras.

::

    ROOT/<...>/<traj>/
        images0/im_0.jpg, im_1.jpg, ...   (Bridge's raw layout; images1..3 for extra views)
          or images0.mp4                  (the same stream as a video)
        lang.txt                          first line: the instruction (optional)
        cameras.json                      optional estimated calibration
                                          {"images0": {"K": 3×3, "cam_to_world": 4×4}, ...}

Bridge's WidowX actions are not usable as absolute world-frame poses here (no camera-to-robot
calibration), so episodes carry zero actions and ``has_actions=False``; the model trains them
in video-only mode. Without ``cameras.json`` each view gets :func:`estimated_bridge_camera`, a
generic over-the-shoulder camera (60° vertical field of view), marked ``info["calibration"] =
"estimated"``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from actionimages.codec.camera import Camera
from actionimages.data.episode import Episode
from actionimages.data.registry import register_source
from actionimages.data.sources.base import EpisodeDirReader, read_instruction, read_json
from actionimages.data.video import open_video
from actionimages.errors import ActionImagesError, DataError

BRIDGE_FPS = 5.0
_IM = re.compile(r"^im_(\d+)\.(jpg|jpeg|png)$")


def estimated_bridge_camera(width: int, height: int) -> Camera:
    """A generic Bridge camera: 0.6 m behind and 0.5 m above the robot base, looking at the table."""
    return Camera.look_at(
        np.array([-0.35, 0.0, 0.45]), np.array([0.3, 0.0, 0.0]), fov_y_deg=60.0, width=width, height=height
    )


class ImageFolder:
    """Lazy frames from ``im_<t>.jpg`` files: ``folder[indices]`` -> uint8 (N, H, W, 3)."""

    def __init__(self, files: list[Path], where: str) -> None:
        import imageio.v3 as iio

        self.files, self.where = files, where
        try:
            first = iio.imread(files[0])
        except Exception as exc:  # imageio raises many types for a bad image
            raise DataError(f"{where}: unreadable image {files[0]}: {exc}") from exc
        if first.ndim != 3 or first.shape[2] < 3:
            raise DataError(f"{where}: {files[0]} is not an RGB image (shape {first.shape})")
        self.shape = (len(files), first.shape[0], first.shape[1], 3)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        import imageio.v3 as iio

        single = isinstance(key, (int, np.integer))
        idx = np.arange(self.shape[0])[key]
        out = []
        for i in np.atleast_1d(idx):
            try:
                img = iio.imread(self.files[int(i)])[..., :3]
            except Exception as exc:
                raise DataError(f"{self.where}: unreadable image {self.files[int(i)]}: {exc}") from exc
            if img.shape != self.shape[1:]:
                raise DataError(
                    f"{self.where}: {self.files[int(i)]} has shape {img.shape}, expected {self.shape[1:]}"
                )
            out.append(img.astype(np.uint8))
        arr = np.stack(out)
        return arr[0] if single else arr

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)


@register_source
class BridgeReader(EpisodeDirReader):
    """Bridge trajectories (``images0`` folders or ``images0.mp4``) as video-only episodes."""

    marker = "images0"
    kind = "bridge"
    markers = ("images0", "images0.mp4")  # a folder of frames or one video

    def __init__(self, root: str | Path, fps: float = BRIDGE_FPS) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: bridge dataset directory does not exist")
        dirs = {p.parent for p in self.root.rglob("images0") if p.is_dir()}
        dirs |= {p.parent for p in self.root.rglob("images0.mp4")}
        self.episode_dirs = sorted(dirs)
        if not self.episode_dirs:
            raise DataError(f"{self.root}: no bridge trajectories (no images0/ or images0.mp4)")
        self.fps = float(fps)

    def load(self, d: Path, where: str) -> Episode:
        frames: dict[str, Any] = {}
        for k in range(4):
            name = f"images{k}"
            folder, video = d / name, d / f"{name}.mp4"
            if video.exists():
                frames[name] = open_video(video, where=f"{where} {name}")
            elif folder.is_dir():
                files = sorted(
                    (p for p in folder.iterdir() if _IM.match(p.name)),
                    key=lambda p: int(_IM.match(p.name)[1]),
                )
                if not files:
                    raise DataError(f"{where}: {folder} holds no im_<t>.jpg frames")
                frames[name] = ImageFolder(files, f"{where} {name}")
        if not frames:
            raise DataError(f"{where}: no images0..3 streams")
        lengths = {n: len(f) for n, f in frames.items()}
        T = min(lengths.values())
        if len(set(lengths.values())) > 1:
            raise DataError(f"{where}: frame-count mismatch between views: {lengths}")
        calib_path = d / "cameras.json"
        estimated = not calib_path.exists()
        calib = {} if estimated else read_json(calib_path, where)
        cameras: dict[str, Camera] = {}
        for name, f in frames.items():
            _, H, W, _ = f.shape
            if estimated:
                cameras[name] = estimated_bridge_camera(W, H)
                continue
            if name not in calib:
                raise DataError(f"{where}: missing calibration for {name} in {calib_path}")
            try:
                cameras[name] = Camera(
                    np.asarray(calib[name]["K"]), np.asarray(calib[name]["cam_to_world"]), W, H
                )
            except (ActionImagesError, KeyError, TypeError) as exc:
                raise DataError(f"{where}: bad calibration for {name} in {calib_path}: {exc}") from exc
        return Episode(
            frames=frames,
            cameras=cameras,
            actions=np.zeros((T, 7)),
            state=np.zeros((T, 7)),
            instruction=read_instruction(d, ""),
            task="bridge",
            fps=self.fps,
            info={"source": where, "dataset": "bridge", "calibration": "estimated" if estimated else "given"},
            has_actions=False,
        )
