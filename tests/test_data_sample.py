"""SampleBuilder, ClipDataset and collate: the training-sample contract and its geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from actionimages.codec import Camera
from actionimages.data import DatasetReader, DatasetWriter, Episode
from actionimages.data.sample import SampleBuilder, crop_resize_frames
from actionimages.data.synthetic import make_synthetic_episode, render_ball
from actionimages.data.torch_dataset import ClipDataset, collate
from actionimages.errors import ActionImagesError, DataError

KEYS = {"rgb", "action_images", "plucker", "K", "cam_to_world", "actions", "frame_valid", "has_actions",
        "instruction", "episode", "start"}  # fmt: skip


def test_sample_matches_contract():
    ep = make_synthetic_episode(T=12, cameras=("front", "side", "top"), per_frame_cameras=True)
    b = SampleBuilder(num_frames=5, stride=2, num_views=2, height=32, width=48, training=True)
    s = b(ep, rng=np.random.default_rng(0), episode_index=7)
    assert set(s) == KEYS
    V, F, H, W = 2, 5, 32, 48
    shapes = {"rgb": (V, 3, F, H, W), "action_images": (V, 3, F, H, W), "plucker": (V, 6, F, H, W),
              "K": (V, F, 3, 3), "cam_to_world": (V, F, 4, 4), "actions": (F, 7)}  # fmt: skip
    for key, shape in shapes.items():
        assert tuple(s[key].shape) == shape and s[key].dtype == torch.float32, key
    assert s["frame_valid"].dtype == torch.bool and s["frame_valid"].shape == (F,)
    assert s["has_actions"].dtype == torch.bool and s["has_actions"].shape == () and bool(s["has_actions"])
    assert s["rgb"].min() >= -1 and s["rgb"].max() <= 1
    assert s["action_images"].min() >= -1 and s["action_images"].max() <= 1 and s["action_images"].max() > 0.5
    assert s["episode"] == 7 and 0 <= s["start"] <= 12 - 9 and s["instruction"] == ep.instruction
    idx = s["start"] + 2 * np.arange(F)
    np.testing.assert_allclose(s["actions"].numpy(), ep.actions[idx], atol=1e-6)


def test_num_frames_must_suit_the_vae():
    with pytest.raises(ActionImagesError, match="1 mod 4"):
        SampleBuilder(num_frames=8)
    assert SampleBuilder(num_frames=8, vae_frames=False).num_frames == 8
    with pytest.raises(ActionImagesError, match="views"):
        SampleBuilder(num_views=2, views=["front"])


def test_short_episode_is_padded_and_marked_invalid():
    ep = make_synthetic_episode(T=6)
    b = SampleBuilder(num_frames=5, stride=2, num_views=2, height=64, width=64, training=False)
    s = b(ep)
    assert s["start"] == 0
    assert s["frame_valid"].tolist() == [True, True, True, False, False]
    np.testing.assert_allclose(s["actions"][3:].numpy(), np.stack([ep.actions[5]] * 2), atol=1e-6)
    torch.testing.assert_close(s["rgb"][:, :, 3], s["rgb"][:, :, 4])
    last = torch.from_numpy(ep.frames["front"][5]).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(s["rgb"][0, :, 4], last)  # same size: no resampling


def test_hold_final_lets_clips_run_past_the_end_as_valid_held_frames():
    ep = make_synthetic_episode(T=10)
    plain = SampleBuilder(num_frames=5, num_views=2, height=16, width=16, training=True)
    held = SampleBuilder(num_frames=5, num_views=2, height=16, width=16, training=True, hold_final=4)
    assert plain.max_start(10) == 5 and held.max_start(10) == 9  # the last frame, never past it
    assert SampleBuilder(num_frames=5, vae_frames=False, hold_final=9).max_start(10) == 9
    starts = {held(ep, rng=np.random.default_rng(i))["start"] for i in range(200)}
    assert starts == set(range(10))  # near-goal states get clips too
    s = held(ep, start=8)
    assert s["frame_valid"].all()  # frames 10-12 hold the last pose and count in the loss
    np.testing.assert_allclose(s["actions"][1:].numpy(), np.stack([ep.actions[9]] * 4), atol=1e-6)
    # the same clip without a hold masks what lies past the end
    assert plain(ep, start=8)["frame_valid"].tolist() == [True, True, False, False, False]
    # a hold of 1 keeps one held frame; the rest stays masked
    one = SampleBuilder(num_frames=5, num_views=2, height=16, width=16, training=True, hold_final=1)
    assert one(ep, start=8)["frame_valid"].tolist() == [True, True, True, False, False]
    with pytest.raises(ActionImagesError, match="hold_final"):
        SampleBuilder(hold_final=-1)


def test_views_fixed_for_eval_random_for_training():
    ep = make_synthetic_episode(T=5, cameras=("front", "side", "top"))
    ev = SampleBuilder(num_frames=1, num_views=2, height=16, width=16, training=False)
    assert ev.choose_views(ep, None) == ["front", "side"]
    tr = SampleBuilder(num_frames=1, num_views=2, height=16, width=16, training=True)
    picks = {tuple(tr.choose_views(ep, np.random.default_rng(i))) for i in range(30)}
    assert len(picks) > 3 and all(len(set(p)) == 2 for p in picks)
    named = SampleBuilder(num_frames=1, num_views=2, height=16, width=16, views=["top", "front"])
    s = named(ep, rng=np.random.default_rng(0))
    top = ep.cameras["top"].crop_resize(16, 16)
    np.testing.assert_allclose(s["K"][0, 0].numpy(), top.K, rtol=1e-6)
    with pytest.raises(DataError, match="requested views"):
        SampleBuilder(num_frames=1, num_views=1, views=["nope"])(ep)
    with pytest.raises(DataError, match="samples need 4 views"):
        SampleBuilder(num_frames=1, num_views=4)(ep)


@pytest.mark.parametrize("src,dst", [((96, 64), (48, 48)), ((64, 64), (40, 24)), ((50, 70), (64, 64))])
def test_crop_resize_keeps_projection_consistent(src, dst):
    """A ball drawn at a 3D point lands where the crop_resize camera projects it."""
    (sw, sh), (dw, dh) = src, dst
    cam = Camera.look_at(
        np.array([1.2, 0.1, 0.7]), np.array([0.5, 0.0, 0.1]), width=sw, height=sh, fov_y_deg=50
    )
    pts = [np.array([0.5, 0.0, 0.1]), np.array([0.55, 0.08, 0.15]), np.array([0.42, -0.06, 0.05])]
    new = cam.crop_resize(dw, dh)
    for p in pts:
        img = render_ball(cam, p, radius_m=0.05, color=(255, 0, 0))
        out = crop_resize_frames(img[None], dw, dh)[0].numpy()  # (3, dh, dw)
        red = np.clip(out[0] - out[1], 0, None)  # the ball is red, the floor grey
        v, u = np.mgrid[0:dh, 0:dw]
        centroid = np.array([(red * u).sum(), (red * v).sum()]) / red.sum()
        uv, _ = new.project(p[None])
        assert np.abs(centroid - uv[0]).max() < 0.35, (centroid, uv[0])


def test_action_images_align_with_cameras_and_plucker_reference():
    ep = make_synthetic_episode(T=5, width=80, height=64)
    b = SampleBuilder(num_frames=5, num_views=2, height=48, width=48, training=False)
    s = b(ep)
    for v in range(2):
        cam = Camera(s["K"][v, 0].double().numpy(), s["cam_to_world"][v, 0].double().numpy(), 48, 48)
        for t in range(5):
            red = s["action_images"][v, 0, t].numpy()
            peak = np.unravel_index(np.argmax(red), red.shape)
            uv, _ = cam.project(s["actions"][t, :3].double().numpy()[None])
            assert abs(peak[1] - uv[0, 0]) <= 1 and abs(peak[0] - uv[0, 1]) <= 1
    ref = ep.cameras["front"].crop_resize(48, 48)
    np.testing.assert_allclose(s["plucker"][0, :, 0].permute(1, 2, 0).numpy(), ref.plucker(), atol=1e-5)
    assert torch.all(s["plucker"][0, 3:].abs() < 1e-5)  # view 1 is the reference: zero moments
    assert s["plucker"][1, 3:].abs().max() > 0.01
    np.testing.assert_allclose(s["K"][0, 0].numpy(), ref.K, rtol=1e-6)


def test_video_only_episode():
    ep = make_synthetic_episode(T=5)
    vo = Episode(frames=ep.frames, cameras=ep.cameras, actions=np.zeros((5, 7)), has_actions=False, fps=5)
    s = SampleBuilder(num_frames=5, num_views=2, height=32, width=32, training=False)(vo)
    assert not bool(s["has_actions"]) and torch.all(s["actions"] == 0) and torch.all(s["action_images"] == -1)


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips") / "d"
    with DatasetWriter(root, fps=10) as w:
        for seed, T in enumerate([9, 14, 6]):
            w.add_episode(make_synthetic_episode(T=T, seed=seed, cameras=("front", "side", "top")))
    return DatasetReader(root)


def test_clip_dataset_with_dataloader_workers(reader):
    b = SampleBuilder(num_frames=5, stride=1, num_views=2, height=32, width=32, training=True)
    ds = ClipDataset(reader, b, samples_per_epoch=6, seed=3)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == 2
    batch = batches[0]
    assert set(batch) == KEYS
    assert batch["rgb"].shape == (3, 2, 3, 5, 32, 32) and batch["plucker"].shape == (3, 2, 6, 5, 32, 32)
    assert batch["episode"].tolist() == [0, 1, 2] and batch["episode"].dtype == torch.int64
    assert isinstance(batch["instruction"], list) and len(batch["instruction"]) == 3
    assert batch["has_actions"].shape == (3,) and batch["frame_valid"].shape == (3, 5)
    # static cameras: Plücker maps stay broadcast over frames through workers and collate
    assert batch["plucker"].stride(3) == 0
    torch.testing.assert_close(batch["plucker"], torch.stack([ds[i]["plucker"] for i in range(3)]))
    # deterministic whatever the worker count; a new epoch draws new clips
    again = collate([ds[i] for i in range(3)])
    torch.testing.assert_close(again["rgb"], batch["rgb"])
    assert again["start"].tolist() == batch["start"].tolist()
    first = [ds[i]["start"] for i in range(6)]
    draws = set()
    for epoch in range(1, 5):
        ds.set_epoch(epoch)
        draws.add(tuple(ds[i]["start"] for i in range(6)))
    assert len(draws - {tuple(first)}) >= 1


def test_clip_dataset_eval_covers_episodes(reader):
    b = SampleBuilder(num_frames=5, stride=1, num_views=2, height=16, width=16, training=False)
    ds = ClipDataset(reader, b, eval_clips="all")
    assert [(s["episode"], s["start"]) for s in (ds[i] for i in range(len(ds)))] == [
        (0, 0), (0, 5), (1, 0), (1, 5), (1, 10), (2, 0), (2, 5)]  # fmt: skip
    assert ClipDataset(reader, b).__len__() == 3


def test_skip_bad_episodes(tmp_path, caplog):
    root = tmp_path / "d"
    with DatasetWriter(root, fps=10) as w:
        for seed in range(3):
            w.add_episode(make_synthetic_episode(T=5, seed=seed))
    (root / "videos/observation.images.side/chunk-000/file-001.mp4").write_bytes(b"not a video")
    r = DatasetReader(root)
    b = SampleBuilder(num_frames=5, num_views=2, height=16, width=16, training=False)
    with pytest.raises(DataError, match="file-001.mp4"):
        ClipDataset(r, b)[1]
    ds = ClipDataset(r, b, skip_bad=True)
    with caplog.at_level("WARNING"):
        s = ds[1]
    assert s["episode"] == 2 and "skipping bad episode 1" in caplog.text
    assert [ds[i]["episode"] for i in range(3)] == [0, 2, 2]


@settings(max_examples=30, deadline=None)
@given(
    src=st.tuples(st.integers(2, 90), st.integers(2, 90)),
    dst=st.tuples(st.integers(2, 64), st.integers(2, 64)),
    value=st.integers(0, 255),
)
def test_resampling_preserves_constants_and_range(src, dst, value):
    frames = np.full((1, src[1], src[0], 3), value, np.uint8)
    out = crop_resize_frames(frames, dst[0], dst[1])
    assert out.shape == (1, 3, dst[1], dst[0])
    torch.testing.assert_close(out, torch.full_like(out, float(value)), atol=1e-3, rtol=0)
    noise = np.random.default_rng(0).integers(0, 256, (1, src[1], src[0], 3), dtype=np.uint8)
    out = crop_resize_frames(noise, dst[0], dst[1])
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3  # a convex filter: no overshoot
