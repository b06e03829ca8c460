"""Euler angles of ``action`` / ``observation.state`` unwrapped along each episode: the writer, the
check that flags a 2*pi wrap, and ``dataset unwrap-euler`` that migrates an older dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from actionimages.cli import main
from actionimages.codec import euler_to_matrix, rot6d_to_matrix, rotation_angle_between
from actionimages.data import DatasetReader, check_dataset
from actionimages.data import lerobot as lr
from actionimages.data.lerobot import euler as eu
from actionimages.data.lerobot.stats import merge_stats, moments

POSES = ("action", "observation.state")


def _collect(out: Path) -> Path:
    argv = ["collect", "--task", "reach_target", "--episodes", "2", "--image-size", "64"]
    assert main([*argv, "--workers", "1", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """``(new, old)``: the same two sim episodes written by this writer and by one that, like the
    writer before the convention, stores SciPy's angles as they come (with its checksums and stats)."""
    base = tmp_path_factory.mktemp("euler")
    new = _collect(base / "new")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lr.writer, "unwrap_euler", lambda e: np.array(e, dtype=np.float64))
        mp.setattr(lr.writer, "mark_unwrapped", dict)
        old = _collect(base / "old")
    return new, old


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _max_step(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x[:, 3:6], axis=0)).max())


def _same_rotations(a: np.ndarray, b: np.ndarray) -> float:
    """Largest geodesic angle (rad) between the Euler rotations of pose rows ``a`` and ``b``."""
    return float(rotation_angle_between(euler_to_matrix(a[:, 3:6]), euler_to_matrix(b[:, 3:6])).max())


def test_unwrap_euler_keeps_rotations_and_is_idempotent():
    rng = np.random.default_rng(0)
    T = 50
    smooth = np.stack(
        [np.pi + np.cumsum(rng.normal(0, 0.05, T)), rng.normal(0, 0.1, T), rng.normal(0, 0.2, T)], 1
    )
    wrapped = (smooth + np.pi) % (2 * np.pi) - np.pi  # SciPy-style angles in [-pi, pi)
    wrapped[7, 2] += 4 * np.pi  # two whole turns
    wrapped[20] = np.nan  # skipped
    assert np.abs(np.diff(wrapped[:20], axis=0)).max() > np.pi
    out = eu.unwrap_euler(wrapped)
    ok = np.isfinite(out).all(1)
    assert np.isnan(out[20]).all() and ok.sum() == T - 1
    assert np.abs(np.diff(out[ok], axis=0)).max() < np.pi
    np.testing.assert_array_equal(out[0], wrapped[0])  # the first frame kept
    turns = (out[ok] - wrapped[ok]) / (2 * np.pi)
    np.testing.assert_allclose(turns, np.round(turns), atol=1e-9)  # whole turns only: same rotations
    np.testing.assert_array_equal(eu.unwrap_euler(out), out)  # bit for bit
    np.testing.assert_array_equal(eu.unwrap_euler(smooth), smooth)  # continuous angles are kept as they are
    jumps = eu.euler_jumps(wrapped[:20])
    assert jumps and all(j.wrap and j.turn_deg < 45 for j in jumps)
    assert eu.euler_jumps(out[:20]) == []


def test_written_actions_are_unwrapped_and_keep_the_experts_rotations(datasets):
    from actionimages.sim.rollout import record_expert_episode

    new, _ = datasets
    info = json.loads((new / "meta/info.json").read_text())
    assert info["actionimages"] == {"euler_angles": "unwrapped"}
    r = DatasetReader(new)
    assert r.euler_unwrapped and len(r) == 2
    wrapped_somewhere = False
    for i in range(len(r)):
        arrays = r.arrays(i)
        seed = r.meta(i)["actionimages/info"]["seed"]
        rec = record_expert_episode("reach_target", seed, image_size=64, render=False)
        wrapped_somewhere |= _max_step(rec.actions) > np.pi  # what the writer was given
        for pose, ref in (("action", rec.actions), ("observation.state", rec.state)):
            assert _max_step(arrays[pose]) < np.pi, (i, pose)  # no consecutive jump > pi in any angle
            assert _same_rotations(arrays[pose], ref) < 1e-5  # the expert's rotations (float32)
            np.testing.assert_allclose(arrays[pose][:, :3], ref[:, :3], atol=1e-6)
            np.testing.assert_allclose(arrays[pose][:, 6], ref[:, 6], atol=1e-6)
            twin = rot6d_to_matrix(arrays[pose + ".rot6d"])
            assert rotation_angle_between(twin, euler_to_matrix(ref[:, 3:6])).max() < 1e-5
    assert wrapped_somewhere  # the sim's top-down rx does flip between +pi and -pi
    stats = json.loads((new / "meta/stats.json").read_text())
    assert stats["action"]["std"][3] < 0.1  # rx: meaningful for mean/std normalisation now
    assert check_dataset(new, full=True, progress=False).ok


def test_a_wrapped_dataset_is_flagged_and_migrated(datasets, tmp_path, capsys):
    new, old = datasets
    root = tmp_path / "d"
    shutil.copytree(old, root)
    assert not DatasetReader(root).euler_unwrapped
    assert json.loads((root / "meta/stats.json").read_text())["action"]["std"][3] > 1  # the wrap's damage
    report = check_dataset(root, progress=False)
    assert not report.ok
    problems = report.problems()
    for pose in POSES:
        flagged = [p for p in problems if f"{pose} Euler angle rx jumps" in p]
        assert flagged and all("episode " in p and " frame " in p for p in flagged), problems
        assert f"Fix: actionimages dataset unwrap-euler {root}" in flagged[0]
    assert main(["dataset", "check", str(root)]) == 1
    assert "unwrap-euler" in capsys.readouterr().out

    assert main(["dataset", "unwrap-euler", str(root)]) == 0
    assert "unwrapped the Euler angles of 2 episodes" in capsys.readouterr().out
    assert check_dataset(root, full=True, progress=False).ok
    assert main(["dataset", "check", "--full", str(root)]) == 0
    capsys.readouterr()
    r, r_old, r_new = DatasetReader(root), DatasetReader(old), DatasetReader(new)
    assert r.euler_unwrapped
    merged = {pose: None for pose in POSES}
    for i in range(len(r)):
        arrays, before, fresh = r.arrays(i), r_old.arrays(i), r_new.arrays(i)
        for pose in POSES:
            assert _max_step(arrays[pose]) < np.pi
            assert _same_rotations(arrays[pose], before[pose]) < 1e-5
            np.testing.assert_array_equal(arrays[pose + ".rot6d"], before[pose + ".rot6d"])  # untouched
            np.testing.assert_allclose(arrays[pose], fresh[pose], atol=1e-6)  # what the writer now writes
            m = moments(arrays[pose].astype(np.float32))
            for name in ("min", "max", "mean", "std"):
                np.testing.assert_allclose(r.meta(i)[f"stats/{pose}/{name}"], m[name], rtol=1e-12)
            merged[pose] = merge_stats(merged[pose], m)
    stats = json.loads((root / "meta/stats.json").read_text())
    for pose in POSES:  # computed from what is written
        for name in ("min", "max", "mean", "std"):
            np.testing.assert_allclose(stats[pose][name], merged[pose][name], rtol=1e-12)
        assert stats[pose]["count"] == [int(merged[pose]["count"][0])]
    assert stats["action"]["std"][3] < 0.1

    before = _files(root)  # a second run changes nothing and says so
    assert main(["dataset", "unwrap-euler", str(root)]) == 0
    assert "already unwrapped; nothing changed" in capsys.readouterr().out
    assert _files(root) == before


def test_a_dataset_without_wraps_is_only_marked(datasets, tmp_path, capsys):
    new, _ = datasets
    root = tmp_path / "d"
    shutil.copytree(new, root)
    info = json.loads((root / "meta/info.json").read_text())
    del info["actionimages"]  # as an older writer left a dataset whose angles happen not to wrap
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    data = {k: v for k, v in _files(root).items() if k != "meta/info.json"}
    assert main(["dataset", "unwrap-euler", str(root)]) == 0
    assert "no Euler angle wraps" in capsys.readouterr().out
    assert DatasetReader(root).euler_unwrapped
    assert {k: v for k, v in _files(root).items() if k != "meta/info.json"} == data


def test_unwrap_refuses_what_it_cannot_safely_rewrite(datasets, tmp_path, capsys):
    _, old = datasets
    root = tmp_path / "d"
    shutil.copytree(old, root)
    data = root / "data/chunk-000/file-001.parquet"

    def refused(match: str) -> None:
        before = _files(root)
        assert main(["dataset", "unwrap-euler", str(root)]) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err, err
        assert _files(root) == before

    # a file that changed since it was written: its checksum would bless content nobody checked
    table = pq.read_table(data)
    pq.write_table(table, data, compression="gzip")
    refused("file-001.parquet changed since it was written")
    shutil.rmtree(root)
    shutil.copytree(old, root)
    # another writer holds the dataset
    with lr.DatasetWriter(root, fps=DatasetReader(root).fps):
        refused("another DatasetWriter holds this dataset")
    # an append that never committed
    (root / lr.JOURNAL_PATH).write_text(
        json.dumps({"episode_index": 2, "files": [], "stats": {}, "tasks": []})
    )
    refused("an interrupted append")
    (root / lr.JOURNAL_PATH).unlink()
    # action columns that are not Euler poses
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["action"]["names"] = [f"joint{j}" for j in range(7)]
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    refused("no Euler angles")
    assert main(["dataset", "unwrap-euler", str(tmp_path / "nothing")]) == 2
    assert "not a LeRobot dataset" in capsys.readouterr().err


def test_an_interrupted_migration_is_finished_by_the_next_run(datasets, tmp_path, monkeypatch, capsys):
    import actionimages.data.unwrap as unwrap

    _, old = datasets
    root = tmp_path / "d"
    shutil.copytree(old, root)
    real_replace, calls = unwrap.os.replace, []

    def crash_after_one(src, dst):
        if str(dst).endswith(".parquet"):  # the staged files (the journal before them is written)
            if calls:
                raise KeyboardInterrupt  # killed mid-way: one file replaced, the rest not
            calls.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(unwrap.os, "replace", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        unwrap.unwrap_dataset(root)
    monkeypatch.setattr(unwrap.os, "replace", real_replace)
    assert len(calls) == 1 and (root / lr.UNWRAP_JOURNAL_PATH).exists()
    report = check_dataset(root, full=True, progress=False)
    assert any("interrupted `actionimages dataset unwrap-euler`" in p for p in report.dataset_problems)
    assert not list(root.rglob(".tmp-*"))  # the staged files were removed
    assert main(["dataset", "unwrap-euler", str(root)]) == 0
    capsys.readouterr()
    assert not (root / lr.UNWRAP_JOURNAL_PATH).exists()
    assert check_dataset(root, full=True, progress=False).ok
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["action"]["std"][3] < 0.1
    before = _files(root)
    assert unwrap.unwrap_dataset(root) == {"episodes": 0, "frames": 0, "files": 0, "marked": False}
    assert _files(root) == before
