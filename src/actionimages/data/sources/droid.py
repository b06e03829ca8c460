"""A small DROID layout built from DROID's published fields (two calibrated external cameras).

::

    ROOT/<episode>/
        trajectory.npz      cartesian_position (T, 6) [x, y, z, roll, pitch, yaw]: end-effector
                              pose in the robot base, SciPy extrinsic "xyz" Euler radians;
                            gripper_position (T,) or (T, 1): 0 = open, 1 = closed;
                            ext1_extrinsics, ext2_extrinsics: (6,) or (T, 6) [x, y, z, rx, ry, rz],
                              the camera-to-base pose (extrinsic "xyz" Euler), OpenCV camera axes
        metadata.json       {"language_instruction": str,
                             "ext1_intrinsics": [fx, fy, cx, cy] or 3×3,
                             "ext2_intrinsics": ..., "fps": 15 (optional), "task": str (optional)}
        ext1.mp4, ext2.mp4  the two external (left) camera streams, one frame per control step

DROID records at 15 Hz; the paper trains with a frame stride of 4, so this reader keeps every
4th step of video and actions (3.75 fps). Openness is ``1 - gripper_position``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actionimages.codec.camera import Camera
from actionimages.codec.poses import euler_to_matrix
from actionimages.data.episode import Episode
from actionimages.data.registry import register_source
from actionimages.data.sources.base import EpisodeDirReader, read_json, refuse_booleans
from actionimages.data.video import open_video
from actionimages.errors import ActionImagesError, DataError

DROID_FPS = 15.0
DROID_STRIDE = 4
DROID_CAMERAS = ("ext1", "ext2")


def pose6_to_matrix(pose: np.ndarray) -> np.ndarray:
    """[x, y, z, rx, ry, rz] (..., 6) -> homogeneous (..., 4, 4)."""
    pose = np.asarray(pose, dtype=np.float64)
    M = np.zeros((*pose.shape[:-1], 4, 4))
    M[..., :3, :3] = euler_to_matrix(pose[..., 3:6])
    M[..., :3, 3] = pose[..., :3]
    M[..., 3, 3] = 1.0
    return M


def intrinsics_matrix(value: object, where: str) -> np.ndarray:
    """[fx, fy, cx, cy] or a 3×3 matrix -> 3×3."""
    refuse_booleans(value, "intrinsics", where)
    try:
        K = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # non-numeric or ragged
        raise DataError(f"{where}: intrinsics must be numbers, got {value!r}: {exc}") from exc
    if K.shape == (4,):
        fx, fy, cx, cy = K
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    if K.shape == (3, 3):
        return K
    raise DataError(f"{where}: intrinsics must be [fx, fy, cx, cy] or 3x3, got shape {K.shape}")


@register_source
class DroidReader(EpisodeDirReader):
    """Episodes of the DROID layout above, subsampled by ``stride``."""

    marker = "trajectory.npz"
    kind = "droid"

    def __init__(self, root: str | Path, stride: int = DROID_STRIDE) -> None:
        super().__init__(root)
        self.stride = int(stride)

    def _arrays(self, d: Path, where: str) -> dict[str, np.ndarray]:
        path = d / "trajectory.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"{where}: unreadable {path}: {exc}") from exc
        for key in ("cartesian_position", "gripper_position"):
            if key not in arrays:
                raise DataError(f"{where}: {path} lacks {key!r}")
        pos = arrays["cartesian_position"]
        if pos.ndim != 2 or pos.shape[1] != 6:
            raise DataError(
                f"{where}: cartesian_position must be (T, 6) [x,y,z,roll,pitch,yaw], got {pos.shape}"
            )
        g = (
            arrays["gripper_position"].reshape(len(pos), -1)
            if arrays["gripper_position"].size == len(pos)
            else None
        )
        if g is None:
            raise DataError(
                f"{where}: gripper_position has {arrays['gripper_position'].shape}, expected ({len(pos)},)"
            )
        arrays["gripper_position"] = g[:, 0]
        return arrays

    def load(self, d: Path, where: str) -> Episode:
        arrays = self._arrays(d, where)
        meta = read_json(d / "metadata.json", where)
        fps = float(meta.get("fps", DROID_FPS))
        T_raw = len(arrays["cartesian_position"])
        keep = np.arange(0, T_raw, self.stride)
        pos = arrays["cartesian_position"][keep]
        openness = 1.0 - np.clip(arrays["gripper_position"][keep], 0.0, 1.0)  # DROID: 1 = closed
        actions = np.concatenate([pos, openness[:, None]], 1)
        frames, cameras = {}, {}
        for cam in DROID_CAMERAS:
            video_path = d / f"{cam}.mp4"
            if not video_path.exists():
                raise DataError(f"{where}: camera count differs from video count: {video_path.name} missing")
            if f"{cam}_extrinsics" not in arrays or f"{cam}_intrinsics" not in meta:
                raise DataError(
                    f"{where}: missing calibration for {cam} ({cam}_extrinsics / {cam}_intrinsics)"
                )
            video = open_video(video_path, where=f"{where} {cam}")
            if len(video) != T_raw:
                raise DataError(
                    f"{where}: frame-count mismatch: {video_path} has {len(video)} frames, "
                    f"trajectory has {T_raw}"
                )
            _, H, W, _ = video.shape
            frames[cam] = type(video)(
                video.path, len(keep), H, W, video.fps, frame_map=keep, where=video.where
            )
            K = intrinsics_matrix(meta[f"{cam}_intrinsics"], f"{where} {cam}")
            ext = np.asarray(arrays[f"{cam}_extrinsics"], dtype=np.float64)
            try:
                if ext.shape == (6,):
                    cameras[cam] = Camera(K, pose6_to_matrix(ext), W, H)
                elif ext.shape == (T_raw, 6):
                    cameras[cam] = [Camera(K, M, W, H) for M in pose6_to_matrix(ext[keep])]
                else:
                    raise DataError(f"{where}: {cam}_extrinsics must be (6,) or (T, 6), got {ext.shape}")
            except ActionImagesError as exc:
                if isinstance(exc, DataError):
                    raise
                raise DataError(f"{where}: bad calibration for {cam}: {exc}") from exc
        return Episode(
            frames=frames,
            cameras=cameras,
            actions=actions,
            state=actions.copy(),
            instruction=str(meta.get("language_instruction", "")),
            task=str(meta.get("task", "droid")),
            fps=fps / self.stride,
            info={"source": where, "dataset": "droid", "stride": self.stride},
        )

    def num_frames(self, i: int) -> int:
        T_raw = len(self._arrays(self._dir(i), f"droid episode {i}")["cartesian_position"])
        return len(range(0, T_raw, self.stride))
