"""``actionimages collect`` and the episode recorder: expert demos in the project's dataset format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from actionimages.cli import main
from actionimages.sim.rollout import record_expert_episode, record_many

data = pytest.importorskip("actionimages.data")


def test_record_follows_the_action_convention():
    rec = record_expert_episode("pick_up_cube", seed=0, image_size=64, cameras=["front", "wrist"])
    T = rec.actions.shape[0]
    assert rec.success and rec.info["steps"] == T - 1
    assert rec.frames["front"].shape == (T, 64, 64, 3) and rec.frames["wrist"].shape == (T, 64, 64, 3)
    # actions[t] is the measured pose at frame t; its openness is the gripper command at frame t
    np.testing.assert_allclose(rec.actions[:, :6], rec.state[:, :6])
    assert rec.actions[0, 6] == 1.0 and set(np.unique(rec.actions[:, 6])) <= {0.0, 1.0}
    assert rec.actions[:, 6].min() == 0.0  # the expert closed the gripper on the cube
    closed = np.flatnonzero(rec.actions[:, 6] == 0.0)
    assert rec.state[closed[-1], 6] < 0.9  # and the measured openness followed
    assert len(rec.cameras["wrist"]) == T  # the wrist camera is per frame, fixed ones are static
    assert not isinstance(rec.cameras["front"], list)
    json.dumps(rec.info)


def test_parallel_recording_matches_serial():
    jobs = [("reach_target", 0), ("push_button", 1)]
    serial = list(record_many(jobs, workers=1, render=False))
    parallel = list(record_many(jobs, workers=2, render=False))
    for a, b in zip(serial, parallel, strict=True):
        assert a.task == b.task and a.instruction == b.instruction
        np.testing.assert_allclose(a.actions, b.actions)


def test_collect_cli_writes_a_readable_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["collect", "--task", "reach_target,push_button", "--episodes", "2", "--out", str(out)]
    rc = main(
        args + ["--image-size", "64", "--cameras", "front,wrist", "--workers", "1", "--seed", "3", "--quiet"]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kept"] == {"reach_target": 2, "push_button": 2}
    reader = data.DatasetReader(out)
    assert len(reader) == 4
    tasks = set()
    for i in range(4):
        ep = reader.episode(i)
        tasks.add(ep.task)
        assert ep.info["success"] is True and ep.fps == 10.0
        assert set(ep.cameras) == {"front", "wrist"}
        T = ep.actions.shape[0]
        assert ep.frames["front"].shape == (T, 64, 64, 3)
        np.testing.assert_allclose(ep.actions[:, :6], ep.state[:, :6], atol=1e-5)
    assert tasks == {"reach_target", "push_button"}

    # the same command again adds nothing; asking for more adds only the missing seeds
    assert (
        main(args + ["--image-size", "64", "--cameras", "front,wrist", "--workers", "1", "--seed", "3"]) == 0
    )
    captured = capsys.readouterr()
    rerun = json.loads(captured.out.strip().splitlines()[-1])
    assert rerun["kept"] == {"reach_target": 2, "push_button": 2} and len(data.DatasetReader(out)) == 4
    assert (
        rerun["skipped"] == {"reach_target": 2, "push_button": 2} and "skipped 4 episode(s)" in captured.err
    )
    args[args.index("--episodes") + 1] = "3"
    assert (
        main(args + ["--image-size", "64", "--cameras", "front,wrist", "--workers", "1", "--seed", "3"]) == 0
    )
    more = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert more["skipped"] == {"reach_target": 2, "push_button": 2} and len(data.DatasetReader(out)) == 6
    keys = [data.DatasetReader(out).meta(i)["actionimages/key"] for i in range(6)]
    assert keys[0] == "sim:reach_target/train/seed3" and len(set(keys)) == 6


def test_collect_cli_rejects_bad_names(tmp_path, capsys):
    assert main(["collect", "--task", "nope", "--episodes", "1", "--out", str(tmp_path / "a")]) == 2
    assert "reach_target" in capsys.readouterr().err
    assert (
        main(["collect", "--task", "reach_target", "--episodes", "1", "--split", "x", "--out", str(tmp_path)])
        == 2
    )
    assert "heldout" in capsys.readouterr().err


def test_collect_records_a_calibration_file_instead_of_the_truth(tmp_path, capsys):
    """``collect --calibration``: the dataset carries the file's cameras (here the truth moved by 1 cm,
    calibrated at 128 px for 64 px images), so calibration error can be measured; a recorded camera the
    file lacks is a named error."""
    from actionimages.calibrate import calibration_dict, save_calibration
    from actionimages.codec import Camera
    from actionimages.data.check import check_dataset
    from actionimages.sim import make_env

    env = make_env("reach_target", image_size=128, render=False)
    env.reset(seed=0)
    truth = env.cameras()
    env.close()
    off = {}
    for name in ("front", "overhead"):
        c2w = truth[name].cam_to_world.copy()
        c2w[:3, 3] += [0.01, 0.0, 0.0]  # 1 cm off
        off[name] = Camera(truth[name].K, c2w, 128, 128)
    calib = tmp_path / "calibration.json"
    save_calibration(calib, calibration_dict(off, dict.fromkeys(off, 0.2)))
    out = tmp_path / "ds"
    args = ["collect", "--task", "reach_target", "--episodes", "1", "--out", str(out), "--image-size", "64"]
    args += ["--workers", "1", "--quiet", "--calibration", str(calib)]
    assert main(args + ["--cameras", "front,overhead"]) == 0
    ep = data.DatasetReader(out).episode(0)
    assert ep.info["calibration"] == f"file {calib}"
    for name, cam in off.items():
        stored = ep.cameras[name]
        np.testing.assert_allclose(stored.cam_to_world, cam.cam_to_world)
        np.testing.assert_allclose(stored.K[:2, :2], cam.K[:2, :2] / 2)  # scaled to 64 px
        assert (stored.width, stored.height) == (64, 64)
    assert check_dataset(out).ok
    capsys.readouterr()
    assert main(args + ["--cameras", "front,wrist"]) == 2
    assert "no camera 'wrist'" in capsys.readouterr().err
