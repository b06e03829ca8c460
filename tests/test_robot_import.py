"""``dataset convert`` of your own robot's LeRobot data: poses from joint positions through MuJoCo
forward kinematics (or from a pose column), cameras from the calibration file, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from actionimages.cli import main

sim = pytest.importorskip("actionimages.sim")

CAMERAS = ("front", "overhead")
JOINTS = ["--joints-column", "observation.state[0:7]", "--mjcf", "panda"]
GRIPPER = ["--gripper-column", "observation.state[7]", "--gripper-range", "0,0.04"]


@pytest.fixture(scope="module")
def robot_data(tmp_path_factory):
    """Two sim episodes written as a robot's LeRobot recording (joint positions + videos only), the
    true poses, and a calibration file of the sim's cameras."""
    from actionimages.calibrate import calibration_dict, save_calibration
    from actionimages.data.fixtures import write_robot_lerobot
    from actionimages.sim.rollout import record_expert_episode

    root = tmp_path_factory.mktemp("robot")
    recs = [record_expert_episode("reach_target", s, image_size=64, cameras=CAMERAS) for s in (0, 1)]
    src = write_robot_lerobot(
        root / "lerobot",
        [{"frames": r.frames, "joints": r.joints, "instruction": r.instruction, "fps": r.fps} for r in recs],
    )
    calib = root / "calibration.json"
    save_calibration(calib, calibration_dict(recs[0].cameras, dict.fromkeys(CAMERAS, 0.0)))
    return src, calib, recs


def _convert(*argv):
    return main(["dataset", "convert", *map(str, argv)])


def _rotation_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from actionimages.codec.poses import euler_to_matrix, rotation_angle_between

    return np.degrees(rotation_angle_between(euler_to_matrix(a), euler_to_matrix(b)))


def test_joint_positions_import_to_the_true_poses(robot_data, tmp_path, capsys):
    from actionimages.calibrate import load_calibration
    from actionimages.data import DatasetReader

    src, calib, recs = robot_data
    assert (
        "actionimages/calibration"
        not in pq.read_schema(next((src / "meta/episodes").rglob("*.parquet"))).names
    )
    with pytest.raises(Exception, match="missing calibration"):  # our reader alone cannot use it
        DatasetReader(src).episode(0)
    # a robot's recording: no rot6d twin computed from joints as if they were Euler angles
    assert "action.rot6d" not in pq.read_schema(next((src / "data").rglob("*.parquet"))).names
    assert main(["dataset", "check", str(src)]) == 1
    checked = capsys.readouterr().out
    assert "rot6d" not in checked and "dataset convert" in checked  # the way forward, named
    out = tmp_path / "out"
    assert _convert(src, out, *JOINTS, *GRIPPER, "--calibration", calib, "--task", "reach_target") == 0
    assert "wrote 2 episodes" in capsys.readouterr().out
    reader, truth = DatasetReader(out), load_calibration(calib)
    for i, rec in enumerate(recs):
        ep = reader.episode(i)
        pos_err = np.linalg.norm(ep.actions[:, :3] - rec.state[:, :3], axis=1)
        assert pos_err.max() < 1e-4  # m: float32 joints through FK, far below a millimetre
        assert _rotation_deg(ep.actions[:, 3:6], rec.state[:, 3:6]).max() < 0.01
        np.testing.assert_allclose(ep.actions[:, 6], rec.state[:, 6], atol=0.02)  # finger gap -> openness
        assert ep.instruction == rec.instruction and ep.task == "reach_target" and ep.fps == rec.fps
        assert "forward kinematics" in ep.info["pose"]
        for c in CAMERAS:
            np.testing.assert_allclose(ep.cameras[c].cam_to_world, truth[c].cam_to_world)
        frame = ep.frames["front"][[-1]][0].astype(float)  # encoded twice (robot, then import): H.264 noise
        assert np.abs(frame - rec.frames["front"][-1]).mean() < 2
    assert main(["dataset", "check", str(out), "--full"]) == 0
    assert "OK: 2 episodes" in capsys.readouterr().out
    assert _convert(src, out, *JOINTS, *GRIPPER, "--calibration", calib) == 0  # re-run: nothing new
    assert "skipped 2 already converted" in capsys.readouterr().out


def test_a_pose_column_imports_too(robot_data, tmp_path):
    from actionimages.codec.poses import euler_to_quat
    from actionimages.data import DatasetReader

    src, calib, recs = robot_data
    copy = tmp_path / "with_pose"
    shutil.copytree(src, copy)
    for path in sorted((copy / "data").rglob("*.parquet")):  # add [x, y, z, qx, qy, qz, qw] poses
        table = pq.read_table(path)
        ep = int(table.column("episode_index")[0].as_py())
        st = recs[ep].state
        pose = np.concatenate([st[:, :3], euler_to_quat(st[:, 3:6])], 1).astype(np.float32)
        table = table.append_column(
            "observation.ee_pose", pa.FixedSizeListArray.from_arrays(pose.reshape(-1), 7)
        )
        pq.write_table(table, path)
    import json

    info = json.loads((copy / "meta/info.json").read_text())
    info["features"]["observation.ee_pose"] = {"dtype": "float32", "shape": [7], "names": None}
    (copy / "meta/info.json").write_text(json.dumps(info))
    out = tmp_path / "out"
    pose = ["--pose-column", "observation.ee_pose", "--pose-format", "quat"]
    assert (
        _convert(
            copy, out, *pose, *GRIPPER, "--calibration", calib, "--camera", "observation.images.front=front"
        )
        == 0
    )
    ep = DatasetReader(out).episode(1)
    assert list(ep.cameras) == ["front"]  # only the mapped camera
    assert np.abs(ep.actions[:, :3] - recs[1].state[:, :3]).max() < 1e-6
    assert _rotation_deg(ep.actions[:, 3:6], recs[1].state[:, 3:6]).max() < 0.01


def test_bad_imports_get_clear_errors(robot_data, tmp_path, capsys):
    from actionimages.calibrate import calibration_dict, save_calibration

    src, calib, recs = robot_data
    front_only = tmp_path / "front_only.json"
    save_calibration(front_only, calibration_dict({"front": recs[0].cameras["front"]}, {"front": 0.0}))
    nan = tmp_path / "nan"
    shutil.copytree(src, nan)
    path = sorted((nan / "data").rglob("*.parquet"))[0]
    table = pq.read_table(path)
    state = np.asarray(table.column("observation.state").to_pylist(), dtype=np.float32)
    state[3, 2] = np.nan
    column = pa.FixedSizeListArray.from_arrays(state.reshape(-1), state.shape[1])
    pq.write_table(
        table.set_column(table.column_names.index("observation.state"), "observation.state", column), path
    )
    base = [*GRIPPER, "--calibration", calib]
    cases = [
        (
            (src, *JOINTS, *GRIPPER, "--calibration", front_only),
            "missing calibration for camera key observation.images.overhead",
        ),
        (
            (src, "--joints-column", "observation.joints", "--mjcf", "panda", *base),
            "no column 'observation.joints'",
        ),
        (
            (src, "--joints-column", "observation.state", "--mjcf", "panda", *base),
            "gives 9 joint values per frame",
        ),
        ((src, *JOINTS, "--ee-site", "nope", *base), "no site 'nope'"),
        (
            (
                src,
                *JOINTS,
                "--gripper-column",
                "observation.state[7]",
                "--gripper-range",
                "0,0.01",
                "--calibration",
                calib,
            ),
            "outside --gripper-range",
        ),
        ((nan, *JOINTS, *base), "NaN or infinity at frame 3"),
        ((src, "--pose-column", "observation.state[0:7]", *base), "needs 6"),
        ((src, *JOINTS, *base, "--camera", "observation.images.side=front"), "not a video"),
        ((src, "--calibration", calib), "name the end-effector pose source"),
        ((src, *JOINTS, *GRIPPER), "--calibration"),
        (
            (
                src,
                "--joints-column",
                "observation.state[0:7]",
                "--mjcf",
                tmp_path / "none.xml",
                "--ee-site",
                "tcp",
                *base,
            ),
            "does not exist",
        ),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert _convert(argv[0], tmp_path / "out", *argv[1:]) == 2, message
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (message, err)
