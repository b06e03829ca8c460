"""Small synthetic episodes for tests, benchmarks and demos without a simulator.

The scene is a grey floor with a coloured ball at the end-effector position, drawn with the
episode's own cameras, so pixels, calibration and actions agree exactly (useful to check crop,
resize and action-image alignment).
"""

from __future__ import annotations

import numpy as np

from actionimages.codec.camera import Camera
from actionimages.data.episode import Episode


def default_cameras(
    width: int = 64, height: int = 64, names: tuple[str, ...] = ("front", "side", "top")
) -> dict:
    """Up to three static cameras looking at the workspace centre (0.5, 0, 0.1)."""
    eyes = {
        "front": (1.4, 0.0, 0.6),
        "side": (0.5, -0.9, 0.6),
        "top": (0.55, 0.05, 1.3),
        "back": (-0.3, 0.2, 0.7),
    }
    target = np.array([0.5, 0.0, 0.1])
    return {
        n: Camera.look_at(np.array(eyes[n]), target, fov_y_deg=55.0, width=width, height=height)
        for n in names
    }


def synthetic_actions(T: int, seed: int = 0) -> np.ndarray:
    """A smooth random 7-DoF trajectory (T, 7) in the workspace; the gripper closes half-way."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, T)[:, None]
    p0 = np.array([0.45, -0.1, 0.25]) + rng.uniform(-0.05, 0.05, 3)
    p1 = np.array([0.55, 0.1, 0.08]) + rng.uniform(-0.05, 0.05, 3)
    pos = p0 + (p1 - p0) * (3 * t**2 - 2 * t**3)
    rot = np.array([np.pi, 0.0, 0.0]) + np.concatenate([0.2 * np.sin(3 * t + seed), 0.1 * t, 0.5 * t], 1)
    grip = (t[:, 0] < 0.5).astype(np.float64)[:, None]
    return np.concatenate([pos, rot, grip], 1)


def render_ball(cam: Camera, point: np.ndarray, radius_m: float = 0.03, color=(220, 60, 40)) -> np.ndarray:
    """uint8 (H, W, 3): a shaded floor and a disc at the projection of ``point``."""
    H, W = cam.height, cam.width
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.empty((H, W, 3))
    img[...] = (90 + 60 * v / H)[..., None] * np.array([1.0, 1.0, 1.05])
    img[(np.floor(u / 8) + np.floor(v / 8)) % 2 == 0] *= 0.9  # texture so motion/compression matter
    uv, depth = cam.project(point[None])
    if depth[0] > 1e-6:
        r_px = cam.K[0, 0] * radius_m / depth[0]
        d2 = (u - uv[0, 0]) ** 2 + (v - uv[0, 1]) ** 2
        img[d2 <= r_px**2] = color
    return np.clip(img, 0, 255).astype(np.uint8)


def make_synthetic_episode(
    T: int = 12,
    width: int = 64,
    height: int = 64,
    cameras: tuple[str, ...] = ("front", "side"),
    seed: int = 0,
    fps: float = 10.0,
    per_frame_cameras: bool = False,
    instruction: str = "move the ball to the target",
    task: str = "synthetic_reach",
) -> Episode:
    """An :class:`Episode` of ``T`` frames whose videos show the end-effector as a ball."""
    cams = default_cameras(width, height, cameras)
    actions = synthetic_actions(T, seed)
    frames = {n: np.stack([render_ball(c, actions[t, :3]) for t in range(T)]) for n, c in cams.items()}
    cam_spec: dict = dict(cams)
    if per_frame_cameras:  # a slowly drifting camera, calibrated per frame
        cam_spec = {}
        for n, c in cams.items():
            seq = []
            for t in range(T):
                M = c.cam_to_world.copy()
                M[:3, 3] += np.array([0.0, 0.002 * t, 0.0])
                seq.append(Camera(c.K, M, c.width, c.height))
            cam_spec[n] = seq
            frames[n] = np.stack([render_ball(seq[t], actions[t, :3]) for t in range(T)])
    state = actions.copy()
    state[:, :3] += 0.001
    return Episode(
        frames=frames,
        cameras=cam_spec,
        actions=actions,
        state=state,
        instruction=instruction,
        task=task,
        fps=fps,
        info={"seed": seed, "split": "train", "success": True, "source": f"synthetic(seed={seed})"},
    )
