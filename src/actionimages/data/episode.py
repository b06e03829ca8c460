"""The in-memory episode: synchronised multiview frames, calibrated cameras and 7-DoF actions.

An :class:`Episode` is what every reader yields and what :class:`~actionimages.data.DatasetWriter`
stores. Frames may be numpy arrays or lazy video handles (anything with ``shape`` and numpy-style
indexing, e.g. :class:`~actionimages.data.video.VideoFile`), so reading an episode decodes no
video until a frame is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actionimages.codec.camera import Camera
from actionimages.codec.poses import to_euler_actions
from actionimages.errors import ActionImagesError, DataError

CAMERA_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")  # becomes part of a path and a LeRobot feature key

CameraSpec = Camera | Sequence[Camera]


def _where(info: Mapping[str, Any]) -> str:
    return str(info.get("source", "episode"))


@dataclass(eq=False)
class Episode:
    """One demonstration (or video-only clip) with its calibration.

    Attributes:
        frames: ``{camera: uint8 (T, H, W, 3)}`` (numpy arrays or lazy video handles).
        cameras: ``{camera: Camera}`` (static) or ``{camera: [T Camera]}`` (per frame); same keys
            as ``frames``.
        actions: float64 (T, 7) world-frame ``[x, y, z, rx, ry, rz, openness]``; (T, 8) quaternion
            input is converted. All zeros when ``has_actions`` is False.
        state: float64 (T, D) proprioception (for the sim: measured pose + openness, D = 7).
        instruction: the language instruction.
        task: task name (e.g. ``reach_target``).
        fps: frame rate of ``frames`` in Hz.
        info: free-form JSON-serialisable metadata (seed, split, success, source, ...).
        has_actions: False for video-only data (BridgeV2).
    """

    frames: Mapping[str, Any]
    cameras: Mapping[str, CameraSpec]
    actions: np.ndarray
    state: np.ndarray | None = None
    instruction: str = ""
    task: str = ""
    fps: float = 10.0
    info: dict[str, Any] = field(default_factory=dict)
    has_actions: bool = True

    def __post_init__(self) -> None:
        where = _where(self.info)
        if not isinstance(self.frames, Mapping) or len(self.frames) == 0:
            raise DataError(f"{where}: frames must be a non-empty mapping camera -> (T, H, W, 3)")
        if any(isinstance(v, (list, tuple)) for v in self.frames.values()):  # lists of (H, W, 3) images
            try:
                self.frames = {
                    k: np.stack(v) if isinstance(v, (list, tuple)) else v for k, v in self.frames.items()
                }
            except ValueError as exc:
                raise DataError(f"{where}: frames of one camera must share one size: {exc}") from exc
        if not isinstance(self.cameras, Mapping):
            raise DataError(f"{where}: cameras must be a mapping camera -> Camera")
        if set(self.frames) != set(self.cameras):
            raise DataError(
                f"{where}: camera count differs from video count: videos {sorted(self.frames)}, "
                f"calibrated cameras {sorted(self.cameras)}"
            )
        for name in self.frames:
            if not isinstance(name, str) or not CAMERA_NAME.match(name):
                raise DataError(f"{where}: camera name {name!r} must match {CAMERA_NAME.pattern}")

        acts = np.asarray(self.actions)
        if acts.ndim != 2 or acts.shape[1] not in (7, 8):
            raise DataError(
                f"{where}: actions must have shape (T, 7) [x,y,z,rx,ry,rz,open] or (T, 8) with a "
                f"quaternion, got {acts.shape}"
            )
        try:
            self.actions = to_euler_actions(acts)
        except ActionImagesError as exc:
            raise DataError(f"{where}: bad actions: {exc}") from exc
        T = self.actions.shape[0]
        if T == 0:
            raise DataError(f"{where}: episode has no frames")

        if self.state is None:
            self.state = self.actions.copy() if self.has_actions else np.zeros((T, 7))
        st = np.asarray(self.state, dtype=np.float64)
        if st.ndim == 1:
            st = st[:, None]
        if st.ndim != 2 or st.shape[0] != T:
            raise DataError(f"{where}: state must have shape (T={T}, D), got {st.shape}")
        if not np.all(np.isfinite(st)):
            raise DataError(f"{where}: state contains NaN or inf")
        self.state = st

        for name, video in self.frames.items():
            shape = tuple(getattr(video, "shape", ()))
            if len(shape) != 4 or shape[3] != 3:
                raise DataError(f"{where}: frames[{name!r}] must have shape (T, H, W, 3), got {shape}")
            if shape[0] != T:
                raise DataError(
                    f"{where}: frame-count mismatch: camera {name!r} has {shape[0]} frames, actions have {T}"
                )
            if isinstance(video, np.ndarray) and video.dtype != np.uint8:
                raise DataError(f"{where}: frames[{name!r}] must be uint8, got {video.dtype}")
            self._check_camera(name, self.cameras[name], T, width=shape[2], height=shape[1])

        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise DataError(f"{where}: fps must be positive, got {self.fps}")
        self.fps = fps
        if not isinstance(self.instruction, str) or not isinstance(self.task, str):
            raise DataError(f"{where}: instruction and task must be strings")
        self.info = dict(self.info)
        self.has_actions = bool(self.has_actions)

    def _check_camera(self, name: str, spec: Any, T: int, width: int, height: int) -> None:
        where = _where(self.info)
        cams = [spec] if isinstance(spec, Camera) else list(spec) if isinstance(spec, Sequence) else None
        if cams is None or not cams or not all(isinstance(c, Camera) for c in cams):
            raise DataError(f"{where}: missing calibration for camera {name!r} (need a Camera or T Cameras)")
        if not isinstance(spec, Camera) and len(cams) != T:
            raise DataError(f"{where}: camera {name!r} has {len(cams)} per-frame calibrations for {T} frames")
        c = cams[0]
        if (c.width, c.height) != (width, height):
            raise DataError(
                f"{where}: camera {name!r} calibration is {c.width}x{c.height} "
                f"but its video is {width}x{height}"
            )

    # ---------------------------------------------------------------- helpers
    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return int(self.actions.shape[0])

    @property
    def camera_names(self) -> list[str]:
        """Camera names in the episode's order."""
        return list(self.frames)

    def camera_at(self, name: str, t: int) -> Camera:
        """The calibration of camera ``name`` at frame ``t``."""
        spec = self.cameras[name]
        return spec if isinstance(spec, Camera) else spec[t]

    def is_static(self, name: str) -> bool:
        """Whether camera ``name`` has one calibration for all frames."""
        return isinstance(self.cameras[name], Camera)


# ---------------------------------------------------------------- calibration (de)serialisation
def calibration_to_json(cameras: Mapping[str, CameraSpec]) -> dict[str, Any]:
    """``{camera: {"static": Camera.to_dict()}}`` or ``{camera: {"per_frame": {K, cam_to_world, w, h}}}``."""
    out: dict[str, Any] = {}
    for name, spec in cameras.items():
        if isinstance(spec, Camera):
            out[name] = {"static": spec.to_dict()}
        else:
            cams = list(spec)
            out[name] = {
                "per_frame": {
                    "K": np.stack([c.K for c in cams]).tolist(),
                    "cam_to_world": np.stack([c.cam_to_world for c in cams]).tolist(),
                    "width": cams[0].width,
                    "height": cams[0].height,
                }
            }
    return out


def calibration_from_json(data: Mapping[str, Any], where: str = "episode") -> dict[str, CameraSpec]:
    """Inverse of :func:`calibration_to_json`; problems raise :class:`DataError` naming ``where``."""
    if not isinstance(data, Mapping):
        raise DataError(f"{where}: calibration must be a JSON object")
    out: dict[str, CameraSpec] = {}
    for name, entry in data.items():
        try:
            if "static" in entry:
                out[name] = Camera.from_dict(entry["static"])
            elif "per_frame" in entry:
                pf = entry["per_frame"]
                Ks, Ts = (
                    np.asarray(pf["K"], dtype=np.float64),
                    np.asarray(pf["cam_to_world"], dtype=np.float64),
                )
                if Ks.ndim != 3 or Ts.ndim != 3 or len(Ks) != len(Ts):
                    raise ActionImagesError(
                        f"per-frame K {Ks.shape} and cam_to_world {Ts.shape} do not match"
                    )
                out[name] = [
                    Camera(k, t, int(pf["width"]), int(pf["height"])) for k, t in zip(Ks, Ts, strict=True)
                ]
            else:
                raise ActionImagesError("needs a 'static' or 'per_frame' entry")
        except (ActionImagesError, KeyError, TypeError) as exc:
            raise DataError(f"{where}: bad calibration for camera {name!r}: {exc}") from exc
    return out


def source_num_frames(source: Any, i: int) -> int:
    """Episode ``i``'s length in an episode source, from ``source.num_frames`` when it has one (no
    decode), else from the episode itself."""
    fn = getattr(source, "num_frames", None)
    if callable(fn):
        return int(fn(i))
    return source.episode(i).num_frames


def content_key(episode: Episode) -> str:
    """A key for what an episode *is*, wherever its files live: a SHA-256 over what the source
    recorded (its state, or its actions when it has no state; its instruction; three frames of each
    camera, first, middle and last, as decoded), not over what a conversion derives from it (poses
    through forward kinematics, a ``--task`` label).

    ``dataset convert`` keys converted episodes by it, so converting a copy of the same source from
    another path, or again with other options, adds nothing (a path key would add every episode
    again)."""
    import hashlib

    h = hashlib.sha256()
    recorded = episode.state if episode.state is not None else episode.actions
    h.update(np.ascontiguousarray(recorded, dtype=np.float64).tobytes())
    h.update(f"\0{episode.instruction}\0".encode())
    for cam in sorted(episode.frames):
        frames = episode.frames[cam]
        T = len(frames)
        for t in sorted({0, T // 2, T - 1}):
            h.update(cam.encode() + np.ascontiguousarray(frames[t], dtype=np.uint8).tobytes())
    return "sha256:" + h.hexdigest()[:32]
