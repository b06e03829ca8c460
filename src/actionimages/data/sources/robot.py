"""Your own robot's LeRobot v3 dataset: end-effector poses and cameras supplied from outside it.

A LeRobot recording holds videos, joint positions and perhaps a pose column, but no camera
calibration, and rarely the end-effector pose in the convention action images need. This reader
takes what it lacks from what the user names::

    pose      --pose-column COL [--pose-format euler|quat|rotvec]   a column holding the pose, or
              --joints-column COL --mjcf PATH|panda --ee-site SITE   joint positions through MuJoCo FK
    gripper   --gripper-column COL --gripper-range CLOSED,OPEN       openness = (v - CLOSED) / (OPEN - CLOSED)
    cameras   --calibration FILE [--camera KEY=NAME ...]             the ``actionimages calibrate`` file

``COL`` is a frame-data column, optionally sliced: ``observation.state[0:7]`` (values 0..6),
``observation.state[7]`` (one value). Pose formats (robot base frame, metres): ``euler`` = [x, y, z,
rx, ry, rz] SciPy extrinsic xyz radians (the project's own), ``quat`` = [x, y, z, qx, qy, qz, qw],
``rotvec`` = [x, y, z, axis-angle vector] (radians). Without ``--camera`` every video
``observation.images.NAME`` needs camera ``NAME`` in the calibration file; with it, only the mapped
videos are imported. Nothing is detected: ``dataset convert`` uses this reader when a pose source is
given (kind ``robot``). The video frames and the metadata rows are read by
:class:`~actionimages.data.lerobot.DatasetReader`, so datasets LeRobot packed several episodes per
file are read as well.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from actionimages.calibrate.files import camera_for_image, read_calibration
from actionimages.codec.camera import Camera
from actionimages.codec.poses import matrix_to_euler, quat_to_euler
from actionimages.data.episode import CAMERA_NAME, Episode
from actionimages.data.lerobot import VIDEO_PREFIX, DatasetReader, video_key
from actionimages.data.registry import register_source
from actionimages.errors import ActionImagesError, DataError

POSE_FORMATS = {"euler": 6, "quat": 7, "rotvec": 6}  # values per frame
GRIPPER_SLACK = 0.05  # a gripper reading this far (fraction of the range) outside it is an error, not noise
_COLUMN = re.compile(r"^(?P<name>[^\[\]]+?)(?:\[(?P<index>-?\d+)\]|\[(?P<start>-?\d*):(?P<stop>-?\d*)\])?$")


def parse_column(text: str) -> tuple[str, slice]:
    """``"observation.state[0:7]"`` -> ("observation.state", slice(0, 7)); ``"x[7]"`` -> slice(7, 8);
    a bare name -> every value."""
    m = _COLUMN.match(str(text).strip())
    if not m:
        raise ActionImagesError(f"column {text!r} is not NAME, NAME[i] or NAME[start:stop]")
    if m["index"] is not None:
        i = int(m["index"])
        return m["name"], slice(i, i + 1 if i != -1 else None)
    if m["start"] is None:
        return m["name"], slice(None)
    return m["name"], slice(int(m["start"]) if m["start"] else None, int(m["stop"]) if m["stop"] else None)


def parse_camera_map(specs: Sequence[str] | None) -> dict[str, str] | None:
    """``["observation.images.front=front", ...]`` -> ``{video key: calibration camera}`` (None if none)."""
    if not specs:
        return None
    out: dict[str, str] = {}
    for spec in specs:
        key, sep, name = str(spec).partition("=")
        if not sep or not key.strip() or not name.strip():
            raise ActionImagesError(
                f"--camera {spec!r} is not KEY=NAME (e.g. observation.images.front=front)"
            )
        key = key.strip() if key.strip().startswith(VIDEO_PREFIX) else video_key(key.strip())
        if key in out:
            raise ActionImagesError(f"--camera maps {key} twice")
        out[key] = name.strip()
    return out


def parse_range(text: str | Sequence[float]) -> tuple[float, float]:
    """``"0,0.08"`` (closed, open) -> (0.0, 0.08); the two must be distinct finite numbers."""
    try:
        values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError as exc:
        raise ActionImagesError(f"--gripper-range {text!r} is not CLOSED,OPEN (two numbers)") from exc
    if len(values) != 2 or not np.all(np.isfinite(values)) or values[0] == values[1]:
        raise ActionImagesError(f"--gripper-range {text!r} must be two different numbers CLOSED,OPEN")
    return values[0], values[1]


def poses_to_actions6(values: np.ndarray, fmt: str) -> np.ndarray:
    """Poses (T, D) in ``fmt`` (:data:`POSE_FORMATS`) -> (T, 6) [x, y, z, rx, ry, rz] (extrinsic xyz)."""
    if fmt == "euler":
        return values.copy()
    if fmt == "quat":
        return np.concatenate([values[:, :3], quat_to_euler(values[:, 3:7])], 1)
    from scipy.spatial.transform import Rotation

    return np.concatenate(
        [values[:, :3], matrix_to_euler(Rotation.from_rotvec(values[:, 3:6]).as_matrix())], 1
    )


@register_source
class RobotReader:
    """Episodes of a LeRobot v3 dataset from the user's robot (see the module docstring).

    Args:
        root: the dataset directory (``meta/info.json``, ``data/``, ``videos/``).
        calibration: the calibration file (``actionimages calibrate extrinsics``).
        gripper_column, gripper_range: the openness source and its (closed, open) values.
        pose_column, pose_format: the end-effector pose column and its convention; or
        joints_column, mjcf, ee_site: joint positions, the robot's MJCF (or ``panda``) and the site
            whose frame is the tool frame (default ``tcp`` for ``panda``).
        cameras: ``{video key: calibration camera}`` (default: each video by its own name).
        task: the task name written with every episode.
    """

    kind = "robot"
    detected = False  # a LeRobot layout: dataset convert picks it when told where the poses come from

    def __init__(
        self,
        root: str | Path,
        calibration: str | Path | None = None,
        gripper_column: str | None = None,
        gripper_range: str | Sequence[float] = (0.0, 1.0),
        pose_column: str | None = None,
        pose_format: str = "euler",
        joints_column: str | None = None,
        mjcf: str | Path | None = None,
        ee_site: str | None = None,
        cameras: Mapping[str, str] | None = None,
        task: str = "robot",
    ) -> None:
        if (pose_column is None) == (joints_column is None):
            raise ActionImagesError(
                "give the end-effector pose source: --pose-column COL, or --joints-column COL with --mjcf"
            )
        if calibration is None:
            raise ActionImagesError("give --calibration FILE (actionimages calibrate) for the cameras")
        if gripper_column is None:
            raise ActionImagesError("give --gripper-column COL (and --gripper-range CLOSED,OPEN)")
        if pose_format not in POSE_FORMATS:
            raise ActionImagesError(
                f"unknown --pose-format {pose_format!r}; expected one of {list(POSE_FORMATS)}"
            )
        self.lerobot = DatasetReader(root)
        self.root, self.task = self.lerobot.root, str(task)
        self.gripper_range = parse_range(gripper_range)
        self.pose_format = pose_format
        self.kinematics = None
        if joints_column is not None:
            from actionimages.sim.kinematics import BUILTIN_MJCF, SiteKinematics

            if mjcf is None:
                raise ActionImagesError(
                    f"--joints-column needs --mjcf (the robot's MJCF file, or one of {sorted(BUILTIN_MJCF)})"
                )
            if ee_site is None and str(mjcf) != "panda":
                raise ActionImagesError(
                    "--joints-column needs --ee-site (the MJCF site of the tool centre point)"
                )
            self.kinematics = SiteKinematics(mjcf, ee_site or "tcp")
        pose_spec = pose_column if joints_column is None else joints_column
        self.pose_col = self._column(pose_spec, "--joints-column" if joints_column else "--pose-column")
        if self.kinematics is not None and self.pose_col[2] != len(self.kinematics.joint_names):
            chain = list(self.kinematics.joint_names)
            raise ActionImagesError(
                f"--joints-column {joints_column} gives {self.pose_col[2]} joint values per frame, but the "
                f"chain of {mjcf} to site {self.kinematics.site_name!r} has {len(chain)} joints {chain}; "
                f"select them, e.g. {self.pose_col[0]}[0:{len(chain)}]"
            )
        self.gripper_col = self._column(gripper_column, "--gripper-column")
        self.calibration_path = str(calibration)
        self.cameras = self._cameras(calibration, cameras)

    # ------------------------------------------------------------- set-up checks
    def _column(self, spec: str, option: str) -> tuple[str, slice, int]:
        """(column, slice, values per frame) of ``spec``, checked against ``meta/info.json``'s features."""
        name, sl = parse_column(spec)
        features = self.lerobot.info["features"]
        if name not in features:
            columns = [k for k, v in features.items() if v.get("dtype") not in ("video", "image")]
            raise ActionImagesError(f"{option}: {self.root} has no column {name!r}; its columns: {columns}")
        shape = features[name].get("shape") or [1]
        width = int(np.prod(shape))
        n = len(range(width)[sl])
        if n == 0:
            raise ActionImagesError(f"{option} {spec!r} selects no values of {name} ({width} per frame)")
        return name, sl, n

    def _cameras(self, path: str | Path, mapping: Mapping[str, str] | None) -> dict[str, tuple[str, Camera]]:
        """``{episode camera name: (LeRobot camera, Camera at the video's size)}``, every key checked."""
        features = self.lerobot.info["features"]
        videos = [k for k, v in features.items() if v.get("dtype") == "video"]
        images = [k for k, v in features.items() if v.get("dtype") == "image"]
        mapping = dict(mapping) if mapping else {k: k[len(VIDEO_PREFIX) :] for k in videos}
        if not mapping:
            raise ActionImagesError(f"{self.root} has no video features (observation.images.*)")
        entries = read_calibration(path)["cameras"]
        out: dict[str, tuple[str, Camera]] = {}
        for key, name in mapping.items():
            if key not in videos:
                kind = (
                    " (stored as images in the frame data: only videos are supported)"
                    if key in images
                    else ""
                )
                raise ActionImagesError(
                    f"camera key {key} is not a video of {self.root}{kind}; its videos: {videos}"
                )
            if name not in entries:
                raise ActionImagesError(
                    f"missing calibration for camera key {key}: calibration file {path} has no camera "
                    f"{name!r} (it has {sorted(entries)}); map it with --camera {key}=NAME, or name only the "
                    "cameras to import with --camera"
                )
            if not CAMERA_NAME.match(name):
                raise ActionImagesError(f"camera name {name!r} must be letters, digits, '_' or '-'")
            try:
                cam = Camera.from_dict(entries[name])
            except (ActionImagesError, TypeError, ValueError) as exc:
                raise ActionImagesError(f"calibration file {path}: camera {name!r}: {exc}") from exc
            H, W = (int(v) for v in features[key]["shape"][:2])
            out[name] = (key[len(VIDEO_PREFIX) :], camera_for_image(cam, W, H, f"camera {name!r} of {path}"))
        return out

    # ------------------------------------------------------------------ episodes
    def __len__(self) -> int:
        return len(self.lerobot)

    def episode_id(self, i: int) -> str:
        return self.lerobot.episode_id(i)

    def num_frames(self, i: int) -> int:
        return self.lerobot.num_frames(i)

    def _values(
        self, i: int, col: tuple[str, slice, int], option: str, arrays: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        name, sl, n = col
        values = arrays[name].reshape(len(arrays[name]), -1)[:, sl]
        if values.shape[1] != n:
            raise DataError(
                f"{self.root} episode {i}: {option} {name} has {values.shape[1]} values per frame, not {n}"
            )
        bad = ~np.isfinite(values)
        if bad.any():
            t = int(np.argwhere(bad)[0, 0])
            raise DataError(f"{self.root} episode {i}: {option} {name} holds NaN or infinity at frame {t}")
        return values

    def _pose6(self, i: int, values: np.ndarray) -> np.ndarray:
        """(T, 6) end-effector poses from the pose or joint values."""
        if self.kinematics is not None:
            try:
                M = self.kinematics.poses(values)
            except ActionImagesError as exc:
                raise DataError(
                    f"{self.root} episode {i}: --joints-column {self.pose_col[0]}: {exc}"
                ) from exc
            return np.concatenate([M[:, :3, 3], matrix_to_euler(M[:, :3, :3])], 1)
        want = POSE_FORMATS[self.pose_format]
        if values.shape[1] != want:
            raise DataError(
                f"{self.root} episode {i}: --pose-column {self.pose_col[0]} gives {values.shape[1]} "
                f"values per frame; --pose-format {self.pose_format} needs {want} "
                f"(select them, e.g. COL[0:{want}])"
            )
        try:
            return poses_to_actions6(values, self.pose_format)
        except ActionImagesError as exc:  # e.g. a zero quaternion
            raise DataError(f"{self.root} episode {i}: --pose-column {self.pose_col[0]}: {exc}") from exc

    def _openness(self, i: int, values: np.ndarray) -> np.ndarray:
        """(T,) openness in [0, 1] from the gripper column and its (closed, open) range."""
        if values.shape[1] != 1:
            raise DataError(
                f"{self.root} episode {i}: --gripper-column {self.gripper_col[0]} gives {values.shape[1]} "
                "values per frame; select one, e.g. COL[7]"
            )
        closed, opened = self.gripper_range
        openness = (values[:, 0] - closed) / (opened - closed)
        worst = int(np.argmax(np.abs(openness - 0.5)))
        if abs(openness[worst] - 0.5) > 0.5 + GRIPPER_SLACK:  # a wrong range, not sensor noise
            raise DataError(
                f"{self.root} episode {i}: gripper value {values[worst, 0]:g} at frame {worst} lies outside "
                f"--gripper-range {closed:g},{opened:g} (closed, open)"
            )
        return np.clip(openness, 0.0, 1.0)

    def episode(self, i: int) -> Episode:
        """Episode ``i``: actions (T, 7) [pose, openness] in the base frame, the calibrated videos."""
        row = self.lerobot.meta(i)
        where = f"{self.root} episode {i}"
        names = list(dict.fromkeys([self.pose_col[0], self.gripper_col[0]]))
        arrays = self.lerobot.columns(i, names)
        T = self.num_frames(i)
        if len(arrays[names[0]]) != T:
            raise DataError(
                f"{where}: frame-count mismatch: metadata says {T} frames, the frame data has "
                f"{len(arrays[names[0]])}"
            )
        pose6 = self._pose6(i, self._values(i, self.pose_col, "pose column", arrays))
        openness = self._openness(i, self._values(i, self.gripper_col, "--gripper-column", arrays))
        actions = np.concatenate([pose6, openness[:, None]], 1)
        frames = {name: self.lerobot.video_file(i, cam) for name, (cam, _) in self.cameras.items()}
        pose_source = (
            f"forward kinematics of {self.kinematics.mjcf} site {self.kinematics.site_name!r} from "
            f"{self.pose_col[0]}"
            if self.kinematics is not None
            else f"{self.pose_col[0]} ({self.pose_format})"
        )
        tasks = row.get("tasks") or [""]
        return Episode(
            frames=frames,
            cameras={name: cam for name, (_, cam) in self.cameras.items()},
            actions=actions,
            state=actions.copy(),
            instruction=str(tasks[0]),
            task=self.task,
            fps=self.lerobot.fps,
            info={
                "source": where,
                "dataset": "robot",
                "episode_index": i,
                "pose": pose_source,
                "calibration": f"file {self.calibration_path}",
            },
        )

    def __iter__(self):
        for i in range(len(self)):
            yield self.episode(i)
