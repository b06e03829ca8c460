"""Generation-quality and action metrics: PSNR, SSIM, LPIPS, FVD, pose errors.

PSNR and SSIM are implemented here in torch. LPIPS and FVD need pretrained backbones
(ImageNet AlexNet + LPIPS linear heads; the I3D TorchScript detector). They are loaded only from
local files under a weights directory (``$ACTIONIMAGES_WEIGHTS``, default
``~/.cache/actionimages/weights``) and are otherwise reported as unavailable, never faked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from actionimages.codec.poses import actions_to_matrices, rotation_angle_between
from actionimages.errors import ActionImagesError

WEIGHTS_ENV = "ACTIONIMAGES_WEIGHTS"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet state dict
LPIPS_LIN_FILE = "lpips_alex.pth"  # LPIPS v0.1 linear heads for AlexNet (the lpips package's alex.pth)
I3D_FILE = "i3d_torchscript.pt"  # the TorchScript I3D used by common FVD implementations


def weights_dir(path: str | Path | None = None) -> Path:
    """The directory searched for pretrained metric weights."""
    if path is not None:
        return Path(path)
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env) if env else Path.home() / ".cache" / "actionimages" / "weights"


def _check_pair(a: torch.Tensor, b: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(a)
    b = torch.as_tensor(b)
    if a.shape != b.shape:
        raise ActionImagesError(f"{name}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise ActionImagesError(f"{name}: expected (N, C, H, W) images, C in (1, 3); got {tuple(a.shape)}")
    a, b = a.double(), b.double()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ActionImagesError(f"{name}: images contain NaN or inf")
    return a, b


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image.

    Args:
        pred, target: (N, C, H, W) images with values spanning ``data_range`` (1 for [0, 1]).
    Returns:
        (N,) float64; identical images give +inf.
    """
    a, b = _check_pair(pred, target, "psnr")
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image, Gaussian window, 'valid' filtering.

    Args:
        pred, target: (N, C, H, W); both sides must be at least ``window`` pixels.
    Returns:
        (N,) float64 in [-1, 1], the mean SSIM over pixels and channels.
    """
    a, b = _check_pair(pred, target, "ssim")
    if min(a.shape[-2:]) < window:
        raise ActionImagesError(f"ssim: images {tuple(a.shape[-2:])} are smaller than the {window}-px window")
    C = a.shape[1]
    g = _gaussian_window(window, sigma, a.dtype)
    # Separable Gaussian filter, applied per channel.
    kx = g.view(1, 1, 1, window).repeat(C, 1, 1, 1)
    ky = g.view(1, 1, window, 1).repeat(C, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, kx, groups=C), ky, groups=C)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(1)


# ------------------------------------------------------------------- LPIPS
class _AlexFeatures(nn.Module):
    """AlexNet's convolutional trunk, laid out like torchvision's so its state dict loads."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
        )
        self.taps = (1, 4, 7, 9, 11)  # relu1 .. relu5

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class LPIPS(nn.Module):
    """Learned perceptual distance (Zhang et al. 2018), AlexNet variant v0.1.

    Call with two (N, 3, H, W) batches in [-1, 1]; returns (N,) distances (lower = more similar).
    """

    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        self.net = _AlexFeatures()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise ActionImagesError(f"LPIPS: expected two (N, 3, H, W) batches, got {a.shape} and {b.shape}")
        fa = self.net((a.float() - self.shift) / self.scale)
        fb = self.net((b.float() - self.shift) / self.scale)
        total = torch.zeros(a.shape[0])
        for lin, x, y in zip(self.lins, fa, fb, strict=True):
            x = x / (x.norm(dim=1, keepdim=True) + 1e-10)
            y = y / (y.norm(dim=1, keepdim=True) + 1e-10)
            total = total + lin((x - y) ** 2).mean(dim=(1, 2, 3))
        return total

    @classmethod
    def from_state_dicts(cls, alexnet: dict[str, torch.Tensor], lins: dict[str, torch.Tensor]) -> LPIPS:
        """Build from torchvision AlexNet weights and the lpips package's linear-head weights."""
        model = cls()
        trunk = {k: v for k, v in alexnet.items() if k.startswith("features.")}
        missing, _ = model.net.load_state_dict(trunk, strict=False)
        if missing:
            raise ActionImagesError(f"LPIPS: AlexNet weights lack {missing}")
        for i, lin in enumerate(model.lins):
            key = next((k for k in (f"lin{i}.model.1.weight", f"lin{i}.weight") if k in lins), None)
            if key is None:
                raise ActionImagesError(f"LPIPS: linear-head weights lack lin{i}.model.1.weight")
            got, need = tuple(lins[key].shape), tuple(lin.weight.shape)
            if got != need:
                raise ActionImagesError(f"LPIPS: lin{i} weight is {got}, need {need}")
            lin.weight.data.copy_(lins[key])
        return model.eval()


@dataclass
class Availability:
    """Whether a pretrained metric could be loaded, and why not."""

    available: bool
    reason: str = ""


def load_lpips(directory: str | Path | None = None) -> tuple[LPIPS | None, Availability]:
    """LPIPS from ``<dir>/alexnet-owt-7be5be79.pth`` and ``<dir>/lpips_alex.pth``, or ``None`` and why."""
    d = weights_dir(directory)
    files = [d / ALEXNET_FILE, d / LPIPS_LIN_FILE]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        return None, Availability(False, f"weights not found: {', '.join(absent)}")
    try:
        alex = torch.load(files[0], map_location="cpu", weights_only=True)
        lins = torch.load(files[1], map_location="cpu", weights_only=True)
        return LPIPS.from_state_dicts(alex, lins), Availability(True)
    except (OSError, RuntimeError, ActionImagesError, KeyError) as exc:
        return None, Availability(False, f"could not load LPIPS weights from {d}: {exc}")


# --------------------------------------------------------------------- FVD
def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D)."""
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ActionImagesError(f"frechet_distance: need (N, D) and (M, D), got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ActionImagesError("frechet_distance: need at least two samples per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)  # sqrtm of a PSD product has negligible imaginary noise
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


class FVD:
    """Fréchet video distance with a local TorchScript I3D detector.

    The detector is called as ``det(x, rescale=False, resize=False, return_features=True)`` on
    (N, 3, T, 224, 224) float videos in [-1, 1] and must return (N, 400) features.
    """

    def __init__(self, detector: torch.nn.Module) -> None:
        self.detector = detector

    @torch.no_grad()
    def features(self, videos: torch.Tensor, batch: int = 4) -> np.ndarray:
        """Videos (N, 3, T, H, W) in [-1, 1] -> I3D features (N, D)."""
        if videos.ndim != 5 or videos.shape[1] != 3:
            raise ActionImagesError(f"FVD: videos must be (N, 3, T, H, W), got {tuple(videos.shape)}")
        if videos.shape[2] < 9:
            raise ActionImagesError(f"FVD: I3D needs at least 9 frames, got {videos.shape[2]}")
        out = []
        for i in range(0, videos.shape[0], batch):
            v = videos[i : i + batch].float()
            n, c, t, h, w = v.shape
            frames = v.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
            frames = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
            v = frames.reshape(n, t, c, 224, 224).permute(0, 2, 1, 3, 4).clamp(-1, 1)
            out.append(self.detector(v, rescale=False, resize=False, return_features=True).cpu().numpy())
        return np.concatenate(out)

    def __call__(self, fake: torch.Tensor, real: torch.Tensor) -> float:
        return frechet_distance(self.features(fake), self.features(real))


def load_fvd(directory: str | Path | None = None) -> tuple[FVD | None, Availability]:
    """FVD from ``<dir>/i3d_torchscript.pt``, or ``None`` and why."""
    f = weights_dir(directory) / I3D_FILE
    if not f.is_file():
        return None, Availability(False, f"weights not found: {f}")
    try:
        return FVD(torch.jit.load(str(f), map_location="cpu").eval()), Availability(True)
    except (OSError, RuntimeError) as exc:
        return None, Availability(False, f"could not load I3D from {f}: {exc}")


# ----------------------------------------------------------- action errors
def pose_errors(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame errors between action trajectories (..., 7|8).

    Returns ``position_m`` (...,) Euclidean position error in metres, ``rotation_deg`` (...,)
    geodesic rotation error in degrees and ``gripper_correct`` (...,) bool (openness on the same side
    of 0.5).
    """
    p_a, R_a, g_a = actions_to_matrices(pred)
    p_b, R_b, g_b = actions_to_matrices(target)
    if p_a.shape != p_b.shape:
        raise ActionImagesError(f"pose_errors: shapes differ, {np.shape(pred)} vs {np.shape(target)}")
    return {
        "position_m": np.linalg.norm(p_a - p_b, axis=-1),
        "rotation_deg": np.rad2deg(rotation_angle_between(R_a, R_b)),
        "gripper_correct": (g_a > 0.5) == (g_b > 0.5),
    }
