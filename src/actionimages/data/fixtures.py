"""Tiny on-disk datasets in the paper's layouts (RLBench, DROID, Bridge), for tests and demos.

Each writer renders the synthetic ball scene (:mod:`actionimages.data.synthetic`) with known
cameras and actions, so a reader's output can be checked exactly against what was written.
:func:`write_robot_lerobot` writes given frames and joint positions as a robot's own LeRobot
recording (no poses, no calibration), what ``dataset convert --joints-column`` imports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from actionimages.codec.poses import euler_to_quat, matrix_to_euler
from actionimages.data.synthetic import default_cameras, render_ball, synthetic_actions
from actionimages.data.video import encode_video


def _stamp(img: np.ndarray, t: int) -> np.ndarray:
    """Write frame number ``t`` into the top-left 4×4 block (lets tests check frame order)."""
    img = img.copy()
    img[:4, :4] = (t * 13) % 256
    return img


def write_rlbench_episode(
    d: str | Path, steps: int = 18, size: int = 48, seed: int = 0, per_step_params: bool = False
) -> dict:
    """One RLBench-release episode: ``actions.npy`` (steps, 8), ``view0/1`` videos of every 4th step.

    Returns ``{"actions": (steps, 7) euler actions, "frames": {view: (N, H, W, 3)}, "cameras": ...}``.
    """
    d = Path(d)
    acts = synthetic_actions(steps, seed)
    quat_acts = np.concatenate([acts[:, :3], euler_to_quat(acts[:, 3:6]), acts[:, 6:]], 1)
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "actions.npy", quat_acts)
    cams = default_cameras(size, size, ("front", "side"))
    keep = np.arange(0, steps, 4)
    frames = {}
    for k, cam in enumerate(cams.values()):
        v = d / f"view{k}"
        (v / "rgb").mkdir(parents=True, exist_ok=True)
        fr = np.stack([_stamp(render_ball(cam, acts[t, :3]), j) for j, t in enumerate(keep)])
        encode_video(v / "rgb" / "video.mp4", fr, 5.0)
        n = steps if per_step_params else len(keep)
        params = {"intrinsics": [cam.K.tolist()] * n, "extrinsics": [cam.cam_to_world.tolist()] * n}
        (v / "camera_params.json").write_text(json.dumps(params))
        frames[f"view{k}"] = fr
    return {"actions": acts, "frames": frames, "cameras": dict(zip(frames, cams.values(), strict=True))}


def write_droid_episode(d: str | Path, steps: int = 13, size: int = 40, seed: int = 0) -> dict:
    """One DROID-layout episode (15 Hz, ext1 static, ext2 calibrated per step)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    acts = synthetic_actions(steps, seed)
    gripper = 1.0 - acts[:, 6]  # DROID: 1 = closed
    cams = default_cameras(size, size, ("front", "side"))
    ext1 = cams["front"].cam_to_world
    ext2 = cams["side"].cam_to_world
    pose6 = lambda M: np.concatenate([M[:3, 3], matrix_to_euler(M[:3, :3])])  # noqa: E731
    ext2_seq = np.stack([pose6(ext2)] * steps)
    np.savez(
        d / "trajectory.npz",
        cartesian_position=acts[:, :6],
        gripper_position=gripper[:, None],
        ext1_extrinsics=pose6(ext1),
        ext2_extrinsics=ext2_seq,
    )
    K1, K2 = cams["front"].K, cams["side"].K
    meta = {
        "language_instruction": f"droid instruction {seed}",
        "ext1_intrinsics": [K1[0, 0], K1[1, 1], K1[0, 2], K1[1, 2]],
        "ext2_intrinsics": K2.tolist(),
        "fps": 15,
    }
    (d / "metadata.json").write_text(json.dumps(meta))
    frames = {}
    for name, cam in (("ext1", cams["front"]), ("ext2", cams["side"])):
        fr = np.stack([_stamp(render_ball(cam, acts[t, :3]), t) for t in range(steps)])
        encode_video(d / f"{name}.mp4", fr, 15.0)
        frames[name] = fr
    return {"actions": acts, "gripper": gripper, "frames": frames, "cameras": cams}


def write_bridge_episode(d: str | Path, steps: int = 6, size: int = 32, as_video: bool = False) -> dict:
    """One Bridge trajectory: ``images0/im_<t>.jpg`` (or ``images0.mp4`` + ``images1.mp4`` and a
    ``cameras.json``) and ``lang.txt``."""
    import imageio.v3 as iio

    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    acts = synthetic_actions(steps, 1)
    cams = default_cameras(size, size, ("front", "side"))
    (d / "lang.txt").write_text("put the spoon in the pot\nconfidence: 1\n")
    frames = {}
    if as_video:
        calib = {}
        for k, cam in enumerate(cams.values()):
            fr = np.stack([_stamp(render_ball(cam, acts[t, :3]), t) for t in range(steps)])
            encode_video(d / f"images{k}.mp4", fr, 5.0)
            frames[f"images{k}"] = fr
            calib[f"images{k}"] = {"K": cam.K.tolist(), "cam_to_world": cam.cam_to_world.tolist()}
        (d / "cameras.json").write_text(json.dumps(calib))
    else:
        (d / "images0").mkdir(exist_ok=True)
        cam = cams["front"]
        fr = np.stack([_stamp(render_ball(cam, acts[t, :3]), t) for t in range(steps)])
        for t in range(steps):
            iio.imwrite(d / "images0" / f"im_{t}.jpg", fr[t], quality=95)
        frames["images0"] = fr
    return {"frames": frames, "cameras": cams}


def write_robot_lerobot(root: str | Path, episodes: list[dict]) -> Path:
    """A LeRobot v3 dataset as a robot without our tools records it: joint positions, videos, tasks.

    Each of ``episodes`` is ``{"frames": {camera: uint8 (T, H, W, 3)}, "joints": (T, J),
    "instruction": str, "fps": float}``. ``observation.state`` holds the joints and ``action`` the next
    frame's joints (joint-space targets); there is no pose column and no calibration: our writer
    writes it, then every ``actionimages/*`` column, the checksums and the pose-shaped ``action`` are
    replaced, so only what LeRobot itself writes is left. Returns ``root``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from actionimages.codec.camera import Camera
    from actionimages.data.episode import Episode
    from actionimages.data.lerobot import CHECKSUMS_PATH, INFO_PATH, STATS_PATH, DatasetWriter
    from actionimages.data.lerobot.layout import ROT6D_FEATURES

    root = Path(root)
    with DatasetWriter(root, fps=float(episodes[0]["fps"]), robot_type="robot") as writer:
        for ep in episodes:
            T = len(ep["joints"])
            cams = {  # placeholders: the writer needs cameras; they are stripped below
                c: Camera.look_at([1.5, 0.0, 1.0], [0.4, 0.0, 0.0], width=f.shape[2], height=f.shape[1])
                for c, f in ep["frames"].items()
            }
            writer.add_episode(
                Episode(
                    frames=ep["frames"],
                    cameras=cams,
                    actions=np.tile([0.5, 0.0, 0.3, np.pi, 0.0, 0.0, 1.0], (T, 1)),
                    state=np.asarray(ep["joints"], dtype=np.float64),
                    instruction=ep["instruction"],
                    task="robot",
                    fps=float(ep["fps"]),
                )
            )
    for path in sorted((root / "meta" / "episodes").rglob("*.parquet")):
        table = pq.read_table(path)
        ours = ("actionimages/", "stats/action/", *(f"stats/{k}/" for k in ROT6D_FEATURES))
        pq.write_table(table.drop_columns([c for c in table.column_names if c.startswith(ours)]), path)
    J = len(episodes[0]["joints"][0])
    for path in sorted((root / "data").rglob("*.parquet")):
        table = pq.read_table(path)
        state = np.asarray(table.column("observation.state").to_pylist(), dtype=np.float32)
        target = np.concatenate([state[1:], state[-1:]])  # the next frame's joints
        column = pa.FixedSizeListArray.from_arrays(pa.array(target.reshape(-1)), J)
        table = table.set_column(table.column_names.index("action"), "action", column)
        # our rot6d twins of pose columns: a robot's joints have none (they are not Euler angles)
        pq.write_table(table.drop_columns([c for c in ROT6D_FEATURES if c in table.column_names]), path)
    info = json.loads((root / INFO_PATH).read_text())
    for key in ROT6D_FEATURES:
        info["features"].pop(key, None)
    names = [f"joint{j}" for j in range(J)]
    info["features"]["action"] = {"dtype": "float32", "shape": [J], "names": names}
    info["features"]["observation.state"]["names"] = names
    info.pop("actionimages", None)  # our own info.json field (lerobot.euler): another tool writes none
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))
    stats = json.loads((root / STATS_PATH).read_text())
    for key in ("action", *ROT6D_FEATURES):  # stats of the placeholder poses and of the twins
        stats.pop(key, None)
    (root / STATS_PATH).write_text(json.dumps(stats, indent=4))
    (root / CHECKSUMS_PATH).unlink(missing_ok=True)
    return root
