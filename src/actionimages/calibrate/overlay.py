"""Draw a gripper pose's action image over a camera's photo, to see by eye whether a calibration holds.

The codec (:class:`~actionimages.codec.ActionImageCodec`) draws the pose's three semantic points
as Gaussian blobs (``P_pos`` red, ``P_norm`` green, ``P_up`` blue) with the calibrated camera; the
blobs are blended over the photo and each point's projection is marked with a cross. With a good
calibration and the robot at that pose, the red blob sits between the finger pads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actionimages.atomic import write_bytes_atomic
from actionimages.calibrate.board import _cv2, read_image
from actionimages.calibrate.files import camera_for_image, load_calibration
from actionimages.codec import ActionImageCodec, Camera, semantic_points
from actionimages.errors import ActionImagesError

COLOURS = np.array([[255, 40, 40], [40, 220, 40], [60, 110, 255]], dtype=np.float64)  # P_pos, P_norm, P_up


def parse_pose(text: str) -> np.ndarray:
    """``"x,y,z,rx,ry,rz,openness"`` (metres, SciPy extrinsic xyz Euler radians) -> action (7,)."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError as exc:
        raise ActionImagesError(f"pose {text!r} is not comma-separated numbers: {exc}") from exc
    if len(values) == 6:
        values.append(1.0)
    if len(values) != 7 or not np.all(np.isfinite(values)):
        raise ActionImagesError(f"pose must be 'x,y,z,rx,ry,rz[,openness]' (finite numbers), got {text!r}")
    return np.array(values)


def overlay(image: np.ndarray, camera: Camera, action: np.ndarray, sigma_frac: float = 0.02) -> np.ndarray:
    """``image`` (uint8 RGB (H, W, 3)) with ``action``'s (7,) action image blended over it."""
    h, w = image.shape[:2]
    cam = camera_for_image(camera, w, h)
    codec = ActionImageCodec([cam], sigma_frac=sigma_frac)
    closed = np.asarray(action, dtype=np.float64).copy()
    closed[6] = 0.0  # the openness only tints the background: leave the photo untouched
    blobs = codec.encode(closed[None])[0, 0].astype(np.float64)  # (H, W, 3) in [0, 1]
    alpha = blobs.max(-1, keepdims=True) * 0.85
    colour = np.einsum("hwc,ck->hwk", blobs, COLOURS) / np.maximum(blobs.sum(-1, keepdims=True), 1e-9)
    out = image.astype(np.float64) * (1 - alpha) + colour * alpha
    out = np.clip(out, 0, 255).astype(np.uint8)
    cv2 = _cv2()
    uv, depth = codec.project_points(semantic_points(action[None], codec.axis_length))
    for (u, v), d, c in zip(uv[0, 0], depth[0, 0], COLOURS, strict=True):
        if d > 0 and -w < u < 2 * w and -h < v < 2 * h:
            cv2.drawMarker(
                out, (int(round(u)), int(round(v))), tuple(int(x) for x in c), cv2.MARKER_CROSS, 12, 1
            )
    return out


def overlay_file(calibration: str | Path, camera: str, image: str | Path, pose: str, out: str | Path) -> dict:
    """Read the calibration and the photo, draw the pose, write a PNG; returns where the points fell."""
    if Path(out).suffix.lower() != ".png":
        raise ActionImagesError(f"--out must be a .png file, got {out}")
    cam = load_calibration(calibration, [camera])[camera]
    img = read_image(image)
    action = parse_pose(pose)
    drawn = overlay(img, cam, action)
    cv2 = _cv2()
    ok, png = cv2.imencode(".png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise ActionImagesError("cannot encode the overlay as PNG")
    write_bytes_atomic(out, png.tobytes())
    c = camera_for_image(cam, img.shape[1], img.shape[0])
    uv, depth = c.project(semantic_points(action))
    return {
        "out": str(out),
        "pixels": {
            n: [round(float(x), 2) for x in p] for n, p in zip(("P_pos", "P_norm", "P_up"), uv, strict=True)
        },
        "in_front": bool((depth > 0).all()),
    }
