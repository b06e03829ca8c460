"""The RLBench release layout of the paper (METHOD.md §6).

::

    ROOT/[<task>/]<episode>/
        actions.npy                 (T, 8) [x, y, z, qx, qy, qz, qw, gripper_open] per simulator step
        view<k>/rgb/video.mp4        every 4th simulator step: ceil(T / 4) frames
        view<k>/camera_params.json   {"intrinsics": (N, 3, 3), "extrinsics": (N, 4, 4) camera-to-world}
                                     per video frame (N = ceil(T/4)) or per step (N = T); a single
                                     3×3 / 4×4 is a static camera
        instruction.txt              optional; else the task directory name, underscores as spaces

Actions are subsampled ``[::4]`` so ``actions[t]`` is the pose in video frame ``t``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actionimages.codec.camera import Camera
from actionimages.data.episode import Episode
from actionimages.data.registry import register_source
from actionimages.data.sources.base import EpisodeDirReader, read_instruction, read_json, refuse_booleans
from actionimages.data.video import open_video
from actionimages.errors import ActionImagesError, DataError

RLBENCH_STRIDE = 4


def _load_actions(path: Path, where: str) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{where}: unreadable {path}: {exc}") from exc
    if a.ndim != 2 or a.shape[1] != 8:
        raise DataError(
            f"{where}: {path} must hold actions of shape (T, 8) [xyz, quat xyzw, open], got {a.shape}"
        )
    return a.astype(np.float64)


def cameras_from_params(
    params: dict, n_video: int, n_steps: int, stride: int, size: tuple[int, int], where: str
):
    """Cameras (static or per video frame) from ``intrinsics`` / ``extrinsics`` arrays."""
    if "intrinsics" not in params or "extrinsics" not in params:
        raise DataError(
            f"{where}: camera_params.json needs 'intrinsics' and 'extrinsics' (missing calibration)"
        )
    refuse_booleans(params["intrinsics"], "intrinsics", where)
    refuse_booleans(params["extrinsics"], "extrinsics", where)
    W, H = size
    try:
        K = np.asarray(params["intrinsics"], dtype=np.float64)
        E = np.asarray(params["extrinsics"], dtype=np.float64)
        if K.shape == (3, 3) and E.shape == (4, 4):
            return Camera(K, E, W, H)
        if K.shape == (3, 3):
            K = np.broadcast_to(K, (len(E), 3, 3))
        if E.shape == (4, 4):
            E = np.broadcast_to(E, (len(K), 4, 4))
        if K.ndim != 3 or E.ndim != 3 or len(K) != len(E):
            raise DataError(f"{where}: intrinsics {K.shape} and extrinsics {E.shape} do not match")
        n = len(K)
        if n == n_steps and n != n_video:
            K, E = K[::stride], E[::stride]
        elif n != n_video:
            raise DataError(
                f"{where}: {n} camera parameters for {n_video} video frames ({n_steps} simulator steps)"
            )
        return [Camera(k, e, W, H) for k, e in zip(K, E, strict=True)]
    except DataError:
        raise
    except (ActionImagesError, TypeError, ValueError) as exc:  # ValueError: non-numeric or ragged arrays
        raise DataError(f"{where}: bad calibration: {exc}") from exc


@register_source
class RLBenchReader(EpisodeDirReader):
    """Episodes of the RLBench release layout (see module docstring).

    Args:
        root: top directory (task directories or episode directories below it).
        fps: frame rate of the videos' frames (RLBench steps at 20 Hz, every 4th kept: 5 Hz).
        stride: simulator steps per video frame (4 in the release).
    """

    marker = "actions.npy"
    kind = "rlbench"

    def __init__(self, root: str | Path, fps: float = 5.0, stride: int = RLBENCH_STRIDE) -> None:
        super().__init__(root)
        self.fps, self.stride = float(fps), int(stride)

    def load(self, d: Path, where: str) -> Episode:
        raw = _load_actions(d / "actions.npy", where)
        actions = raw[:: self.stride]
        T = len(actions)
        views = sorted(p for p in d.iterdir() if p.is_dir() and p.name.startswith("view"))
        if not views:
            raise DataError(f"{where}: no view*/ directories")
        frames, cameras = {}, {}
        for v in views:
            video_path = v / "rgb" / "video.mp4"
            params_path = v / "camera_params.json"
            if not video_path.exists():
                raise DataError(
                    f"{where}: camera count differs from video count: {v.name} has no rgb/video.mp4"
                )
            if not params_path.exists():
                raise DataError(f"{where}: missing calibration {params_path}")
            video = open_video(video_path, where=f"{where} {v.name}")
            if len(video) != T:
                raise DataError(
                    f"{where}: frame-count mismatch: {video_path} has {len(video)} frames, "
                    f"actions.npy has {len(raw)} steps -> {T} at stride {self.stride}"
                )
            _, H, W, _ = video.shape
            cameras[v.name] = cameras_from_params(
                read_json(params_path, where), T, len(raw), self.stride, (W, H), f"{where} {params_path}"
            )
            frames[v.name] = video
        task = d.parent.name if d.parent != self.root else d.name
        return Episode(
            frames=frames,
            cameras=cameras,
            actions=actions,
            state=None,
            instruction=read_instruction(d, task.replace("_", " ")),
            task=task,
            fps=self.fps,
            info={"source": where, "dataset": "rlbench"},
        )

    def num_frames(self, i: int) -> int:
        raw = _load_actions(self._dir(i) / "actions.npy", f"rlbench episode {i}")
        return len(raw[:: self.stride])
