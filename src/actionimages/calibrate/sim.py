"""The calibration procedure proven in the simulator, against the sim's true cameras.

Scene variants of the benchmark (:func:`calibration_scene_xml`) add a ChArUco board printed on a
thin plate: either **held by the Panda's hand** like a paddle by its handle (the plate parallel to
the fingers' plane, 2.5 cm in front of it, reaching out past the finger tips, the print facing the
hand's +x), or **free** (a mocap body: a person holding the board up to a camera). The benchmark
scene itself is untouched: a variant is the benchmark's MJCF with the board's texture, material
and bodies pasted in (and a larger offscreen buffer).

:func:`sim_check` runs the real two-step procedure on renders:

1. **intrinsics** per camera (what ``actionimages calibrate intrinsics`` does): the free board is
   shown to the camera ``intrinsic_views`` times at 0.35–0.7 m, tilted up to 45°, covering
   different parts of the image; ``cv2.calibrateCamera`` on the detected corners. The sim's K is
   never used (unless ``known_intrinsics``).
2. **extrinsics** (what ``actionimages calibrate extrinsics`` does): the arm moves through
   ``poses`` random poses, each aimed so the board faces the camera that has seen it least so far
   (tilted and rolled at random; a pose that camera cannot see is skipped, as an operator would);
   the joints are set from IK and the robot reports its tool-centre-point pose from forward
   kinematics; every fixed camera renders; eye-to-hand initialisation and bundle adjustment with
   the step-1 intrinsics fixed (``refine_intrinsics`` frees them).

Board poses are aimed with the cameras' nominal placement, as an operator aims the board while
watching the feeds; the solver never sees it. The result is compared with
:func:`~actionimages.sim.scene.mujoco_camera`, the cameras ``SimEnv.cameras()`` returns.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the mujoco import

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from actionimages.atomic import write_bytes_atomic, write_json_atomic
from actionimages.calibrate.board import DEFAULT_BOARD, BoardDetector, BoardSpec, Detection, _cv2
from actionimages.calibrate.files import calibration_dict, save_calibration
from actionimages.calibrate.solve import (
    CameraViews,
    calibrate_extrinsics,
    calibrate_intrinsics,
    invert,
    make_transform,
    pose_errors,
)
from actionimages.codec.camera import Camera
from actionimages.codec.poses import matrix_to_euler
from actionimages.errors import ActionImagesError
from actionimages.sim.render import OffscreenRenderer
from actionimages.sim.robot import HOME_Q, PandaKinematics
from actionimages.sim.scene import DEFAULT_CAMERAS, FIXED_CAMERAS, TCP_Z, build_scene_xml, mujoco_camera

TARGETS = {"reprojection_px": 0.5, "position_error_mm": 5.0, "rotation_error_deg": 0.5}
PX_PER_SQUARE = 128  # texture resolution of the printed board
MARGIN_FRACTION = 0.2  # white border around the board, as a fraction of a square
PLATE_OFFSET = 0.025  # m: the printed face's distance in front of the fingers' plane (hand +x)
PLATE_START = 0.115  # m: along the hand's z (fingers), the plate's near edge: just past the finger tips
PLATE_THICKNESS = 0.004
BOARD_BODY = "charuco_board"  # its frame is the board's (OpenCV): origin at the top-left inner corner
# the board frame's axes in the hand frame: x_b = -y_h, y_b = +z_h, z_b = -x_h (into the plate)
HAND_TO_BOARD_R = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

# step 2: where and how the held board is posed
BOARD_LOW = np.array([0.30, -0.35, 0.15])  # where the board's centre is placed (m, world)
BOARD_HIGH = np.array([0.70, 0.35, 0.55])
TCP_MIN_Z = 0.25  # m: keeps the hand (and so the plate) above the table
FAVOUR = 0.7  # the board's normal: this much towards the favoured camera, the rest towards all
IN_IMAGE_MARGIN = 0.05  # the board's corners stay this fraction of the image inside its edges
MAX_TILT_DEG = 20.0  # random tilt of the board's normal away from its aim
MAX_ROLL_DEG = 30.0  # random turn of the board about its normal
MAX_ELEVATION_DEG = 55.0  # the normal never points steeper up: the arm would hide the board
# step 1: the free board in front of a camera
FREE_DISTANCE = (0.35, 0.7)  # m
FREE_MAX_TILT_DEG = 45.0
MAX_IMAGE = 1024


# --------------------------------------------------------------------------- the scene
def board_geometry(board: BoardSpec) -> tuple[float, float, float]:
    """The printed area's size (W, H) in metres, white margin included, and the margin (m)."""
    margin_px = int(round(MARGIN_FRACTION * PX_PER_SQUARE))
    m = margin_px * board.square / PX_PER_SQUARE  # the texture's margin, exactly
    cw, ch = board.size_m
    return cw + 2 * m, ch + 2 * m, m


def board_in_hand(board: BoardSpec) -> np.ndarray:
    """The held board's frame in the hand frame (4, 4)."""
    W, _, m = board_geometry(board)
    return make_transform(HAND_TO_BOARD_R, [PLATE_OFFSET, W / 2 - m, PLATE_START + m])


def _board_body_xml(board: BoardSpec, attrs: str) -> str:
    W, H, m = board_geometry(board)
    cw, ch = board.size_m
    t = PLATE_THICKNESS
    return f"""
    <body name="{BOARD_BODY}" {attrs}>
      <geom name="charuco" type="mesh" mesh="charuco_print" material="charuco" contype="0" conaffinity="0"
            mass="0" group="1"/>
      <geom name="charuco_plate" type="box" material="charuco_plate" contype="0" conaffinity="0" mass="0"
            group="1" size="{W / 2 + 0.005:.6f} {H / 2 + 0.005:.6f} {t / 2}"
            pos="{cw / 2:.6f} {ch / 2:.6f} {t / 2 + 0.0002}"/>
    </body>"""


def calibration_scene_xml(
    board: BoardSpec, texture_png: str | Path, image_size: int = 512, held: bool = True
) -> str:
    """The benchmark's MJCF with ``board`` (printed in ``texture_png``) on a plate, held in the
    Panda's hand (``held``) or on a free mocap body."""
    W, H, m = board_geometry(board)
    # the print, in the board frame: texture (u, v) = (0, 0) is the image's top-left corner
    verts = [(-m, -m), (W - m, -m), (W - m, H - m), (-m, H - m)]
    vert = " ".join(f"{a:.6f} {b:.6f} 0" for a, b in verts)
    assets = f"""
    <texture name="charuco" type="2d" file="{Path(texture_png).resolve()}"/>
    <material name="charuco" texture="charuco" specular="0" shininess="0" reflectance="0"/>
    <material name="charuco_plate" rgba="0.55 0.57 0.6 1" specular="0" reflectance="0"/>
    <mesh name="charuco_print" inertia="shell" vertex="{vert}" texcoord="0 0 1 0 1 1 0 1" face="0 2 1 0 3 2"/>
  </asset>"""
    xml = build_scene_xml()
    buffer = 'offwidth="512" offheight="512"'
    anchor = '<body name="hand"'
    if xml.count("</asset>") != 1 or anchor not in xml or buffer not in xml:
        raise ActionImagesError("the benchmark scene changed shape: cannot add the calibration board")
    size = max(512, int(image_size))
    xml = xml.replace(buffer, f'offwidth="{size}" offheight="{size}"')
    xml = xml.replace("</asset>", assets, 1)
    if held:
        T = board_in_hand(board)
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, T[:3, :3].reshape(-1))
        pos, quat = " ".join(f"{v:.6f}" for v in T[:3, 3]), " ".join(f"{v:.8f}" for v in q)
        x, z0 = PLATE_OFFSET, PLATE_START
        body = (
            _board_body_xml(board, f'pos="{pos}" quat="{quat}"')
            + f"""
    <geom name="charuco_handle" type="box" material="charuco_plate" contype="0" conaffinity="0" mass="0"
          group="1" size="{x / 2:.6f} 0.006 0.03" pos="{x / 2:.6f} 0 {z0 - 0.02:.6f}"/>"""
        )
        end = xml.index(">", xml.index(anchor)) + 1
        return xml[:end] + body + xml[end:]
    worldbody_end = xml.rindex("</worldbody>")
    return xml[:worldbody_end] + _board_body_xml(board, 'mocap="true" pos="0 0 -5"') + xml[worldbody_end:]


def board_texture(board: BoardSpec) -> bytes:
    """The board's texture: its printed image with a white margin, stretched to a power-of-two square
    (OpenGL builds the mipmaps of other sizes by dropping texels, which would shift and scale the
    print by up to half a texel at coarse levels: a distance-dependent scale error), as PNG bytes."""
    cv2 = _cv2()
    margin = int(round(MARGIN_FRACTION * PX_PER_SQUARE))
    img = board.image(PX_PER_SQUARE, margin)
    side = 1 << int(np.ceil(np.log2(max(img.shape))))
    img = cv2.resize(img, (side, side), interpolation=cv2.INTER_LINEAR)
    ok, png = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover
        raise ActionImagesError("cannot encode the board image as PNG")
    return png.tobytes()


class CalibrationScene:
    """A board scene (held or free board): a model, IK and a renderer at ``image_size``²."""

    def __init__(self, board: BoardSpec, image_size: int, held: bool = True) -> None:
        if not 64 <= image_size <= MAX_IMAGE:
            raise ActionImagesError(f"image size must be in [64, {MAX_IMAGE}], got {image_size}")
        self.board, self.size, self.held = board, int(image_size), held
        with tempfile.TemporaryDirectory(prefix="actionimages-charuco-") as tmp:
            png = Path(tmp) / "charuco.png"
            write_bytes_atomic(png, board_texture(board))
            xml = calibration_scene_xml(board, png, image_size, held)
            try:
                self.model = mujoco.MjModel.from_xml_string(xml)
            except ValueError as exc:
                raise ActionImagesError(f"calibration scene failed to compile: {exc}") from exc
        self.data = mujoco.MjData(self.model)
        self.kin = PandaKinematics(self.model)
        self.board_body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, BOARD_BODY)
        self.renderer = OffscreenRenderer(self.model, self.size, self.size)
        self.q = HOME_Q.copy()
        self.data.qpos[self.kin.qpos_idx] = HOME_Q
        mujoco.mj_forward(self.model, self.data)

    def move(self, tcp: np.ndarray, R: np.ndarray) -> bool:
        """Set the arm at the IK solution of tool pose (``tcp``, ``R``); False when IK misses it."""
        for start in (self.q, HOME_Q):
            ik = self.kin.solve(tcp, R, start, max_iters=300)
            if not ik.failed:
                break
        if ik.failed:
            return False
        self.q = ik.q.copy()
        self.data.qpos[self.kin.qpos_idx] = ik.q
        self.data.qpos[self.kin.finger_qpos_idx] = 0.0
        mujoco.mj_forward(self.model, self.data)
        return True

    def place_board(self, T: np.ndarray) -> None:
        """Put the free board's frame at world pose ``T`` (4, 4)."""
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, T[:3, :3].reshape(-1))
        self.data.mocap_pos[0], self.data.mocap_quat[0] = T[:3, 3], q
        mujoco.mj_forward(self.model, self.data)

    def ee_pose(self) -> np.ndarray:
        """The tool-centre-point pose (4, 4), what the robot reports."""
        p, R = self.kin.tcp_pose(self.data)
        return make_transform(R, p)

    def board_pose(self) -> np.ndarray:
        """The board frame's true world pose (4, 4)."""
        b = self.board_body
        return make_transform(self.data.xmat[b].reshape(3, 3), self.data.xpos[b])

    def render(self, camera: str) -> np.ndarray:
        return self.renderer.render(self.data, camera)

    def true_camera(self, camera: str) -> Camera:
        return mujoco_camera(self.model, self.data, camera, self.size, self.size)

    def close(self) -> None:
        self.renderer.close()


# --------------------------------------------------------------------------- poses
def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _tilt(rng: np.random.Generator, n: np.ndarray, max_deg: float) -> np.ndarray:
    axis = _unit(np.cross(n, rng.normal(size=3)))
    a = np.deg2rad(rng.uniform(0.0, max_deg))
    return np.cos(a) * n + np.sin(a) * np.cross(axis, n)


def facing_rotation(normal: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Hand rotation (3, 3) whose x axis (the board's face) is ``normal``, with the fingers (z) as
    close to pointing down as that allows, then turned by ``roll`` radians about the normal."""
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    down = np.array([0.0, 0.0, -1.0])
    z = down - (down @ n) * n
    if np.linalg.norm(z) < 1e-3:
        z = np.array([1.0, 0.0, 0.0]) - n[0] * n
    z /= np.linalg.norm(z)
    z = np.cos(roll) * z + np.sin(roll) * np.cross(n, z)
    return np.stack([n, np.cross(z, n), z], axis=1)


def _board_corners(board: BoardSpec) -> np.ndarray:
    """The printed area's four corners in the board frame (4, 3)."""
    W, H, m = board_geometry(board)
    return np.array([[-m, -m, 0], [W - m, -m, 0], [W - m, H - m, 0], [-m, H - m, 0]])


def _inside(cam: Camera, points: np.ndarray) -> bool:
    uv, depth = cam.project(points)
    lo = IN_IMAGE_MARGIN * np.array([cam.width, cam.height])
    hi = np.array([cam.width, cam.height]) - lo
    return bool((depth > 0).all() and (uv >= lo).all() and (uv <= hi).all())


def sample_held_pose(
    rng: np.random.Generator, board: BoardSpec, cameras: Sequence[Camera], favour: int
) -> tuple[np.ndarray, np.ndarray]:
    """A random tool pose (TCP position, rotation) whose board faces ``cameras``, camera ``favour``
    most, and lies inside ``favour``'s image."""
    hand_board = board_in_hand(board)
    W, H, m = board_geometry(board)
    centre_board = np.array([W / 2 - m, H / 2 - m, 0.0])
    centre_hand = hand_board[:3, :3] @ centre_board + hand_board[:3, 3]
    corners_hand = _board_corners(board) @ hand_board[:3, :3].T + hand_board[:3, 3]
    eyes = np.array([c.center for c in cameras])
    for _ in range(1000):
        centre = rng.uniform(BOARD_LOW, BOARD_HIGH)
        to_cams = _unit(eyes - centre)
        n = _tilt(rng, _unit(FAVOUR * to_cams[favour] + (1 - FAVOUR) * _unit(to_cams.mean(0))), MAX_TILT_DEG)
        elev, max_elev = np.arcsin(np.clip(n[2], -1, 1)), np.deg2rad(MAX_ELEVATION_DEG)
        if elev > max_elev:
            horiz = _unit(np.array([n[0], n[1], 0.0]))
            n = np.cos(max_elev) * horiz + np.array([0.0, 0.0, np.sin(max_elev)])
        R = facing_rotation(n, np.deg2rad(rng.uniform(-MAX_ROLL_DEG, MAX_ROLL_DEG)))
        tcp = centre - R @ (centre_hand - np.array([0.0, 0.0, TCP_Z]))
        if tcp[2] > TCP_MIN_Z and _inside(cameras[favour], centre + (corners_hand - centre_hand) @ R.T):
            return tcp, R
    raise ActionImagesError(f"found no board pose inside camera {favour}'s image")  # pragma: no cover


def sample_free_pose(rng: np.random.Generator, board: BoardSpec, cam: Camera) -> np.ndarray:
    """A random world pose (4, 4) of the free board in front of ``cam``, wholly inside its image."""
    W, H, m = board_geometry(board)
    centre_board = np.array([W / 2 - m, H / 2 - m, 0.0])
    for _ in range(1000):
        uv = rng.uniform(0.25, 0.75, size=2) * [cam.width, cam.height]
        centre = cam.unproject(uv, rng.uniform(*FREE_DISTANCE))
        z = _tilt(rng, _unit(centre - cam.center), FREE_MAX_TILT_DEG)  # into the board: away from the camera
        x = _unit(np.cross(cam.cam_to_world[:3, 1], z))  # roughly the camera's x, then rolled
        roll = np.deg2rad(rng.uniform(-MAX_ROLL_DEG, MAX_ROLL_DEG))
        x = np.cos(roll) * x + np.sin(roll) * np.cross(z, x)
        R = np.stack([x, np.cross(z, x), z], axis=1)
        T = make_transform(R, centre - R @ centre_board)
        if _inside(cam, _board_corners(board) @ R.T + T[:3, 3]):
            return T
    raise ActionImagesError("found no free board pose inside the image")  # pragma: no cover


# --------------------------------------------------------------------------- the check
def _intrinsics_session(
    spec: BoardSpec, names: list[str], views: int, size: int, rng: np.random.Generator
) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """Step 1: the free board shown to each camera ``views`` times; intrinsics per camera."""
    scene = CalibrationScene(spec, size, held=False)
    detector = BoardDetector(spec)
    out, images = {}, {c: [] for c in names}
    try:
        for c in names:
            cam = scene.true_camera(c)  # aims the board only
            dets: list[Detection | None] = []
            for _ in range(views):
                scene.place_board(sample_free_pose(rng, spec, cam))
                img = scene.render(c)
                images[c].append(img)
                dets.append(detector.detect(img))
            out[c] = calibrate_intrinsics(dets, size, size, what=f"camera {c!r}")
    finally:
        scene.close()
    return out, images


def sim_check(
    seed: int = 0,
    cameras: Sequence[str] | None = None,
    poses: int = 16,
    image_size: int = 512,
    board: BoardSpec | str = DEFAULT_BOARD,
    intrinsic_views: int = 12,
    known_intrinsics: bool = False,
    refine_intrinsics: bool = False,
    save_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Calibrate the sim's fixed cameras from renders of the board; compare with the truth.

    Returns a JSON-ready dict whose ``reprojection_px``, ``position_error_mm`` and
    ``rotation_error_deg`` are the worst over the cameras, with per-camera details under
    ``cameras`` and ``passed`` (all three within :data:`TARGETS`). ``save_dir`` receives the renders
    (``intrinsics/CAMERA/INDEX.png`` of step 1, ``images/CAMERA/INDEX.png`` of step 2), the robot
    poses (``poses.json``), the intrinsics (``intrinsics/CAMERA.json``), the estimated calibration
    (``calibration.json``) and the true one (``truth.json``).
    """
    t0 = time.perf_counter()
    spec = board if isinstance(board, BoardSpec) else BoardSpec.parse(board)
    names = list(DEFAULT_CAMERAS if cameras is None else cameras)
    fixed = {c.name for c in FIXED_CAMERAS}
    unknown = [c for c in names if c not in fixed]
    if unknown or not names or len(set(names)) != len(names):
        raise ActionImagesError(f"bad cameras {names}; fixed cameras: {sorted(fixed)}")
    if poses < 4:
        raise ActionImagesError(f"poses must be at least 4, got {poses}")
    rng = np.random.default_rng(seed)
    intrinsics, intr_images = {}, {}
    if not known_intrinsics:
        intrinsics, intr_images = _intrinsics_session(spec, names, intrinsic_views, image_size, rng)
    t1 = time.perf_counter()
    scene = CalibrationScene(spec, image_size, held=True)
    detector = BoardDetector(spec)
    ee: list[np.ndarray] = []
    images: dict[str, list[np.ndarray]] = {c: [] for c in names}
    detections: dict[str, dict[int, Detection | None]] = {c: {} for c in names}
    try:
        truth = {c: scene.true_camera(c) for c in names}  # aims the board only; the solver never sees it
        aim = [truth[c] for c in names]
        attempts, seen = 0, dict.fromkeys(names, 0)
        while len(ee) < poses:
            attempts += 1
            if attempts > 20 * poses:
                raise ActionImagesError(f"reached only {len(ee)} of {poses} board poses in {attempts} tries")
            favour = min(names, key=lambda c: (seen[c], rng.random()))  # the camera with the fewest views
            tcp, R = sample_held_pose(rng, spec, aim, names.index(favour))
            if not scene.move(tcp, R):
                continue
            rendered = {c: scene.render(c) for c in names}
            found = {c: detector.detect(img) for c, img in rendered.items()}
            if found[favour] is None:  # hidden by the arm: the operator would try another pose
                continue
            k = len(ee)
            ee.append(scene.ee_pose())
            if k == 0:
                true_board_in_ee = invert(ee[0]) @ scene.board_pose()
            for c in names:
                detections[c][k] = found[c]
                seen[c] += found[c] is not None
                images[c].append(rendered[c])
    finally:
        scene.close()
    t2 = time.perf_counter()
    views = {
        c: CameraViews(
            image_size, image_size, detections[c], truth[c].K if known_intrinsics else intrinsics[c].K
        )
        for c in names
    }
    result = calibrate_extrinsics(views, np.stack(ee), refine_intrinsics=refine_intrinsics)
    per_cam = {}
    for c in names:
        est, true = result.cameras[c], truth[c]
        dp, dr = pose_errors(est.cam_to_world, true.cam_to_world)
        f_true = true.K[0, 0]
        entry = {
            "reprojection_px": result.reprojection_px[c],
            "max_residual_px": result.max_residual_px[c],
            "position_error_mm": dp * 1000.0,
            "rotation_error_deg": dr,
            "focal_error_pct": 100.0 * float(np.abs(np.diag(est.K)[:2] - f_true).max() / f_true),
            "principal_point_error_px": float(np.abs(est.K[:2, 2] - true.K[:2, 2]).max()),
            "views": result.views_used[c],
        }
        if c in intrinsics:
            entry["intrinsics_views"] = intrinsics[c].views
            entry["intrinsics_reprojection_px"] = intrinsics[c].reprojection_px
        per_cam[c] = entry
    worst = {k: max(per_cam[c][k] for c in names) for k in TARGETS}
    dX = pose_errors(result.board_in_ee, true_board_in_ee)
    out = {
        **worst,
        "passed": all(worst[k] <= v for k, v in TARGETS.items()),
        "targets": TARGETS,
        "seed": seed,
        "poses": poses,
        "image_size": image_size,
        "intrinsics": (
            "given (the sim's K)"
            if known_intrinsics
            else f"estimated: {intrinsic_views} free-board views per camera (cv2.calibrateCamera)"
            + (", refined in the bundle adjustment" if refine_intrinsics else "")
        ),
        "board_in_ee_error": {"position_mm": dX[0] * 1000.0, "rotation_deg": dX[1]},
        "board": spec.to_dict(),
        "cameras": per_cam,
        "seconds": {
            "intrinsics": round(t1 - t0, 2),
            "extrinsics_render_detect": round(t2 - t1, 2),
            "solve": round(time.perf_counter() - t2, 2),
            "total": round(time.perf_counter() - t0, 2),
        },
    }
    if save_dir is not None:
        _save(Path(save_dir), names, spec, ee, images, intr_images, intrinsics, result, truth)
    return out


def _save(save, names, spec, ee, images, intr_images, intrinsics, result, truth) -> None:
    cv2 = _cv2()

    def png(path: Path, img: np.ndarray) -> None:
        ok, data = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        write_bytes_atomic(path, data.tobytes())

    for c in names:
        for k, img in enumerate(images[c]):
            png(save / "images" / c / f"{k:03d}.png", img)
        for k, img in enumerate(intr_images.get(c, [])):
            png(save / "intrinsics" / c / f"{k:03d}.png", img)
        if c in intrinsics:
            write_json_atomic(save / "intrinsics" / f"{c}.json", intrinsics[c].to_dict(), indent=2)
    poses = [np.concatenate([T[:3, 3], matrix_to_euler(T[:3, :3])]).tolist() for T in ee]
    write_json_atomic(save / "poses.json", {"frame": "tool centre point in the robot base", "poses": poses})
    save_calibration(
        save / "calibration.json",
        calibration_dict(result.cameras, result.reprojection_px, spec.to_dict(), source="sim-check"),
    )
    save_calibration(
        save / "truth.json", calibration_dict(truth, dict.fromkeys(names, 0.0), spec.to_dict(), source="sim")
    )
