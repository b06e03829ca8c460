"""MJCF for the benchmark scene: a table, the Franka Panda, calibrated cameras and task objects.

The world frame is the robot base frame (METHOD.md §2): the robot's ``link0`` stands at the origin
on the table top (``z = 0``), facing ``+x``. Scenes are set up to render fast in software EGL:
no shadows, no reflections, no anti-aliasing, no textures, low-poly meshes.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the mujoco import

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from actionimages.codec.camera import Camera
from actionimages.errors import ActionImagesError

ASSETS = Path(__file__).resolve().parent / "assets"
FRANKA_DIR = ASSETS / "franka"
MESH_NAMES = ("link0", "link1", "link2", "link3", "link4", "link5", "link6", "link7", "hand", "finger")

TABLE_X = (-0.35, 1.05)  # table top extent (m), robot base on it at the origin
TABLE_Y = (-0.75, 0.75)
TABLE_THICKNESS = 0.04
TABLE_HEIGHT = 0.75  # floor at z = -TABLE_HEIGHT

TCP_Z = 0.125  # tool centre point in the hand frame: between the finger pads, 2.8 cm above the tips
FINGER_MAX = 0.04  # each finger slides 0..4 cm: openness 1 = 8 cm gap

# Joint-space PD gains of the position actuators: stiff enough that a target a few cm away is reached
# within one 0.1 s control step (gravity is compensated in the bodies, so no steady-state sag).
# Measured: ~1.3 mm mean / 2.7 mm max position error after random 4 cm steps.
ARM_KP = (20000.0,) * 4 + (5000.0,) * 3
ARM_KV = (500.0,) * 4 + (100.0,) * 3
ARM_FORCE = (400.0,) * 4 + (100.0,) * 3  # stiffer than the real arm's 87/12 N·m: tight tracking


@dataclass(frozen=True)
class CameraSpec:
    """A fixed camera as eye/target/vertical field of view (world frame, metres, degrees)."""

    name: str
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    fovy: float


# RLBench-like placements around the table: a front camera facing the robot, two cameras over the
# robot's shoulders and one overhead; plus the wrist camera on the hand (defined in panda.xml).
FIXED_CAMERAS: tuple[CameraSpec, ...] = (
    CameraSpec("front", (1.30, 0.0, 0.85), (0.45, 0.0, 0.05), 45.0),
    CameraSpec("left_shoulder", (0.05, 0.70, 0.95), (0.55, -0.05, 0.05), 50.0),
    CameraSpec("right_shoulder", (0.05, -0.70, 0.95), (0.55, 0.05, 0.05), 50.0),
    CameraSpec("overhead", (0.42, 0.0, 1.35), (0.52, 0.0, 0.0), 45.0),
)
WRIST_CAMERA = "wrist"
ALL_CAMERAS: tuple[str, ...] = tuple(c.name for c in FIXED_CAMERAS) + (WRIST_CAMERA,)
DEFAULT_CAMERAS: tuple[str, ...] = tuple(c.name for c in FIXED_CAMERAS)


def look_at_rotation(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world rotation (3, 3) for a camera at ``eye`` looking at ``target``."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(z, [1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def opencv_to_mujoco_quat(R_cv: np.ndarray) -> np.ndarray:
    """MuJoCo camera quaternion (wxyz) from an OpenCV camera-to-world rotation.

    MuJoCo cameras look along their -z with +y up; OpenCV cameras look along +z with +y down,
    so the two frames differ by flipping the y and z axes.
    """
    R_mj = R_cv @ np.diag([1.0, -1.0, -1.0])
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, R_mj.reshape(-1))
    return q


def mujoco_camera(model: mujoco.MjModel, data: mujoco.MjData, name: str, width: int, height: int) -> Camera:
    """The calibrated :class:`Camera` of MuJoCo camera ``name`` in the current state.

    K from the vertical field of view (pixel centres at integer coordinates, so the principal point
    is ``((W-1)/2, (H-1)/2)``); cam_to_world from MuJoCo's camera frame with y and z flipped.
    """
    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cid < 0:
        raise ActionImagesError(f"no camera named {name!r}; cameras: {list(ALL_CAMERAS)}")
    fovy = np.deg2rad(model.cam_fovy[cid])
    f = 0.5 * height / np.tan(fovy / 2.0)
    K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    T = np.eye(4)
    T[:3, :3] = data.cam_xmat[cid].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
    T[:3, 3] = data.cam_xpos[cid]
    return Camera(K, T, width, height)


PANDA_DEFAULTS = """\
<default class="panda">
      <joint pos="0 0 0" axis="0 0 1" armature="0.1" damping="1"/>
      <default class="panda_viz">
        <geom contype="0" conaffinity="0" group="1" type="mesh" rgba="0.95 0.95 0.93 1" mass="0"/>
      </default>
      <default class="panda_col">
        <geom contype="1" conaffinity="1" group="3" type="mesh"/>
      </default>
      <default class="panda_arm"><joint damping="1"/></default>
      <default class="panda_forearm"><joint damping="0.5"/></default>
      <default class="panda_finger">
        <joint damping="2" armature="0.01"/>
        <geom friction="1.5 0.05 0.001" condim="4" group="3" contype="1" conaffinity="1" mass="0"
              solref="0.004 1" solimp="0.95 0.99 0.001" rgba="0.3 0.3 0.3 1"/>
      </default>
    </default>
"""  # the Panda's joint and geom classes: shared by the scene and robot_mjcf()


def _robot_xml() -> str:
    text = (FRANKA_DIR / "panda.xml").read_text()
    text = text[text.index("-->") + 3 :]  # drop the header comment
    return text.replace("{TCP_Z}", f"{TCP_Z}")


def _mesh_assets() -> str:
    lines = []
    for n in MESH_NAMES:
        scale = ' scale="1.75 1.0 1.75"' if n == "finger" else ""
        lines.append(f'<mesh name="{n}_col" file="{FRANKA_DIR / "meshes" / (n + ".stl")}"{scale}/>')
    return "\n    ".join(lines)


def _camera_xml() -> str:
    out = []
    for spec in FIXED_CAMERAS:
        q = opencv_to_mujoco_quat(look_at_rotation(np.array(spec.eye), np.array(spec.target)))
        pos = " ".join(f"{v:.6f}" for v in spec.eye)
        quat = " ".join(f"{v:.8f}" for v in q)
        out.append(f'<camera name="{spec.name}" pos="{pos}" quat="{quat}" fovy="{spec.fovy}"/>')
    return "\n    ".join(out)


def build_scene_xml(objects_xml: str = "", contact_xml: str = "", timestep: float = 0.002) -> str:
    """Full MJCF of the scene with the task's ``objects_xml`` (bodies pasted into the worldbody) and
    ``contact_xml`` (``<exclude>`` pairs: MuJoCo does not filter a child of a static body against it).

    The robot is drawn with its low-poly collision meshes: about 10x faster to render in software
    than the detailed visual meshes, and still recognisable at 128-256 px.
    """
    arm_act = "\n    ".join(
        f'<position name="act{i + 1}" joint="joint{i + 1}" kp="{ARM_KP[i]}" kv="{ARM_KV[i]}" '
        f'forcerange="{-ARM_FORCE[i]} {ARM_FORCE[i]}"/>'
        for i in range(7)
    )
    cx, cy = (TABLE_X[0] + TABLE_X[1]) / 2, (TABLE_Y[0] + TABLE_Y[1]) / 2
    sx, sy = (TABLE_X[1] - TABLE_X[0]) / 2, (TABLE_Y[1] - TABLE_Y[0]) / 2
    return f"""
<mujoco model="actionimages_bench">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0" offsamples="0" numslices="12" numstacks="8" numquads="1"/>
    <global offwidth="512" offheight="512"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
    <map znear="0.01" zfar="8"/>
  </visual>
  <!-- znear/zfar scale with the extent: without this the walls make it ~11 m and the wrist camera
       would clip everything within 22 cm of its lens -->
  <statistic extent="2" center="0.4 0 0.3"/>
  <asset>
    {_mesh_assets()}
    <material name="table" rgba="0.62 0.50 0.38 1" reflectance="0" specular="0.1"/>
    <material name="floor" rgba="0.32 0.33 0.36 1" reflectance="0" specular="0"/>
    <material name="wall" rgba="0.80 0.82 0.85 1" reflectance="0" specular="0"/>
  </asset>
  <default>
    <geom solref="0.004 1" solimp="0.95 0.99 0.001"/>
    <default class="cabinet"><geom friction="1 0.01 0.001"/></default>
    <default class="scenery"><geom contype="0" conaffinity="0"/></default>
    <default class="finger_act">
      <position kp="1500" kv="20" forcerange="-70 70" ctrlrange="0 {FINGER_MAX}"/>
    </default>
    {PANDA_DEFAULTS}
  </default>
  <worldbody>
    <light name="key" pos="0.6 -0.6 2.2" dir="-0.2 0.3 -1" directional="true" castshadow="false"
           diffuse="0.55 0.55 0.55" specular="0 0 0"/>
    <geom name="floor" type="plane" size="4 4 0.1" pos="0 0 {-TABLE_HEIGHT}" material="floor"/>
    <geom name="wall_back" type="box" size="0.02 3 1.5" pos="-1.6 0 0.5" material="wall" class="scenery"/>
    <geom name="wall_front" type="box" size="0.02 3 1.5" pos="2.6 0 0.5" material="wall" class="scenery"/>
    <geom name="wall_left" type="box" size="3 0.02 1.5" pos="0.5 2.0 0.5" material="wall" class="scenery"/>
    <geom name="wall_right" type="box" size="3 0.02 1.5" pos="0.5 -2.0 0.5" material="wall" class="scenery"/>
    <geom name="table" type="box" size="{sx} {sy} {TABLE_THICKNESS / 2}"
          pos="{cx} {cy} {-TABLE_THICKNESS / 2}" material="table" friction="1 0.005 0.0001"/>
    {_camera_xml()}
    {_robot_xml()}
    {objects_xml}
  </worldbody>
  <contact>
    {contact_xml}
  </contact>
  <actuator>
    {arm_act}
    <position name="act_finger1" joint="finger1" class="finger_act"/>
    <position name="act_finger2" joint="finger2" class="finger_act"/>
  </actuator>
</mujoco>
"""


def robot_mjcf() -> str:
    """A standalone MJCF of the benchmark's Panda alone (no table, cameras or actuators).

    ``actionimages dataset convert --mjcf panda`` computes forward kinematics with it; its ``tcp`` site
    is the sim's tool centre point, so poses from its joint angles are the sim's ``ee_pose``.
    """
    return f"""
<mujoco model="actionimages_panda">
  <compiler angle="radian" autolimits="true"/>
  <asset>
    {_mesh_assets()}
  </asset>
  <default>
    {PANDA_DEFAULTS}
  </default>
  <worldbody>
    {_robot_xml()}
  </worldbody>
</mujoco>
"""


def load_model(objects_xml: str = "", contact_xml: str = "") -> mujoco.MjModel:
    """Compile the scene; a malformed task snippet raises :class:`ActionImagesError`."""
    xml = build_scene_xml(objects_xml, contact_xml)
    try:
        return mujoco.MjModel.from_xml_string(xml)
    except ValueError as exc:
        raise ActionImagesError(f"scene MJCF failed to compile: {exc}") from exc
