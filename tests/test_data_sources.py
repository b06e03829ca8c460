"""Readers of the paper's layouts (RLBench release, DROID, Bridge) on fixtures built in each layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from actionimages.codec import euler_to_matrix
from actionimages.data import detect_kind, open_source
from actionimages.data.fixtures import write_bridge_episode, write_droid_episode, write_rlbench_episode
from actionimages.data.sample import SampleBuilder
from actionimages.data.sources import BridgeReader, DroidReader, RLBenchReader
from actionimages.errors import ActionImagesError, DataError


def _frame_ids(frames: np.ndarray) -> list[int]:
    """Recover the stamped frame numbers (top-left 4x4 block = t*13 mod 256)."""
    vals = frames[:, 1:3, 1:3].reshape(len(frames), -1).mean(1)
    return [int(round(v / 13)) for v in vals]


@pytest.fixture(scope="module")
def rlbench_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("rlbench")
    refs = [
        write_rlbench_episode(root / "reach_target" / "episode0", steps=18, seed=0),
        write_rlbench_episode(root / "reach_target" / "episode1", steps=9, seed=1, per_step_params=True),
    ]
    (root / "reach_target" / "episode0" / "instruction.txt").write_text("reach the red target\n")
    return root, refs


def test_rlbench_reader(rlbench_root):
    root, refs = rlbench_root
    r = RLBenchReader(root)
    assert len(r) == 2 and detect_kind(root) == "rlbench" and isinstance(open_source(root), RLBenchReader)
    ep = r.episode(0)
    assert ep.num_frames == 5 and r.num_frames(0) == 5 and r.num_frames(1) == 3  # ceil(steps / 4)
    ref = refs[0]["actions"][::4]  # quaternions -> Euler, subsampled [::4]
    np.testing.assert_allclose(ep.actions[:, [0, 1, 2, 6]], ref[:, [0, 1, 2, 6]], atol=1e-9)
    np.testing.assert_allclose(euler_to_matrix(ep.actions[:, 3:6]), euler_to_matrix(ref[:, 3:6]), atol=1e-9)
    assert ep.instruction == "reach the red target" and ep.task == "reach_target" and ep.fps == 5.0
    assert r.episode(1).instruction == "reach target"  # from the task directory name
    assert ep.camera_names == ["view0", "view1"] and len(ep.cameras["view0"]) == 5
    np.testing.assert_allclose(ep.camera_at("view1", 2).K, refs[0]["cameras"]["view1"].K)
    frames = np.asarray(ep.frames["view1"])
    assert _frame_ids(frames) == [0, 1, 2, 3, 4]
    assert np.abs(frames.astype(int) - refs[0]["frames"]["view1"]).mean() < 2.0
    ep1 = r.episode(1)  # per-step camera params are subsampled like the actions
    assert len(ep1.cameras["view0"]) == 3
    s = SampleBuilder(num_frames=5, num_views=2, height=32, width=32, training=False)(ep)
    assert s["frame_valid"].all() and s["rgb"].shape == (2, 3, 5, 32, 32)


def test_rlbench_bad_input(tmp_path):
    d = tmp_path / "t" / "ep"
    write_rlbench_episode(d, steps=8)
    np.save(d / "actions.npy", np.zeros((8, 7)))
    with pytest.raises(DataError, match=r"actions\.npy must hold actions of shape \(T, 8\)"):
        RLBenchReader(tmp_path).episode(0)
    write_rlbench_episode(d, steps=8)
    (d / "view1" / "camera_params.json").unlink()
    with pytest.raises(DataError, match="rlbench episode 0.*missing calibration.*view1"):
        RLBenchReader(tmp_path).episode(0)
    write_rlbench_episode(d, steps=8)
    (d / "view1" / "rgb" / "video.mp4").unlink()
    with pytest.raises(DataError, match="camera count differs from video count"):
        RLBenchReader(tmp_path).episode(0)
    write_rlbench_episode(d, steps=8)
    np.save(d / "actions.npy", np.zeros((20, 8)) + [0, 0, 0, 0, 0, 0, 1, 1])
    with pytest.raises(DataError, match="frame-count mismatch"):
        RLBenchReader(tmp_path).episode(0)
    write_rlbench_episode(d, steps=8)
    (d / "view0" / "camera_params.json").write_text(json.dumps({"intrinsics": [[1, 0, 0]] * 2}))
    with pytest.raises(DataError, match="missing calibration"):
        RLBenchReader(tmp_path).episode(0)
    write_rlbench_episode(d, steps=8)
    (d / "view0" / "rgb" / "video.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match=r"view0.*video\.mp4"):
        RLBenchReader(tmp_path).episode(0)
    write_rlbench_episode(d, steps=8)
    params = json.loads((d / "view1" / "camera_params.json").read_text())
    for bad in ("fx", [["a", 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 0, 0], [0, 1]]):  # text, text, ragged
        (d / "view1" / "camera_params.json").write_text(json.dumps({**params, "intrinsics": bad}))
        with pytest.raises(DataError, match=r"rlbench episode 0.*view1/camera_params\.json.*bad calibration"):
            RLBenchReader(tmp_path).episode(0)
    K = params["intrinsics"]
    K = K[0] if isinstance(K[0][0], list) else K
    for field, bad in (  # JSON true is an int to Python: it would pass as 1.0
        ("intrinsics", True),
        ("intrinsics", [[True, 0, K[0][2]], K[1], K[2]]),
        ("extrinsics", [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, True]]),
    ):
        (d / "view1" / "camera_params.json").write_text(json.dumps({**params, field: bad}))
        with pytest.raises(
            DataError, match=rf"view1/camera_params\.json: {field} must be numbers.*boolean true"
        ):
            RLBenchReader(tmp_path).episode(0)


def test_droid_reader(tmp_path):
    refs = [write_droid_episode(tmp_path / f"ep{i}", steps=13, seed=i) for i in range(2)]
    r = DroidReader(tmp_path)
    assert detect_kind(tmp_path) == "droid" and len(r) == 2
    ep = r.episode(1)
    keep = [0, 4, 8, 12]
    assert ep.num_frames == 4 and r.num_frames(1) == 4 and ep.fps == pytest.approx(15 / 4)
    np.testing.assert_allclose(ep.actions[:, :6], refs[1]["actions"][keep, :6], atol=1e-9)
    np.testing.assert_allclose(ep.actions[:, 6], 1.0 - refs[1]["gripper"][keep])  # 1 = closed in DROID
    assert ep.instruction == "droid instruction 1" and ep.has_actions
    assert ep.is_static("ext1") and not ep.is_static("ext2")
    np.testing.assert_allclose(
        ep.cameras["ext1"].cam_to_world, refs[1]["cameras"]["front"].cam_to_world, atol=1e-9
    )
    np.testing.assert_allclose(ep.camera_at("ext2", 3).K, refs[1]["cameras"]["side"].K)
    frames = np.asarray(ep.frames["ext2"])
    assert _frame_ids(frames) == keep  # stride-4 subsample of the 15 Hz stream
    assert np.abs(frames.astype(int) - refs[1]["frames"]["ext2"][keep]).mean() < 2.0


def test_droid_bad_input(tmp_path):
    d = tmp_path / "ep"
    write_droid_episode(d, steps=9)
    z = dict(np.load(d / "trajectory.npz"))
    z["cartesian_position"] = z["cartesian_position"][:, :5]
    np.savez(d / "trajectory.npz", **z)
    with pytest.raises(DataError, match=r"droid episode 0.*cartesian_position must be \(T, 6\)"):
        DroidReader(tmp_path).episode(0)
    write_droid_episode(d, steps=9)
    z = dict(np.load(d / "trajectory.npz"))
    del z["ext2_extrinsics"]
    np.savez(d / "trajectory.npz", **z)
    with pytest.raises(DataError, match="missing calibration for ext2"):
        DroidReader(tmp_path).episode(0)
    write_droid_episode(d, steps=9)
    (d / "ext1.mp4").unlink()
    with pytest.raises(DataError, match="camera count differs from video count"):
        DroidReader(tmp_path).episode(0)
    write_droid_episode(d, steps=9)
    meta = json.loads((d / "metadata.json").read_text())
    (d / "metadata.json").write_text(json.dumps({**meta, "ext1_intrinsics": ["fx", 1, 2, 3]}))
    with pytest.raises(DataError, match="droid episode 0.*ext1: intrinsics must be numbers"):
        DroidReader(tmp_path).episode(0)
    (d / "metadata.json").write_text(json.dumps({**meta, "ext1_intrinsics": [300.0, True, 2, 3]}))
    with pytest.raises(DataError, match="droid episode 0.*ext1: intrinsics must be numbers.*boolean true"):
        DroidReader(tmp_path).episode(0)


def test_bridge_reader(tmp_path):
    write_bridge_episode(tmp_path / "raw" / "traj0", steps=6)
    refs = write_bridge_episode(tmp_path / "raw" / "traj1", steps=5, as_video=True)
    r = BridgeReader(tmp_path)
    assert detect_kind(tmp_path) == "bridge" and len(r) == 2
    ep = r.episode(0)
    assert not ep.has_actions and ep.num_frames == 6 and np.all(ep.actions == 0)
    assert ep.instruction == "put the spoon in the pot" and ep.info["calibration"] == "estimated"
    assert _frame_ids(np.asarray(ep.frames["images0"])) == list(range(6))
    ep1 = r.episode(1)
    assert ep1.camera_names == ["images0", "images1"] and ep1.info["calibration"] == "given"
    np.testing.assert_allclose(ep1.cameras["images1"].K, refs["cameras"]["side"].K)
    s = SampleBuilder(num_frames=5, num_views=2, height=16, width=16, training=False)(ep1)
    assert not bool(s["has_actions"]) and float(s["action_images"].max()) == -1.0
    with pytest.raises(DataError, match="samples need 2 views"):
        SampleBuilder(num_frames=5, num_views=2, height=16, width=16, training=False)(ep)
    (tmp_path / "raw" / "traj0" / "images0" / "im_3.jpg").write_bytes(b"broken")
    with pytest.raises(DataError, match="im_3.jpg"):
        np.asarray(r.episode(0).frames["images0"])


def test_droid_converts_to_lerobot_at_fractional_fps(tmp_path):
    from actionimages.data import DatasetReader, DatasetWriter

    write_droid_episode(tmp_path / "droid" / "ep0", steps=13, seed=0)
    src = DroidReader(tmp_path / "droid")
    ep = src.episode(0)
    with DatasetWriter(tmp_path / "out", fps=ep.fps) as w:
        w.add_episode(ep)
    back = DatasetReader(tmp_path / "out").episode(0)
    assert back.fps == pytest.approx(3.75) and back.num_frames == 4
    assert _frame_ids(np.asarray(back.frames["ext1"])) == [0, 4, 8, 12]
    np.testing.assert_allclose(back.actions, ep.actions, atol=1e-6)
    assert not back.is_static("ext2") and len(back.cameras["ext2"]) == 4


def test_source_registry_walk(tmp_path):
    """Every registered dataset kind has a reader that can be opened by name and a way to be
    detected; an unknown kind and an unrecognised tree are refused by name."""
    from actionimages.data import SOURCES, DatasetReader, register_source
    from actionimages.data.registry import source_kinds

    assert set(source_kinds()) >= {"lerobot", "rlbench", "droid", "bridge"}
    for kind, cls in SOURCES.items():
        assert cls.kind == kind
        detected = getattr(cls, "detected", True)  # False: opened only by name (robot)
        assert getattr(cls, "root_markers", ()) or not detected or cls.detection_markers()
        assert callable(getattr(cls, "episode", None))
    assert SOURCES["lerobot"] is DatasetReader
    with pytest.raises(ActionImagesError, match="unknown dataset kind"):
        open_source(tmp_path, kind="nope")
    (tmp_path / "x.txt").write_text("nothing here")
    with pytest.raises(DataError, match="not a lerobot"):
        detect_kind(tmp_path)
    with pytest.raises(TypeError, match="already registered"):

        @register_source
        class Other:
            kind = "droid"


def _convert(*argv):
    from actionimages.cli import main

    return main(["dataset", "convert", *map(str, argv)])


def test_convert_refuses_a_negative_limit(rlbench_root, tmp_path, capsys):
    assert _convert(rlbench_root[0], tmp_path / "out", "--limit", "-1") == 2
    assert "--limit must be 0 or more, got -1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_convert_rerun_adds_only_missing_episodes(rlbench_root, tmp_path, capsys):
    """Episodes are keyed by source path and episode: a re-run after a failure adds only the rest."""
    from actionimages.data import DatasetReader

    root, out = rlbench_root[0], tmp_path / "out"
    assert _convert(root, out, "--limit", "1") == 0  # an interrupted run, say
    assert "wrote 1 episodes" in capsys.readouterr().out
    assert _convert(root, out) == 0
    assert "wrote 1 episodes" in capsys.readouterr().out and len(DatasetReader(out)) == 2
    assert _convert(root, out) == 0
    assert "wrote 0 episodes to" in capsys.readouterr().out
    r = DatasetReader(out)
    assert len(r) == 2 and r.meta(1)["actionimages/key"].startswith("convert:sha256:")
    assert r.episode(1).info["converted_from"] == f"{root.resolve()}#reach_target/episode1"
    got, want = r.episode(1).actions, RLBenchReader(root).episode(1).actions
    np.testing.assert_allclose(got[:, [0, 1, 2, 6]], want[:, [0, 1, 2, 6]], atol=1e-5)
    turns = (got[:, 3:6] - want[:, 3:6]) / (2 * np.pi)  # Euler angles unwrapped: whole turns apart
    np.testing.assert_allclose(turns, np.round(turns), atol=1e-5)
    assert np.abs(np.diff(got[:, 3:6], axis=0)).max() < np.pi
    # a LeRobot dataset converts too, and re-converting it adds nothing
    assert _convert(out, tmp_path / "copy") == 0 and _convert(out, tmp_path / "copy") == 0
    assert len(DatasetReader(tmp_path / "copy")) == 2
    assert "skipped 2 already converted" in capsys.readouterr().out


def test_convert_keys_episodes_by_content_so_a_copy_elsewhere_adds_nothing(rlbench_root, tmp_path, capsys):
    import shutil

    from actionimages.data import DatasetReader

    root, out = rlbench_root[0], tmp_path / "out"
    assert _convert(root, out, "--fps", "5") == 0
    copy = tmp_path / "elsewhere" / "same_demos"
    shutil.copytree(root, copy)
    capsys.readouterr()
    assert _convert(copy, out) == 0
    assert "wrote 0 episodes" in capsys.readouterr().out and len(DatasetReader(out)) == 2
    assert _convert(copy, tmp_path / "fast", "--fps", "20") == 0  # the rate is the caller's to declare
    assert DatasetReader(tmp_path / "fast").episode(0).fps == 20.0
    assert _convert(copy, tmp_path / "bad", "--fps", "0") == 2
    assert "--fps" in capsys.readouterr().err


def test_convert_refuses_to_convert_a_dataset_into_itself(rlbench_root, tmp_path, capsys):
    from actionimages.data import DatasetReader

    out = tmp_path / "out"
    assert _convert(rlbench_root[0], out) == 0
    before = _tree(out)
    for dst in (out, tmp_path / "." / "out" / ".." / "out"):
        assert _convert(out, dst) == 2
        assert "same directory" in capsys.readouterr().err
    assert _tree(out) == before and len(DatasetReader(out)) == 2


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
