"""LeRobot-v3 writer/reader: layout, round trip, atomic commits, appends and bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from actionimages.codec import Camera
from actionimages.data import (
    ClipDataset,
    DatasetReader,
    DatasetWriter,
    Episode,
    SampleBuilder,
    check_dataset,
    decode_frames,
)
from actionimages.data import lerobot as lr
from actionimages.data.synthetic import make_synthetic_episode
from actionimages.errors import DataError


def _write(root, n=2, T=10, **kw):
    eps = [make_synthetic_episode(T=T, seed=s, per_frame_cameras=(s % 2 == 1), **kw) for s in range(n)]
    with DatasetWriter(root, fps=10) as w:
        for ep in eps:
            w.add_episode(ep)
    return eps


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "d"
    eps = _write(root, n=3, T=12)
    return root, eps


def test_layout_follows_lerobot_v3(dataset):
    root, eps = dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["total_episodes"] == 3 and info["total_frames"] == 36 and info["total_tasks"] == 1
    assert info["splits"] == {"train": "0:3"} and info["fps"] == 10 and info["chunks_size"] == 1000
    feats = info["features"]
    for key in (
        "action",
        "observation.state",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ):
        assert key in feats
    assert feats["observation.images.front"]["dtype"] == "video"
    assert feats["observation.images.front"]["shape"] == [64, 64, 3]
    assert feats["observation.images.front"]["info"]["video.codec"] == "h264"
    for e in range(3):
        assert (root / f"data/chunk-000/file-{e:03d}.parquet").exists()
        assert (root / f"meta/episodes/chunk-000/file-{e:03d}.parquet").exists()
        for cam in ("front", "side"):
            assert (root / f"videos/observation.images.{cam}/chunk-000/file-{e:03d}.mp4").exists()
    data = pq.read_table(root / "data/chunk-000/file-001.parquet")
    assert data.schema.field("action").type == pa.list_(pa.float32(), 7)
    assert data.column("index").to_pylist() == list(range(12, 24))
    assert data.column("episode_index").to_pylist() == [1] * 12
    np.testing.assert_allclose(data.column("timestamp").to_numpy(), np.arange(12) / 10, atol=1e-6)
    row = pq.read_table(root / "meta/episodes/chunk-000/file-002.parquet").to_pylist()[0]
    assert row["episode_index"] == 2 and row["length"] == 12 and row["tasks"] == [eps[2].instruction]
    assert (row["dataset_from_index"], row["dataset_to_index"]) == (24, 36)
    assert row["videos/observation.images.side/to_timestamp"] == pytest.approx(1.2)
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.column("task").to_pylist() == [eps[0].instruction]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["action"]["count"] == [36]
    all_actions = np.concatenate([e.actions for e in eps]).astype(np.float32)
    np.testing.assert_allclose(stats["action"]["mean"], all_actions.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["std"], all_actions.std(0), atol=1e-5)
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)


def test_a_lerobot_v21_dataset_is_refused_with_the_converter_that_upgrades_it(tmp_path):
    from actionimages.data import DatasetReader
    from actionimages.errors import DataError

    meta = tmp_path / "old" / "meta"
    meta.mkdir(parents=True)
    info = {"codebase_version": "v2.1", "fps": 30, "features": {}, "total_episodes": 1,
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"}  # fmt: skip
    (meta / "info.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="convert_dataset_v21_to_v30 --repo-id=local/NAME --root=") as err:
        DatasetReader(tmp_path / "old")
    assert str(tmp_path / "old") in str(err.value)


def test_round_trip(dataset):
    root, eps = dataset
    r = DatasetReader(root)
    assert len(r) == 3 and r.cameras == ["front", "side"] and r.fps == 10.0
    for i, ref in enumerate(eps):
        ep = r.episode(i)
        assert ep.instruction == ref.instruction and ep.task == ref.task and ep.has_actions
        assert ep.info["seed"] == ref.info["seed"] and ep.info["episode_index"] == i
        np.testing.assert_allclose(ep.actions, ref.actions, atol=1e-6)
        np.testing.assert_allclose(ep.state, ref.state, atol=1e-6)
        for cam in ("front", "side"):
            assert ep.is_static(cam) == ref.is_static(cam)
            for t in (0, 11):
                a, b = ep.camera_at(cam, t), ref.camera_at(cam, t)
                np.testing.assert_allclose(a.K, b.K)
                np.testing.assert_allclose(a.cam_to_world, b.cam_to_world)
            frames = np.asarray(ep.frames[cam])
            assert frames.shape == (12, 64, 64, 3) and frames.dtype == np.uint8
            err = np.abs(frames.astype(int) - ref.frames[cam]).mean()
            assert err < 2.0, err  # yuv444p CRF 15 is near-lossless


def test_random_access_frames(dataset):
    root, _ = dataset
    r = DatasetReader(root)
    full = r.frames(0, "front", np.arange(12))
    idx = [9, 2, 2, 11, 0, 5]
    np.testing.assert_array_equal(r.frames(0, "front", idx), full[idx])
    np.testing.assert_array_equal(r.episode(0).frames["front"][3], full[3])
    with pytest.raises(IndexError):
        r.frames(0, "front", [12])
    with pytest.raises(IndexError):
        r.episode(3)


def test_append_and_reader_sees_new_episodes(tmp_path):
    root = tmp_path / "d"
    with DatasetWriter(root, fps=10):
        empty = DatasetReader(root)
        assert len(empty) == 0 and empty.cameras == []
    _write(root, n=1, T=6)
    r = DatasetReader(root)
    assert len(r) == 1
    with DatasetWriter(root, fps=10) as w:
        assert w.add_episode(make_synthetic_episode(T=7, seed=5, instruction="other")) == 1
    assert len(r) == 2 and r.num_frames(1) == 7 and r.tasks == ["move the ball to the target", "other"]
    data = pq.read_table(root / "data/chunk-000/file-001.parquet")
    assert data.column("index").to_pylist() == list(range(6, 13))
    assert data.column("task_index").to_pylist() == [1] * 7


def _fail_encoding(monkeypatch, call, exc):
    """Make the writer's ``call``-th video encoding raise ``exc``; returns the real encoder."""
    calls = {"n": 0}
    real = lr.writer.encode_video

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == call:
            raise exc
        return real(*a, **k)

    monkeypatch.setattr(lr.writer, "encode_video", flaky)
    return real


def test_crash_mid_episode_keeps_dataset_readable(tmp_path, monkeypatch):
    root = tmp_path / "d"
    _write(root, n=2, T=6)
    real = _fail_encoding(monkeypatch, 2, KeyboardInterrupt("simulated crash"))  # the 2nd camera
    w = DatasetWriter(root, fps=10)
    with pytest.raises(KeyboardInterrupt):
        w.add_episode(make_synthetic_episode(T=6, seed=9))
    w.close()
    # the first camera's video of episode 2 was committed under its final name, no temp files
    assert (root / "videos/observation.images.front/chunk-000/file-002.mp4").exists()
    assert not list(root.rglob(".tmp-*"))
    r = DatasetReader(root)
    assert len(r) == 2 and np.asarray(r.episode(1).frames["side"]).shape == (6, 64, 64, 3)
    report = check_dataset(root, progress=False)
    assert report.bad_episodes == [] and "uncommitted leftover files" in report.dataset_problems[0]
    monkeypatch.setattr(lr.writer, "encode_video", real)
    with DatasetWriter(root, fps=10) as w2:  # reopening removes the leftovers and appends
        assert not (root / "videos/observation.images.front/chunk-000/file-002.mp4").exists()
        assert w2.add_episode(make_synthetic_episode(T=5, seed=3)) == 2
    assert DatasetReader(root).num_frames(2) == 5


def test_failed_append_is_undone_by_the_next_append(tmp_path, monkeypatch):
    """An add_episode that raises part-way leaves nothing behind once the same writer appends again."""
    root = tmp_path / "d"
    _fail_encoding(monkeypatch, 4, DataError("simulated encoder failure"))  # episode 1's 2nd camera
    with DatasetWriter(root, fps=10) as w:
        w.add_episode(make_synthetic_episode(T=4, seed=0))
        with pytest.raises(DataError, match="simulated"):
            w.add_episode(make_synthetic_episode(T=4, seed=1))
        assert w.add_episode(make_synthetic_episode(T=5, seed=2)) == 1
    assert DatasetReader(root).data_path(1).name == "file-001.parquet"
    assert check_dataset(root, full=True, progress=False).ok


def test_crash_before_info_commit(tmp_path, monkeypatch):
    root = tmp_path / "d"
    _write(root, n=1, T=6)
    real = lr.writer.write_json_atomic

    def fail_info(path, data, **dumps):
        if path.name == "info.json":
            raise OSError("disk full")
        real(path, data, **dumps)

    monkeypatch.setattr(lr.writer, "write_json_atomic", fail_info)
    stats = (root / "meta/stats.json").read_text()
    with DatasetWriter(root, fps=10) as w, pytest.raises(OSError):
        w.add_episode(make_synthetic_episode(T=6, seed=1, instruction="a new task"))
    assert (root / "meta/episodes/chunk-000/file-001.parquet").exists()  # written but not committed
    assert (root / "meta/stats.json").read_text() != stats  # already counts the lost episode
    r = DatasetReader(root)
    assert len(r) == 1 and json.loads((root / "meta/info.json").read_text())["total_frames"] == 6
    monkeypatch.setattr(lr.writer, "write_json_atomic", real)
    with DatasetWriter(root, fps=10) as w:  # undoes the lost episode: its files, stats and task
        assert (root / "meta/stats.json").read_text() == stats and w.tasks == ["move the ball to the target"]
        assert not (root / "meta/episodes/chunk-000/file-001.parquet").exists()
        assert w.add_episode(make_synthetic_episode(T=4, seed=1)) == 1
    assert DatasetReader(root).num_frames(1) == 4
    assert check_dataset(root, full=True, progress=False).ok


def test_writer_rejects_conflicts(tmp_path):
    root = tmp_path / "d"
    w = DatasetWriter(root, fps=10)
    with pytest.raises(DataError, match="another DatasetWriter"):
        DatasetWriter(root, fps=10)
    w.add_episode(make_synthetic_episode(T=4))
    with pytest.raises(DataError, match="fps"):
        w.add_episode(make_synthetic_episode(T=4, fps=5))
    with pytest.raises(DataError, match="cameras"):
        w.add_episode(make_synthetic_episode(T=4, cameras=("front",)))
    with pytest.raises(DataError, match="shape"):
        w.add_episode(make_synthetic_episode(T=4, width=32))
    assert w.add_episode(make_synthetic_episode(T=4), key="sim:x/train/seed0") == 1
    with pytest.raises(DataError, match="key 'sim:x/train/seed0' is already episode 1"):
        w.add_episode(make_synthetic_episode(T=4), key="sim:x/train/seed0")
    w.close()
    with DatasetWriter(root, fps=10) as again:
        assert again.keys == {"sim:x/train/seed0": 1}
    with pytest.raises(DataError, match="fps"):
        DatasetWriter(root, fps=30)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(DataError, match="not a dataset"):
        DatasetWriter(tmp_path / "junk", fps=10)


def test_episode_validation_names_the_problem():
    ep = make_synthetic_episode(T=5)
    cams, frames = dict(ep.cameras), dict(ep.frames)
    info = {"source": "ep-xyz"}
    with pytest.raises(DataError, match="ep-xyz.*actions must have shape"):
        Episode(frames=frames, cameras=cams, actions=np.zeros((5, 6)), info=info)
    with pytest.raises(DataError, match="ep-xyz.*camera count differs"):
        Episode(frames=frames, cameras={"front": cams["front"]}, actions=ep.actions, info=info)
    with pytest.raises(DataError, match="frame-count mismatch"):
        Episode(frames=frames, cameras=cams, actions=ep.actions[:4], info=info)
    with pytest.raises(DataError, match="missing calibration"):
        Episode(frames=frames, cameras={**cams, "side": None}, actions=ep.actions, info=info)
    with pytest.raises(DataError, match="NaN"):
        Episode(frames=frames, cameras=cams, actions=np.full((5, 7), np.nan), info=info)
    with pytest.raises(DataError, match="camera name"):
        Episode(frames={"a/b": frames["front"]}, cameras={"a/b": cams["front"]}, actions=ep.actions)
    small = Camera(cams["front"].K, cams["front"].cam_to_world, 32, 32)
    with pytest.raises(DataError, match="32x32 but its video is 64x64"):
        Episode(frames=frames, cameras={**cams, "front": small}, actions=ep.actions, info=info)
    as_list = Episode(frames={k: list(v) for k, v in frames.items()}, cameras=cams, actions=ep.actions)
    assert as_list.frames["front"].shape == (5, 64, 64, 3)
    quat = np.concatenate([ep.actions[:, :3], np.tile([0, 0, 0, 1.0], (5, 1)), ep.actions[:, 6:]], 1)
    assert Episode(frames=frames, cameras=cams, actions=quat).actions.shape == (5, 7)


def test_corrupt_and_truncated_video_raise_data_error(tmp_path):
    root = tmp_path / "d"
    _write(root, n=2, T=8)
    path0 = root / "videos/observation.images.front/chunk-000/file-000.mp4"
    path0.write_bytes(b"\x00garbage" * 100)
    r = DatasetReader(root)
    with pytest.raises(DataError, match=r"episode 0 camera 'front'.*file-000\.mp4"):
        np.asarray(r.episode(0).frames["front"])
    path1 = root / "videos/observation.images.side/chunk-000/file-001.mp4"
    data = path1.read_bytes()
    path1.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"file-001\.mp4"):
        r.frames(1, "side", np.arange(8))
    with pytest.raises(DataError, match="no frame"):
        decode_frames(root / "videos/observation.images.front/chunk-000/file-001.mp4", [8], 10.0)


def test_missing_calibration_is_reported(tmp_path):
    root = tmp_path / "d"
    _write(root, n=1, T=4)
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop(["actionimages/calibration"]), path)
    with pytest.raises(DataError, match="episode 0: missing calibration"):
        DatasetReader(root).episode(0)


def _pack(root, eps):
    """Repack a 2-episode dataset as LeRobot's aggregate does: episode 1 joins episode 0's parquet
    files and mp4s (its rows by episode_index, its frames from from_timestamp on). Episode 1's video
    is made unmistakable (inverted); returns its expected frames per camera."""
    meta0, meta1 = (pq.read_table(root / f"meta/episodes/chunk-000/file-00{i}.parquet") for i in (0, 1))
    data0, data1 = (pq.read_table(root / f"data/chunk-000/file-00{i}.parquet") for i in (0, 1))
    rows = meta1.to_pylist()
    T0 = len(eps[0].actions)
    expected = {}
    for cam in ("front", "side"):
        key = f"videos/observation.images.{cam}"
        rows[0][f"{key}/file_index"] = 0
        rows[0][f"{key}/from_timestamp"] = T0 / 10
        rows[0][f"{key}/to_timestamp"] = (T0 + len(eps[1].actions)) / 10
        expected[cam] = 255 - eps[1].frames[cam]
        both = np.concatenate([eps[0].frames[cam], expected[cam]])
        lr.writer.encode_video(root / f"videos/observation.images.{cam}/chunk-000/file-000.mp4", both, 10.0)
        (root / f"videos/observation.images.{cam}/chunk-000/file-001.mp4").unlink()
    rows[0]["data/file_index"] = 0
    rows[0]["meta/episodes/file_index"] = 0
    packed = pa.concat_tables([meta0, pa.Table.from_pylist(rows, schema=meta0.schema)])
    pq.write_table(packed, root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.concat_tables([data0, data1]), root / "data/chunk-000/file-000.parquet")
    for sub in ("meta/episodes", "data"):
        (root / sub / "chunk-000/file-001.parquet").unlink()
    (root / "meta/actionimages_checksums.json").unlink(missing_ok=True)  # LeRobot records none
    return expected


def test_reads_lerobot_packed_files(tmp_path):
    """LeRobot itself packs many episodes per file: rows by episode_index, frames at from_timestamp."""
    root = tmp_path / "d"
    eps = _write(root, n=2, T=6)
    expected = _pack(root, eps)
    r = DatasetReader(root)
    ep = r.episode(1)
    np.testing.assert_allclose(ep.actions, eps[1].actions, atol=1e-6)
    np.testing.assert_allclose(r.episode(0).actions, eps[0].actions, atol=1e-6)
    for cam in ("front", "side"):
        assert np.abs(np.asarray(ep.frames[cam]).astype(int) - expected[cam]).mean() < 2.0
        assert np.abs(np.asarray(r.episode(0).frames[cam]).astype(int) - eps[0].frames[cam]).mean() < 2.0
    np.testing.assert_array_equal(r.frames(1, "front", [5, 0]), np.asarray(ep.frames["front"])[[5, 0]])


def test_check_passes_on_packed_files(tmp_path):
    """``dataset check`` compares each episode with its own span of a packed file, not the whole file."""
    root = tmp_path / "d"
    eps = [make_synthetic_episode(T=6, seed=0), make_synthetic_episode(T=4, seed=7)]  # unequal lengths
    with DatasetWriter(root, fps=10) as w:
        for ep in eps:
            w.add_episode(ep)
    expected = _pack(root, eps)
    for full in (False, True):
        report = check_dataset(root, full=full, progress=False)
        assert report.ok, report.to_dict()
    assert "no checksums recorded" in report.notes[0]  # --full says what it could not verify
    r = DatasetReader(root)
    assert [r.num_frames(i) for i in range(2)] == [6, 4]
    got = np.asarray(r.episode(1).frames["side"]).astype(int)
    assert got.shape == (4, 64, 64, 3) and np.abs(got - expected["side"]).mean() < 2.0
    np.testing.assert_allclose(r.arrays(1)["action"], eps[1].actions, atol=1e-6)
    # an episode whose span runs past the end of the packed file is caught
    table = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    table[1]["videos/observation.images.front/from_timestamp"] = 0.8
    table[1]["videos/observation.images.front/to_timestamp"] = 1.2
    pq.write_table(pa.Table.from_pylist(table), root / "meta/episodes/chunk-000/file-000.parquet")
    report = check_dataset(root, progress=False)
    assert report.bad_episodes == [1] and "file-000.mp4" in " ".join(report.episodes[1].problems)


def test_lossless_option_round_trips_exactly(tmp_path):
    ep = make_synthetic_episode(T=5, width=40, height=30)
    with DatasetWriter(tmp_path / "d", fps=10, codec="libx264rgb", pix_fmt="rgb24", crf=0) as w:
        w.add_episode(ep)
    r = DatasetReader(tmp_path / "d")
    np.testing.assert_array_equal(np.asarray(r.episode(0).frames["side"]), ep.frames["side"])
    assert r.info["features"]["observation.images.side"]["info"]["video.codec"] == "h264"


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_writer_never_deletes_files_it_did_not_write(tmp_path):
    """Files the writer cannot prove it wrote survive opening, closing and appending; a warning names them."""
    root = tmp_path / "d"
    _write(root, n=2, T=5)
    foreign = {
        "data/chunk-000/file-002.parquet": b"not ours",  # where episode 2 would go
        "videos/observation.images.front/chunk-000/file-003.mp4": b"not ours either",
        "data/chunk-000/file-007.parquet": b"a LeRobot file",
        "videos/observation.images.side/chunk-000/file-009.mp4": b"another",
        "notes.txt": b"my notes",
    }
    for rel, data in foreign.items():
        (root / rel).write_bytes(data)
    with pytest.warns(UserWarning, match=r"left in place.*file-002\.parquet.*file-009\.mp4"):
        DatasetWriter(root, fps=10).close()
    assert {rel: (root / rel).read_bytes() for rel in foreign} == foreign
    new = [make_synthetic_episode(T=4, seed=s) for s in (5, 6)]
    with pytest.warns(UserWarning, match="left in place"), DatasetWriter(root, fps=10) as w:
        assert [w.add_episode(ep) for ep in new] == [2, 3]
    assert {rel: (root / rel).read_bytes() for rel in foreign} == foreign
    r = DatasetReader(root)
    assert len(r) == 4
    # slots 2 and 3 are taken by the foreign files: the new episodes went to the next free ones
    assert [r.data_path(i).name for i in (2, 3)] == ["file-004.parquet", "file-005.parquet"]
    for i, ep in zip((2, 3), new, strict=True):
        np.testing.assert_allclose(r.episode(i).actions, ep.actions, atol=1e-6)
        assert np.abs(np.asarray(r.episode(i).frames["front"]).astype(int) - ep.frames["front"]).mean() < 2
    report = check_dataset(root, progress=False)
    assert report.bad_episodes == [] and "no committed episode uses" in report.dataset_problems[0]


def test_writer_keeps_lerobot_files_beyond_total_episodes(tmp_path):
    """After LeRobot's delete_episodes a file index can exceed total_episodes; those files are live."""
    root = tmp_path / "d"
    eps = _write(root, n=2, T=5)
    for sub, ext in [("meta/episodes", "parquet"), ("data", "parquet")] + [
        (f"videos/observation.images.{c}", "mp4") for c in ("front", "side")
    ]:
        (root / sub / f"chunk-000/file-001.{ext}").rename(root / sub / f"chunk-000/file-006.{ext}")
    path = root / "meta/episodes/chunk-000/file-006.parquet"
    rows = pq.read_table(path).to_pylist()
    for col in rows[0]:
        if col.endswith("file_index"):
            rows[0][col] = 6
    pq.write_table(pa.Table.from_pylist(rows), path)
    (root / "meta/actionimages_checksums.json").unlink(missing_ok=True)  # as LeRobot would leave it
    DatasetWriter(root, fps=10).close()
    with DatasetWriter(root, fps=10) as w:
        w.add_episode(make_synthetic_episode(T=3, seed=4))
    r = DatasetReader(root)
    np.testing.assert_allclose(r.episode(1).actions, eps[1].actions, atol=1e-6)
    assert r.data_path(1).name == "file-006.parquet" and r.num_frames(2) == 3
    assert check_dataset(root, full=True, progress=False).ok


def test_writer_refuses_a_foreign_row_for_the_next_episode(tmp_path):
    """A metadata file the writer did not write, holding a row for the next episode, would shadow it."""
    root = tmp_path / "d"
    _write(root, n=1, T=4)
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    rows[0]["episode_index"] = 1
    pq.write_table(pa.Table.from_pylist(rows), root / "meta/episodes/chunk-000/file-005.parquet")
    with pytest.warns(UserWarning, match="file-005"), DatasetWriter(root, fps=10) as w:
        with pytest.raises(DataError, match=r"file-005\.parquet has a row for episode 1.*Remove it by hand"):
            w.add_episode(make_synthetic_episode(T=4, seed=1))
    assert len(DatasetReader(root)) == 1


def test_full_check_verifies_checksums(tmp_path):
    """Flipped bytes that decode fine are caught by ``check --full`` through the recorded SHA-256."""
    root = tmp_path / "d"
    _write(root, n=2, T=6)
    with DatasetWriter(root, fps=10) as w:  # an append records its files too
        w.add_episode(make_synthetic_episode(T=5, seed=3))
    sums = json.loads((root / "meta/actionimages_checksums.json").read_text())["files"]
    unrecorded = {".actionimages.lock", "meta/info.json", "meta/actionimages_checksums.json"}
    assert set(_files(root)) - set(sums) == unrecorded
    report = check_dataset(root, full=True, progress=False)
    assert report.ok and report.notes == []
    original = _files(root)
    for rel in [
        "videos/observation.images.side/chunk-000/file-002.mp4",
        "data/chunk-000/file-001.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/stats.json",
    ]:
        data = bytearray(original[rel])
        k = len(data) // 2
        data[k : k + 2] = bytes([data[k] ^ 0x01, data[k + 1] ^ 0x01])  # two flipped bits
        (root / rel).write_bytes(bytes(data))
        for full in (False, True):  # the default check hashes every file too; --full also decodes
            report = check_dataset(root, full=full, progress=False)
            assert any("checksum mismatch" in p and rel in p for p in report.problems()), (rel, full)
        (root / rel).write_bytes(original[rel])
    assert check_dataset(root, full=True, progress=False).ok
    (root / "meta/actionimages_checksums.json").unlink()
    report = check_dataset(root, full=True, progress=False)
    assert report.ok and "no checksums recorded" in report.notes[0]


def test_truncated_video_is_named_truncated_wherever_it_is_cut(tmp_path):
    """FFmpeg reports a cut-off mp4 as EPERM, EOF, 'decoder not found', ...: we say truncated or corrupt."""
    root = tmp_path / "d"
    _write(root, n=1, T=12)
    path = root / "videos/observation.images.front/chunk-000/file-000.mp4"
    data = path.read_bytes()
    r = DatasetReader(root)
    failed = 0
    for cut in range(0, len(data), max(1, len(data) // 25)):
        path.write_bytes(data[:cut])
        try:
            r.frames(0, "front", np.arange(12))
        except DataError as exc:  # (a cut in the trailing bytes may lose no frame)
            failed += 1
            msg = str(exc)
            assert "file-000.mp4" in msg and ("truncated or corrupt" in msg or "no frame" in msg), (cut, msg)
            assert "PermissionError" not in msg and "IndexError" not in msg, (cut, msg)
        for full in (False, True):
            problems = check_dataset(root, full=full, progress=False).episodes[0].problems
            assert all("file-000.mp4" in p for p in problems), (cut, problems)
            assert problems or not full, cut  # --full always notices (the checksum, at least)
    assert failed > 20


def test_missing_frame_data_is_reported_missing(tmp_path):
    root = tmp_path / "d"
    _write(root, n=2, T=4)
    (root / "data/chunk-000/file-001.parquet").unlink()
    with pytest.raises(DataError, match=r"episode 1: frame data missing: .*file-001\.parquet"):
        DatasetReader(root).episode(1)
    report = check_dataset(root, progress=False)
    assert report.bad_episodes == [1] and "frame data missing" in report.episodes[1].problems[0]


def test_info_says_when_the_dataset_fails_its_check(tmp_path, capsys):
    from actionimages.cli import main
    from actionimages.data import dataset_info

    root = tmp_path / "d"
    _write(root, n=2, T=4)
    assert dataset_info(root)["check"] == {"ok": True, "problems": [], "count": 0}
    (root / "data/chunk-000/file-001.parquet").unlink()
    info = json.loads((root / "meta/info.json").read_text())
    info["total_frames"] = 99
    (root / "meta/info.json").write_text(json.dumps(info))
    summary = dataset_info(root)
    assert summary["frames"] == 99 and summary["duration_s"] == pytest.approx(9.9)  # one number, not two
    assert not summary["check"]["ok"] and summary["check"]["count"] == 2
    assert main(["dataset", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "FAILS: 2 problem(s)" in out and "frame data missing" in out and "total_frames 99" in out
    (root / "meta/actionimages_checksums.json").unlink()
    assert main(["dataset", "check", "--full", str(root)]) == 1
    assert "note: no checksums recorded" in capsys.readouterr().out


def test_bad_stored_actions_name_the_dataset_and_episode(tmp_path):
    """An episode recorded elsewhere (a sim seed) is named by dataset and episode when its data is bad."""
    root = tmp_path / "d"
    eps = [make_synthetic_episode(T=4, seed=s) for s in range(2)]
    eps[1].info["source"] = "actionimages.sim reach_target/train/seed7"
    with DatasetWriter(root, fps=10) as w:
        for ep in eps:
            w.add_episode(ep)
    path = root / "data/chunk-000/file-001.parquet"
    table = pq.read_table(path)
    bad = np.full((4, 7), np.nan, dtype=np.float32)
    col = pa.FixedSizeListArray.from_arrays(pa.array(bad.reshape(-1)), 7)
    pq.write_table(table.set_column(table.column_names.index("action"), "action", col), path)
    r = DatasetReader(root)
    with pytest.raises(
        DataError, match=rf"{root} episode 1 \(recorded from actionimages\.sim .*seed7\).*NaN"
    ):
        r.episode(1)
    builder = SampleBuilder(num_frames=5, num_views=2, height=16, width=16, training=True)
    with pytest.raises(DataError, match=rf"{root} episode 1 "):  # what train-vae's samples raise
        ClipDataset(r, builder)[1]
    assert r.episode(0).info["source"].startswith(f"{root} episode 0 (recorded from synthetic")


def _top_down_episode(seed: int, T: int = 10) -> Episode:
    """A tool pointing down whose Euler rx flips between about -pi and +pi (as SciPy returns it)."""
    from actionimages.codec import euler_to_matrix, matrix_to_euler

    rng = np.random.default_rng(seed)
    ep = make_synthetic_episode(T=T, seed=seed)
    tilt = np.stack([rng.normal(0, 0.05, T), rng.normal(0, 0.05, T), rng.uniform(-0.3, 0.3, T)], axis=1)
    euler = matrix_to_euler(euler_to_matrix(tilt) @ euler_to_matrix(np.array([np.pi, 0.0, 0.0])))
    actions = ep.actions.copy()
    actions[:, 3:6] = euler
    return dataclasses.replace(ep, actions=actions, state=actions.copy())


def test_continuous_rotation_feature_has_meaningful_statistics(tmp_path):
    """Euler rx of a top-down tool flips sign (std ~pi as given); the writer unwraps it along each
    episode (lerobot.euler), so its std is small, like the 6-D rotation's."""
    from actionimages.codec import euler_to_matrix, rot6d_to_matrix, rotation_angle_between

    root = tmp_path / "d"
    eps = [_top_down_episode(s) for s in range(3)]
    with DatasetWriter(root, fps=10) as w:
        for ep in eps:
            w.add_episode(ep)
    rx = np.concatenate([ep.actions[:, 3] for ep in eps])
    assert (rx > 3).any() and (rx < -3).any()  # the flip is there
    info = json.loads((root / "meta/info.json").read_text())
    stats = json.loads((root / "meta/stats.json").read_text())
    for key, pose in lr.ROT6D_FEATURES.items():
        assert info["features"][key] == {"dtype": "float32", "shape": [6], "names": lr.ROT6D_NAMES}
        assert np.std(rx) > 2.5 and stats[pose]["std"][3] < 0.5  # Euler rx as given, and as written
        assert max(stats[key]["std"]) < 0.5 and stats[key]["count"] == [30]
        assert set(stats[key]) == set(stats[pose])  # same stats format as the other features
    r = DatasetReader(root)
    for i, ep in enumerate(eps):
        arrays = r.arrays(i)
        for key in lr.ROT6D_FEATURES:
            assert arrays[key].shape == (10, 6)
            angle = rotation_angle_between(rot6d_to_matrix(arrays[key]), euler_to_matrix(ep.actions[:, 3:6]))
            assert angle.max() < 1e-5, angle.max()  # round-trips to the same rotation
        got = r.episode(i).actions  # Euler angles unwrapped: the same rotations, shifted by whole turns
        np.testing.assert_allclose(got[:, [0, 1, 2, 6]], ep.actions[:, [0, 1, 2, 6]], atol=1e-6)
        turns = (got[:, 3:6] - ep.actions[:, 3:6]) / (2 * np.pi)
        np.testing.assert_allclose(turns, np.round(turns), atol=1e-6)
        assert np.abs(np.diff(got[:, 3:6], axis=0)).max() < np.pi
    assert check_dataset(root, full=True, progress=False).ok
    # a rotation column edited without its Euler twin is caught
    path = root / "data/chunk-000/file-001.parquet"
    table = pq.read_table(path)
    bad = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), (10, 1))
    col = pa.FixedSizeListArray.from_arrays(pa.array(bad.reshape(-1)), 6)
    pq.write_table(table.set_column(table.column_names.index("action.rot6d"), "action.rot6d", col), path)
    problems = check_dataset(root, progress=False).episodes[1].problems
    assert any("action.rot6d disagrees with action's Euler angles" in p for p in problems), problems


def test_datasets_without_the_rotation_feature_stay_readable_and_appendable(tmp_path):
    """A dataset written before ``action.rot6d`` existed: read, appended to (without the new
    columns, so its files stay consistent with its features) and checked as before."""
    root = tmp_path / "d"
    _write(root, n=1, T=4)
    info = json.loads((root / "meta/info.json").read_text())
    for key in lr.ROT6D_FEATURES:  # what an older writer produced
        del info["features"][key]
    (root / "meta/info.json").write_text(json.dumps(info))
    path = root / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).drop_columns(list(lr.ROT6D_FEATURES)), path)
    (root / "meta/actionimages_checksums.json").unlink()
    with DatasetWriter(root, fps=10) as w:
        w.add_episode(make_synthetic_episode(T=5, seed=1))
    r = DatasetReader(root)
    assert len(r) == 2 and set(r.arrays(1)) == {"action", "observation.state", "timestamp"}
    assert "action.rot6d" not in pq.read_table(root / "data/chunk-000/file-001.parquet").column_names
    assert check_dataset(root, full=True, progress=False).ok


def test_rot6d_helpers():
    from actionimages.codec import euler_to_rot6d, matrix_to_rot6d, rot6d_to_matrix
    from actionimages.errors import ActionImagesError

    R = np.stack([np.eye(3), np.diag([1.0, -1.0, -1.0])])
    np.testing.assert_allclose(matrix_to_rot6d(R), [[1, 0, 0, 0, 1, 0], [1, 0, 0, 0, -1, 0]])
    np.testing.assert_allclose(rot6d_to_matrix(matrix_to_rot6d(R)), R)
    noisy = euler_to_rot6d(np.array([0.3, -0.2, 1.0])) + 0.01
    Rn = rot6d_to_matrix(noisy)
    np.testing.assert_allclose(Rn.T @ Rn, np.eye(3), atol=1e-12)
    assert np.linalg.det(Rn) == pytest.approx(1.0)
    with pytest.raises(ActionImagesError, match="degenerate 6-D rotation"):
        rot6d_to_matrix(np.array([1.0, 0, 0, 2.0, 0, 0]))
    with pytest.raises(ActionImagesError, match="last dimension 6"):
        rot6d_to_matrix(np.zeros(5))


def _lerobot_delete_first(src, dst):
    """What LeRobot's ``delete_episodes(ds, [0])`` leaves: episodes renumbered, LeRobot's episode
    columns only (every ``actionimages/*`` column and our checksums gone), frame data unchanged."""
    shutil.copytree(src, dst)
    for sub in ("meta/episodes", "data"):
        (dst / sub / "chunk-000/file-000.parquet").unlink()
    for cam in ("front", "side"):
        (dst / f"videos/observation.images.{cam}/chunk-000/file-000.mp4").unlink()
    (dst / "meta/actionimages_checksums.json").unlink()
    shift = 0
    for f in (1, 2):
        meta = dst / f"meta/episodes/chunk-000/file-00{f}.parquet"
        rows = [
            {k: v for k, v in r.items() if not k.startswith("actionimages/")}
            for r in pq.read_table(meta).to_pylist()
        ]
        shift = shift or rows[0]["dataset_from_index"]
        for r in rows:
            r["episode_index"] -= 1
            r["dataset_from_index"] -= shift
            r["dataset_to_index"] -= shift
        pq.write_table(pa.Table.from_pylist(rows), meta)
        data = pq.read_table(dst / f"data/chunk-000/file-00{f}.parquet").to_pydict()
        data["episode_index"] = [e - 1 for e in data["episode_index"]]
        data["index"] = [k - shift for k in data["index"]]
        pq.write_table(pa.Table.from_pydict(data), dst / f"data/chunk-000/file-00{f}.parquet")
    info = json.loads((dst / "meta/info.json").read_text())
    info["total_episodes"], info["total_frames"] = 2, info["total_frames"] - shift
    (dst / "meta/info.json").write_text(json.dumps(info))


def test_restore_calibration_after_lerobot_edits(tmp_path, capsys):
    from actionimages.cli import main

    src, dst = tmp_path / "src", tmp_path / "edited"
    eps = _write(src, n=3, T=5)  # episode 1 calibrated per frame
    _lerobot_delete_first(src, dst)
    report = check_dataset(dst, progress=False)
    assert report.bad_episodes == [0, 1] and "missing calibration" in report.episodes[0].problems[0]
    with pytest.raises(DataError, match="missing calibration"):
        DatasetReader(dst).episode(0)
    stripped = _files(dst)
    with pytest.raises(DataError, match="lack actionimages' columns.*restore-calibration"):
        DatasetWriter(dst, fps=10)  # an append now would duplicate episodes and break LeRobot's loader
    assert _files(dst) == stripped  # refused before writing anything; the lock is released
    assert main(["dataset", "restore-calibration", str(dst), "--from", str(dst)]) == 2
    assert "cannot restore its columns from itself" in capsys.readouterr().err
    before = _files(dst)
    bad = tmp_path / "other"
    _write(bad, n=1, T=5)
    assert main(["dataset", "restore-calibration", str(dst), "--from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "edited episode 0: no episode of" in err and "nothing was written" in err, err
    assert _files(dst) == before
    assert main(["dataset", "restore-calibration", str(dst), "--from", str(bad), "--from", str(src)]) == 0
    assert "restored the actionimages columns of 2 episodes" in capsys.readouterr().out
    r = DatasetReader(dst)
    for i, ref in enumerate(eps[1:]):
        ep = r.episode(i)
        assert (
            ep.task == ref.task
            and ep.info["seed"] == ref.info["seed"]
            and ep.is_static("front") == ref.is_static("front")
        )
        np.testing.assert_allclose(
            ep.camera_at("side", 4).cam_to_world, ref.camera_at("side", 4).cam_to_world
        )
        assert r.meta(i)["actionimages/key"] == ""
    assert check_dataset(dst, full=True, progress=False).ok
    with DatasetWriter(dst, fps=10) as w:  # restored: appending works again
        w.add_episode(eps[0])
    assert len(DatasetReader(dst)) == 3 and check_dataset(dst, full=True, progress=False).ok
