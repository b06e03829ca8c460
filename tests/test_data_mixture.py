"""Mixtures by ratio, distributed splits, and the `actionimages dataset` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actionimages.cli import main
from actionimages.data import DatasetReader, DatasetWriter
from actionimages.data.fixtures import write_rlbench_episode
from actionimages.data.mixture import Mixture, parse_mixture_spec
from actionimages.data.synthetic import make_synthetic_episode
from actionimages.errors import ActionImagesError


class Numbers:
    """A stand-in source of n episodes, identified by index (only indices matter to the schedule)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def episode(self, i: int) -> int:
        return i


def _mix(**kw):
    return Mixture([("a", Numbers(50), 0.5), ("b", Numbers(30), 0.3), ("c", Numbers(40), 0.2)], **kw)


def test_ratios_are_exact_and_deterministic():
    m = _mix(seed=1, epoch_size=100)
    assert m.counts().tolist() == [50, 30, 20]
    names = [m.entry(k)[0] for k in range(len(m))]
    assert names.count("a") == 50 and names.count("b") == 30 and names.count("c") == 20
    assert [_mix(seed=1, epoch_size=100).entry(k) for k in range(100)] == [m.entry(k) for k in range(100)]
    assert [_mix(seed=2, epoch_size=100).entry(k) for k in range(100)] != [m.entry(k) for k in range(100)]
    # no episode repeats within an epoch while a source has enough episodes
    per = {n: [e for k in range(100) for (nn, e) in [m.entry(k)] if nn == n] for n in "abc"}
    assert all(len(set(v)) == len(v) for v in per.values())
    m.set_epoch(1)
    assert [m.entry(k) for k in range(100)] != [_mix(seed=1, epoch_size=100).entry(k) for k in range(100)]
    big = Mixture([("x", Numbers(3), 1.0)], epoch_size=7)  # cycles through fresh permutations
    eps = [big.entry(k)[1] for k in range(7)]
    assert sorted(eps[:3]) == [0, 1, 2] and sorted(eps[3:6]) == [0, 1, 2]


def test_ranks_do_not_overlap():
    full = _mix(seed=3, epoch_size=120)
    slots = [full.schedule()[k].tolist() for k in range(120)]
    seen = []
    for rank in range(4):
        m = _mix(seed=3, epoch_size=120, rank=rank, world_size=4)
        assert len(m) == 30
        seen += [tuple(slots[k * 4 + rank]) for k in range(len(m))]
        assert [m.entry(k) for k in range(len(m))] == [
            (m.names[slots[k * 4 + rank][0]], slots[k * 4 + rank][1]) for k in range(len(m))
        ]
    assert sorted(seen) == sorted(map(tuple, slots))  # a partition of the epoch
    with pytest.raises(ActionImagesError, match="rank"):
        _mix(rank=4, world_size=4)


def test_spec_parsing():
    assert parse_mixture_spec("rlbench@0.5,droid@0.3,bridge@0.2") == [
        ("rlbench", None, 0.5), ("droid", None, 0.3), ("bridge", None, 0.2)]  # fmt: skip
    assert parse_mixture_spec("sim=/d/sim@2, br=/d/b") == [("sim", "/d/sim", 2.0), ("br", "/d/b", 1.0)]
    assert parse_mixture_spec("/data/sim@0.4") == [("sim", "/data/sim", 0.4)]
    for bad, msg in [("a@x", "not a number"), ("a@-1", "positive"), ("a@1,a@2", "twice"), ("", "empty"),
                     ("a@1,,b", "empty entry"), ("=p@1", "NAME=PATH")]:  # fmt: skip
        with pytest.raises(ActionImagesError, match=msg):
            parse_mixture_spec(bad)


def test_mixture_from_spec_opens_real_sources(tmp_path):
    sim = tmp_path / "sim"
    with DatasetWriter(sim, fps=5) as w:
        for s in range(3):
            w.add_episode(make_synthetic_episode(T=4, seed=s, fps=5))
    write_rlbench_episode(tmp_path / "rl" / "task" / "ep0", steps=8)
    m = Mixture.from_spec(f"sim={sim}@0.75,rl@0.25", sources={"rl": tmp_path / "rl"}, seed=0, epoch_size=8)
    got = [m.episode(k) for k in range(len(m))]
    assert sum(e.info["mixture_source"] == "sim" for e in got) == 6
    assert {e.task for e in got} == {"synthetic_reach", "task"}
    assert m.num_frames(0) in (4, 2)
    with pytest.raises(ActionImagesError, match="no path"):
        Mixture.from_spec("nope@1")


def test_cli_info_check_convert(tmp_path, capsys):
    for i in range(2):
        write_rlbench_episode(tmp_path / "rl" / "reach_target" / f"ep{i}", steps=10, seed=i)
    out = tmp_path / "lr"
    assert main(["dataset", "convert", str(tmp_path / "rl"), str(out)]) == 0
    assert len(DatasetReader(out)) == 2
    capsys.readouterr()
    assert main(["dataset", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 2 and info["frames"] == 6 and info["fps"] == 5.0
    assert info["cameras"]["view0"] == {"height": 48, "width": 48, "codec": "h264", "pix_fmt": "yuv444p"}
    assert info["tasks"] == ["reach_target"] and info["instructions"] == ["reach target"]
    assert main(["dataset", "info", str(out)]) == 0
    assert "episodes     2" in capsys.readouterr().out
    assert main(["dataset", "check", str(out)]) == 0
    assert "OK: 2 episodes checked" in capsys.readouterr().out

    # break things: NaN action, missing calibration, corrupt video, frame-count mismatch
    import pyarrow as pa
    import pyarrow.parquet as pq

    d0 = out / "data/chunk-000/file-000.parquet"
    t = pq.read_table(d0)
    acts = np.asarray(t.column("action").to_pylist(), dtype=np.float32)
    acts[1, 2] = np.nan
    col = pa.FixedSizeListArray.from_arrays(pa.array(acts.reshape(-1)), 7)
    pq.write_table(t.set_column(t.column_names.index("action"), "action", col), d0)
    m1 = out / "meta/episodes/chunk-000/file-001.parquet"
    pq.write_table(pq.read_table(m1).drop(["actionimages/calibration"]), m1)
    (out / "videos/observation.images.view1/chunk-000/file-001.mp4").write_bytes(b"junk")
    assert main(["dataset", "check", str(out)]) == 1
    text = capsys.readouterr().out
    # each break is named, and the edited files' recorded checksums no longer match (named too)
    assert "episode 0: 2 problem(s)" in text and "NaN/inf actions in 1 frames (first at frame 1)" in text
    assert "checksum mismatch: data/chunk-000/file-000.parquet" in text
    assert "missing calibration" in text and "file-001.mp4" in text
    assert main(["dataset", "check", str(out), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] is False and set(rep["episodes"]) == {"0", "1"}

    write_rlbench_episode(tmp_path / "rl2" / "t" / "ep", steps=12)
    out2 = tmp_path / "lr2"
    assert main(["dataset", "convert", str(tmp_path / "rl2"), str(out2)]) == 0
    from actionimages.data.video import encode_video

    encode_video(
        out2 / "videos/observation.images.view0/chunk-000/file-000.mp4", np.zeros((2, 48, 48, 3), np.uint8), 5
    )
    assert main(["dataset", "check", str(out2), "--full"]) == 1
    assert "frame-count mismatch" in capsys.readouterr().out
    assert main(["dataset", "info", str(tmp_path / "missing")]) == 2


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    weights=st.lists(st.floats(0.01, 10.0), min_size=4, max_size=4),
    epoch_size=st.integers(4, 120),
    world_size=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_mixture_properties(sizes, weights, epoch_size, world_size, seed):
    srcs = [(f"s{i}", Numbers(n), weights[i]) for i, n in enumerate(sizes)]
    full = Mixture(srcs, seed=seed, epoch_size=epoch_size)
    counts = full.counts()
    assert counts.sum() == epoch_size
    assert np.all(np.abs(counts - epoch_size * full.weights) < 1.0)  # largest remainders: off by < 1
    sched = full.schedule()
    for i, n in enumerate(sizes):  # episodes of a source repeat only after all were used
        eps = sched[sched[:, 0] == i, 1]
        assert np.all((eps >= 0) & (eps < n))
        for j in range(0, len(eps), n):
            chunk = eps[j : j + n]
            assert len(set(chunk.tolist())) == len(chunk)
    got = []
    for r in range(world_size):
        m = Mixture(srcs, seed=seed, epoch_size=epoch_size, rank=r, world_size=world_size)
        assert len(m) == epoch_size // world_size
        got += [k * world_size + r for k in range(len(m))]
    assert len(set(got)) == len(got)  # ranks never share a slot


def test_clip_dataset_over_a_mixture_reports_source_episodes(tmp_path):
    from actionimages.data import ClipDataset, SampleBuilder

    sim = tmp_path / "sim"
    with DatasetWriter(sim, fps=5) as w:
        for s in range(4):
            w.add_episode(make_synthetic_episode(T=5, seed=s, fps=5, width=32, height=32))
    builder = SampleBuilder(num_frames=1, num_views=2, height=16, width=16, training=True)
    parts = []
    for rank in range(2):
        m = Mixture([("sim", DatasetReader(sim), 1.0)], seed=0, rank=rank, world_size=2)
        ds = ClipDataset(m, builder, seed=0)
        assert len(ds) == 2
        parts += [ds[k]["episode"] for k in range(len(ds))]
    assert sorted(parts) == [0, 1, 2, 3]  # the two ranks split the four episodes
