"""Statistics, image/video metrics and video writing for the evaluation package."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from actionimages.errors import ActionImagesError
from actionimages.eval.metrics import (
    LPIPS,
    frechet_distance,
    load_fvd,
    load_lpips,
    pose_errors,
    psnr,
    ssim,
)
from actionimages.eval.stats import wilson_interval
from actionimages.eval.video import read_video, tile_rollout_frame, write_video


# ------------------------------------------------------------------ Wilson
def test_wilson_known_values():
    # Reference: 8/10 -> (0.4902, 0.9433) (Wilson 1927 / standard tables).
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    lo, hi = wilson_interval(0, 20)
    assert 0.15 < hi < 0.18  # 0 successes still leaves a real upper bound


@pytest.mark.parametrize("k,n", [(3, 7), (25, 50), (49, 50), (1, 100)])
def test_wilson_matches_scipy(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)
    assert lo <= k / n <= hi


@pytest.mark.parametrize("k,n", [(1, 0), (-1, 5), (6, 5), (1.5, 3), (True, 3)])
def test_wilson_rejects_bad_counts(k, n):
    with pytest.raises(ActionImagesError):
        wilson_interval(k, n)


# ------------------------------------------------------------- PSNR / SSIM
def test_psnr_exact():
    a = torch.zeros(2, 3, 16, 16)
    b = a + 0.1  # MSE 0.01 -> 20 dB
    assert torch.allclose(psnr(a, b), torch.full((2,), 20.0, dtype=torch.float64))
    assert torch.isinf(psnr(a, a)).all()


def test_ssim_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    noisy = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    very = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    s1, s2 = ssim(x, noisy), ssim(x, very)
    assert (s1 < 1).all() and (s2 < s1).all()
    # Symmetric, and invariant-free: a constant shift of a flat image lowers only luminance term.
    assert torch.allclose(ssim(x, noisy), ssim(noisy, x))


def test_ssim_matches_reference_formula_on_constant_images():
    # For constant images SSIM reduces to the luminance term (2ab + c1) / (a² + b² + c1).
    a, b = 0.3, 0.6
    x, y = torch.full((1, 1, 20, 20), a), torch.full((1, 1, 20, 20), b)
    c1 = 0.01**2
    assert ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)


def test_metrics_reject_bad_shapes():
    with pytest.raises(ActionImagesError):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ActionImagesError):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))  # smaller than the window
    with pytest.raises(ActionImagesError):
        psnr(torch.zeros(3, 16, 16), torch.zeros(3, 16, 16))


# ---------------------------------------------------------------- LPIPS / FVD
def test_lpips_and_fvd_unavailable_without_weights(tmp_path):
    model, avail = load_lpips(tmp_path)
    assert model is None and not avail.available and "not found" in avail.reason
    fvd, avail = load_fvd(tmp_path)
    assert fvd is None and not avail.available and "i3d" in avail.reason


def test_lpips_loads_state_dicts_in_the_published_layouts(tmp_path):
    # Weights in torchvision's AlexNet key layout and the lpips package's head layout (random values:
    # this tests the loader and the distance's properties, not the pretrained numbers).
    torch.manual_seed(0)
    ref = LPIPS()
    alex = {f"features.{k}": v for k, v in ref.net.features.state_dict().items()}
    alex["classifier.1.weight"] = torch.zeros(4, 4)  # extra keys in the torchvision file are ignored
    lins = {f"lin{i}.model.1.weight": torch.rand_like(lin.weight) for i, lin in enumerate(ref.lins)}
    torch.save(alex, tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(lins, tmp_path / "lpips_alex.pth")
    model, avail = load_lpips(tmp_path)
    assert avail.available and model is not None
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    d_same, d_diff = model(x, x), model(x, y)
    assert torch.allclose(d_same, torch.zeros(2)) and (d_diff > 0).all()
    # A broken head is reported as unavailable with the reason, not silently used.
    lins["lin2.model.1.weight"] = torch.zeros(1, 7, 1, 1)
    torch.save(lins, tmp_path / "lpips_alex.pth")
    model, avail = load_lpips(tmp_path)
    assert model is None and "lin2" in avail.reason


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    a -= a.mean(0)  # centred, so scaling below changes only the covariance
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = a + np.array([1.0, 0, 0, 0])
    assert frechet_distance(a, b) == pytest.approx(1.0, abs=1e-6)  # pure mean shift: |Δμ|²
    c = a * 2.0  # covariance 4Σ: trace term = tr(Σ + 4Σ - 2·2Σ) = tr(Σ)
    assert frechet_distance(a, c) == pytest.approx(np.trace(np.cov(a, rowvar=False)), rel=1e-6)
    with pytest.raises(ActionImagesError):
        frechet_distance(a, a[:, :3])


# ------------------------------------------------------------------ poses
def test_pose_errors():
    a = np.array([[0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.5, 0.1, 0.2, 0.3, 0.0]])
    b = a.copy()
    b[0, :3] += [0.03, 0.04, 0.0]
    b[1, 5] += math.radians(10)  # 10° about world z (extrinsic xyz: last angle is about z)
    b[1, 6] = 1.0
    e = pose_errors(a, b)
    assert e["position_m"][0] == pytest.approx(0.05)
    assert e["rotation_deg"][0] == pytest.approx(0.0, abs=1e-6)
    assert e["rotation_deg"][1] == pytest.approx(10.0, abs=1e-6)
    assert e["gripper_correct"].tolist() == [True, False]


# ------------------------------------------------------------------ video
def test_write_and_read_video_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for t in range(6):
        f = np.zeros((33, 47, 3), np.uint8)  # odd size: padded to even for yuv420p
        f[:, : 8 * (t + 1)] = [200, 50, 50]
        frames.append(f)
    path = write_video(frames, tmp_path / "v" / "clip.mp4", fps=5)
    back = read_video(path)
    assert back.shape == (6, 34, 48, 3)
    # Lossy codec: compare coarse content (bar width grows per frame).
    red = (back[..., 0] > 120).mean(axis=(1, 2))
    assert np.all(np.diff(red) > 0)
    assert not list(tmp_path.glob("v/*.tmp.mp4"))
    with pytest.raises(ActionImagesError):
        write_video([], tmp_path / "x.mp4")
    with pytest.raises(ActionImagesError):
        write_video([frames[0], rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)], tmp_path / "y.mp4")


def test_tile_rollout_frame():
    obs = {"front": np.full((20, 30, 3), 10, np.uint8), "side": np.full((20, 30, 3), 20, np.uint8)}
    act = {"front": np.ones((10, 15, 3), np.float32)}  # smaller float image: upsampled, scaled
    tile = tile_rollout_frame(obs, act, gap=2)
    assert tile.shape == (42, 62, 3)
    assert (tile[:20, :30] == 10).all() and (tile[:20, 32:] == 255).all()
    assert (tile[22:, 32:] == 0).all()  # no action image for "side": black
    with pytest.raises(ActionImagesError):
        tile_rollout_frame({})
