"""Sampling in every mask mode with one function: :func:`generate`.

Euler integration of the rectified-flow ODE from σ = 1 to 0 over shifted σ steps; given latent
frames are held clean at t = 0, absent ones at pure noise and t = 1000, and only generated ones
move. Classifier-free guidance runs the conditional and the empty-instruction branch as one batch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actionimages.codec import ActionImageCodec, Camera
from actionimages.errors import ActionImagesError
from actionimages.model.flow import SIGMA_MIN_X, check_batch, observation_to_uint8, shift_sigma
from actionimages.model.masks import ABSENT, GENERATE, GIVEN, MODES, mode_states
from actionimages.model.network import WorldActionModel


@dataclass
class Generation:
    """Output of :func:`generate`.

    rgb, action_images: (B, V, 3, F, H, W) in [-1, 1]: generated segments decoded, given frames
        copied from the input exactly, absent segments copied from the input as it was passed;
    actions: (B, F, 7) float32 decoded from ``action_images`` by the codec (NaN where decoding was
        not requested); valid: (B, F) bool, the codec's per-frame validity;
    latents: (B, C, S·f, h, w) final normalised latents; states: (S, f) GIVEN/GENERATE/ABSENT.
    """

    rgb: torch.Tensor
    action_images: torch.Tensor
    actions: torch.Tensor
    valid: torch.Tensor
    latents: torch.Tensor
    states: torch.Tensor
    mode: str


def _frames_to(x: torch.Tensor, frames: int, name: str) -> torch.Tensor:
    """(B, V, C, F', H, W) with F' = frames or 1 -> F' = frames (a single frame is repeated)."""
    if x.shape[3] == frames:
        return x
    if x.shape[3] == 1:
        return x.expand(-1, -1, -1, frames, -1, -1)
    raise ActionImagesError(f"batch[{name!r}] has {x.shape[3]} frames; expected {frames} or 1")


def batch_cameras(batch: Mapping[str, Any], index: int) -> list[Camera] | list[list[Camera]]:
    """Cameras of sample ``index`` from ``K`` (B, V, F, 3, 3) and ``cam_to_world`` (B, V, F, 4, 4)."""
    if "K" not in batch or "cam_to_world" not in batch:
        raise ActionImagesError("decoding actions needs batch['K'] and batch['cam_to_world']")
    K = torch.as_tensor(batch["K"])[index].double().cpu().numpy()
    T = torch.as_tensor(batch["cam_to_world"])[index].double().cpu().numpy()
    h, w = batch["rgb"].shape[-2:]
    if K.ndim != 4 or T.ndim != 4:
        raise ActionImagesError(
            f"K/cam_to_world must be (B, V, F, 3, 3)/(B, V, F, 4, 4), got {K.shape}/{T.shape}"
        )
    static = np.allclose(K, K[:, :1]) and np.allclose(T, T[:, :1])
    if static:
        return [Camera(K[v, 0], T[v, 0], int(w), int(h)) for v in range(K.shape[0])]
    return [[Camera(K[v, t], T[v, t], int(w), int(h)) for t in range(K.shape[1])] for v in range(K.shape[0])]


def decode_actions(
    batch: Mapping[str, Any],
    action_images: torch.Tensor,
    sigma_frac: float,
    reproj_threshold_px: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codec-decode action videos (B, V, 3, F, H, W) in [-1, 1] -> actions (B, F, 7), valid (B, F).

    ``sigma_frac`` is the blob width the images were drawn with (the model's ``action_sigma_frac``;
    required, since decoding with the wrong width silently misplaces the peaks).

    Frames the codec reads but cannot triangulate come back with ``valid`` False (poses interpolated
    from valid neighbours, NaN if none is; see :class:`~actionimages.codec.DecodeResult`);
    ``reproj_threshold_px`` is the codec's view-consistency tolerance (default: its own). Its peak
    fits and triangulation do not raise. A video it cannot read at all (NaN or inf, e.g. from a
    diverged generation) raises the codec's :class:`ActionImagesError`, naming the sample; the
    policy counts that in its ``decode_errors``.
    """
    acts, valid = [], []
    for i in range(action_images.shape[0]):
        codec = ActionImageCodec(
            batch_cameras(batch, i), sigma_frac=sigma_frac, reproj_threshold_px=reproj_threshold_px
        )
        imgs = ((action_images[i].float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1)  # (V, F, H, W, 3)
        try:
            res = codec.decode(imgs.cpu())
        except ActionImagesError as exc:
            raise ActionImagesError(f"the codec cannot decode action video {i} of the batch: {exc}") from exc
        acts.append(torch.as_tensor(np.asarray(res.actions), dtype=torch.float32))
        valid.append(torch.as_tensor(np.asarray(res.valid), dtype=torch.bool))
    return torch.stack(acts), torch.stack(valid)


class _Clock:
    """Laps of wall time into a dict (no-op without one)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into, self.t = into, time.perf_counter()

    def lap(self, name: str) -> None:
        if self.into is not None:
            now = time.perf_counter()
            self.into[name] = self.into.get(name, 0.0) + now - self.t
            self.t = now


@torch.no_grad()
def generate(
    model: WorldActionModel,
    batch: Mapping[str, Any],
    mode: str = "joint",
    num_steps: int = 10,
    guidance: float = 1.0,
    seed: int = 0,
    decode_rgb: bool = True,
    decode_action_poses: bool = True,
    timings: dict[str, float] | None = None,
) -> Generation:
    """Generate the segments ``mode`` asks for, given the rest.

    ``timings``, when given, receives seconds per stage: ``encode`` (the autoencoder on the given
    frames), ``text``, ``denoise`` (the transformer's Euler steps), ``decode`` (the autoencoder on
    the generated segments) and, with ``decode_action_poses``, ``codec``.

    Args:
        model: a :class:`WorldActionModel` (put in eval mode here).
        batch: the training-sample contract, collated: ``rgb``, ``action_images`` (B, V, 3, F, H, W)
            in [-1, 1] (F = the config's frames, or 1 when only first frames are given: ``joint``,
            ``video``, ``i2a``, ``view1`` for views > 1), ``plucker`` (B, V, 6, F|1, H, W),
            ``K``/``cam_to_world`` (for action decoding), ``instruction`` (B str). Frames a mode
            does not give are ignored (their content does not matter).
        mode: one of ``joint``, ``a2v``, ``v2a``, ``video``, ``i2a`` (and ``view1``).
        num_steps: Euler steps; guidance: classifier-free guidance scale (1 = off).
        seed: noise seed; the same seed gives the same output.
        decode_rgb: decode generated RGB segments (skip for a policy that needs only actions).
        decode_action_poses: run the codec on the action video.
    Returns:
        :class:`Generation`.
    Raises:
        ActionImagesError: bad arguments or batch; with ``decode_action_poses``, also an action
            video the codec cannot decode at all (see :func:`decode_actions`).
    """
    if mode not in MODES:
        raise ActionImagesError(f"unknown mode {mode!r}; known: {MODES}")
    if num_steps < 1:
        raise ActionImagesError(f"num_steps must be >= 1, got {num_steps}")
    cfg = model.spec
    model.eval()
    dev = model.device
    states = mode_states(mode, cfg.num_views, cfg.latent_frames)  # (S, f)
    needs_all = bool(((states[:, 1:] == GIVEN).any()).item())
    f_in = batch["rgb"].shape[3] if isinstance(batch.get("rgb"), torch.Tensor) else -1
    if needs_all and f_in != cfg.num_frames:
        raise ActionImagesError(
            f"mode {mode!r} needs whole given clips of {cfg.num_frames} frames, got {f_in}"
        )
    full = dict(batch)
    for key in ("rgb", "action_images", "plucker"):
        if key not in batch:
            raise ActionImagesError(f"batch is missing {key!r}")
        full[key] = _frames_to(batch[key].float(), cfg.num_frames, key)
    b = check_batch(model, full)

    # Encode only what is given: first frames alone (causal VAE: latent 0 depends on frame 0 only).
    streams = torch.stack([full["rgb"], full["action_images"]], 2).flatten(1, 2)  # (B, S, 3, F, H, W)
    c, f = cfg.latent.channels, cfg.latent_frames
    hl, wl = cfg.latent_hw
    x0 = torch.zeros(b, cfg.num_segments, c, f, hl, wl, device=dev)
    first_only = [
        s for s in range(cfg.num_segments) if states[s, 0] == GIVEN and not (states[s, 1:] == GIVEN).any()
    ]
    whole = [s for s in range(cfg.num_segments) if (states[s, 1:] == GIVEN).any()]
    clock = _Clock(timings)
    if first_only:
        clips = streams[:, first_only, :, :1].flatten(0, 1).to(dev)
        x0[:, first_only, :, :1] = model.latent_space.encode(clips).unflatten(0, (b, len(first_only)))
    if whole:
        clips = streams[:, whole].flatten(0, 1).to(dev)
        x0[:, whole] = model.latent_space.encode(clips).unflatten(0, (b, len(whole)))
    x0 = x0.permute(0, 2, 1, 3, 4, 5).flatten(2, 3)  # (B, C, S·f, h, w)
    clock.lap("encode")

    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(x0.shape, generator=gen).to(dev)
    st = states.flatten().to(dev)  # (S·f,)
    given, generated = (st == GIVEN)[None, None, :, None, None], (st == GENERATE)[None, None, :, None, None]
    x = eps.clone()
    camera = model.plucker_features(full["plucker"].to(dev))
    text = model.encode_text(list(full["instruction"]))
    clock.lap("text")
    observation = None
    if cfg.obs_patch:  # the current frames in pixel space, quantised as in training
        observation = observation_to_uint8(full["rgb"][:, :, :, 0]).to(dev).float() / 127.5 - 1.0
    cfg_on = guidance != 1.0
    if cfg_on:  # guidance on the instruction only: both branches see the same observation
        text = torch.cat([text, model.encode_text([""] * b)])
        camera = torch.cat([camera, camera])
        observation = None if observation is None else torch.cat([observation, observation])
    sigmas = shift_sigma(torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64), cfg.timestep_shift)
    for i in range(num_steps):
        sig, sig_next = float(sigmas[i]), float(sigmas[i + 1])
        x_in = torch.where(given, x0, torch.where(generated, x, eps))
        t_frame = torch.where(st == GIVEN, 0.0, torch.where(st == GENERATE, sig, 1.0)) * 1000.0
        t_frame = t_frame[None].expand(b, -1)
        if cfg_on:
            out = model(torch.cat([x_in, x_in]), torch.cat([t_frame, t_frame]), text, camera, observation)
        else:
            out = model(x_in, t_frame, text, camera, observation)
        if cfg.prediction == "x":
            out = (torch.cat([x_in, x_in]) if cfg_on else x_in) - out
            out = out / max(sig, SIGMA_MIN_X)
        if cfg_on:
            v_c, v_u = out[:b], out[b:]
            v = v_u + guidance * (v_c - v_u)
        else:
            v = out
        x = torch.where(generated, x + (sig_next - sig) * v, x)
    latents = torch.where(given, x0, torch.where(generated, x, eps))
    clock.lap("denoise")

    # Decode generated segments; paste given frames back exactly; leave absent ones as passed in.
    out_streams = streams.clone()
    gen_segments = [s for s in range(cfg.num_segments) if (states[s] == GENERATE).any()]
    if not decode_rgb:
        gen_segments = [s for s in gen_segments if s % 2 == 1]
    if gen_segments:
        z = latents.unflatten(2, (cfg.num_segments, f))[:, :, gen_segments]  # (B, C, n, f, h, w)
        z = z.permute(0, 2, 1, 3, 4, 5).flatten(0, 1)
        video = model.latent_space.decode(z).unflatten(0, (b, len(gen_segments))).to(out_streams.device)
        t = cfg.latent.temporal
        for j, s in enumerate(gen_segments):
            keep = streams[:, s].clone()
            out_streams[:, s] = video[:, j]
            for lf in range(f):  # latent frame lf covers video frames {0} or 4lf-3 .. 4lf
                if states[s, lf] == GIVEN:
                    sl = slice(0, 1) if lf == 0 else slice(1 + t * (lf - 1), 1 + t * lf)
                    out_streams[:, s, :, sl] = keep[:, :, sl]
    out_streams = out_streams.unflatten(1, (cfg.num_views, 2))
    rgb, act = out_streams[:, :, 0], out_streams[:, :, 1]
    clock.lap("decode")
    if decode_action_poses:
        actions, valid = decode_actions(full, act, cfg.action_sigma_frac)
        clock.lap("codec")
    else:
        actions = torch.full((b, cfg.num_frames, 7), float("nan"))
        valid = torch.zeros(b, cfg.num_frames, dtype=torch.bool)
    return Generation(
        rgb=rgb, action_images=act, actions=actions, valid=valid, latents=latents, states=states, mode=mode
    )


__all__ = ["ABSENT", "GENERATE", "GIVEN", "Generation", "batch_cameras", "decode_actions", "generate"]
