"""Training and loading the baselines (``actionimages baseline train``), checkpointed and resumable.

A run directory holds ``baseline.json`` (kind, architecture, cameras, image size, horizon, steps,
wall time, loss curve) and ``model.safetensors``; both are replaced atomically at every checkpoint,
so an interrupted run resumes from its last checkpoint with the same settings.

:func:`export_baseline` (``actionimages export`` on a baseline run) writes a run as a small shipped
folder: the weights (fp16 by default), ``baseline.json`` and ``provenance.json`` with the weights'
SHA-256, which :func:`load_baseline` checks, as ``load_model`` does for world models.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from actionimages.atomic import atomic_dir, atomic_path
from actionimages.data.torch_dataset import EpisodeSource
from actionimages.errors import ActionImagesError
from actionimages.policy.baseline.common import (
    Demonstrations,
    chunk_loss,
    load_demonstrations,
    read_meta,
    state_features,
    write_meta,
)


def build_net(kind: str, arch: dict[str, Any]) -> torch.nn.Module:
    """The network of a baseline ``kind`` (``actionimages.policy.registry``) from its architecture."""
    from actionimages.policy.registry import POLICIES, baseline_kinds

    if kind not in baseline_kinds():
        raise ActionImagesError(f"unknown baseline kind {kind!r}; choose from {baseline_kinds()}")
    return POLICIES[kind].baseline_net(arch)


def _batch(
    demos: Demonstrations, idx: np.ndarray, rng: np.random.Generator, augment: bool, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor | None, torch.Tensor]:
    img = torch.from_numpy(demos.images[idx]).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0  # (B, V, 3, H, W)
    if augment:  # random shifts of up to 4 px (replicate padding), a standard BC augmentation
        b, v, c, h, w = img.shape
        pad = torch.nn.functional.pad(img.flatten(0, 1), (4, 4, 4, 4), mode="replicate")
        out = torch.empty_like(img.flatten(0, 1))
        offs = rng.integers(0, 9, size=(b * v, 2))
        for i, (dy, dx) in enumerate(offs):
            out[i] = pad[i, :, dy : dy + h, dx : dx + w]
        img = out.view(b, v, c, h, w)
    state = torch.from_numpy(state_features(demos.state[idx]))
    text = [demos.instructions[i] for i in demos.text[idx]]
    plk = torch.from_numpy(demos.plucker[demos.slot[idx]]) if demos.plucker is not None else None
    plk = plk.to(device) if plk is not None else None
    return img.to(device), state.to(device), text, plk, torch.from_numpy(demos.targets[idx]).to(device)


def train_baseline(
    kind: str,
    data: str | Path | EpisodeSource,
    out: str | Path,
    minutes: float = 5.0,
    max_steps: int | None = None,
    batch_size: int = 32,
    lr: float = 3e-4,
    horizon: int = 8,
    cameras: list[str] | None = None,
    image_size: int = 64,
    model_config: str = "tiny",
    film: bool = False,
    checkpoint_every: int = 200,
    seed: int = 0,
    max_episodes: int | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train a baseline on a demonstration dataset for ``minutes`` of wall time (or ``max_steps``).

    ``data`` is a dataset directory or any episode source (``len`` + ``episode(i)`` + ``cameras``);
    ``device`` where the network trains (the checkpoint is written from CPU copies either way).

    Resumes from ``out`` when it already holds a checkpoint of the same kind (the step budget and
    time budget count the earlier run too). Returns the final ``baseline.json`` content.
    """
    from actionimages.policy.registry import baseline_kinds

    if kind not in baseline_kinds():
        raise ActionImagesError(f"unknown baseline kind {kind!r}; choose from {baseline_kinds()}")
    if film and kind != "bc":
        raise ActionImagesError(f"--film is a bc option (the {kind!r} baseline has no CNN to modulate)")
    if not minutes > 0 and not max_steps:
        raise ActionImagesError("give a positive --minutes or --max-steps")
    out = Path(out)  # made once the demonstrations load: a bad --data leaves no OUT behind
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    meta: dict[str, Any]
    if (out / "baseline.json").is_file() and (out / "model.safetensors").is_file():
        meta = read_meta(out)
        if meta["kind"] != kind:
            raise ActionImagesError(f"{out} holds a {meta['kind']!r} baseline, not {kind!r}")
        net = build_net(kind, meta["arch"])
        net.load_state_dict(load_file(out / "model.safetensors"))
        rng = np.random.default_rng(seed + meta["step"])
    else:
        if kind == "lowdim":
            from actionimages.model.config import get_config

            size = get_config(model_config).height
            arch = {"model_config": model_config, "num_views": 2, "horizon": horizon}
        else:
            size = image_size
            arch = {"num_views": 2, "horizon": horizon} | ({"film": True} if film else {})
        meta = {
            "kind": kind,
            "arch": arch,
            "image_size": size,
            "cameras": cameras,
            "horizon": horizon,
            "data": str(Path(data).resolve()) if isinstance(data, str | Path) else repr(data),
            "step": 0,
            "train_seconds": 0.0,
            "batch_size": batch_size,
            "lr": lr,
            "losses": [],
        }
        net = build_net(kind, arch)
    demos = load_demonstrations(
        data,
        meta["cameras"],
        meta["image_size"],
        meta["image_size"],
        meta["horizon"],
        with_plucker=kind == "lowdim",
        max_episodes=max_episodes,
    )
    out.mkdir(parents=True, exist_ok=True)
    meta["cameras"] = demos.cameras
    meta["train_frames"] = int(len(demos.state))
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=meta["lr"], weight_decay=1e-4)
    if (out / "optimizer.pt").is_file():
        opt.load_state_dict(torch.load(out / "optimizer.pt", weights_only=True, map_location=device))
    budget = minutes * 60.0
    net.train()

    def save() -> None:
        with atomic_path(out / "model.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, tmp)
        with atomic_path(out / "optimizer.pt") as tmp:
            torch.save(opt.state_dict(), tmp)
        write_meta(out, meta)

    t0 = time.perf_counter() - meta["train_seconds"]
    cpu0 = time.process_time() - meta.get("cpu_seconds", 0.0)  # CPU time across resumes
    bar = tqdm(desc=f"baseline {kind}", unit="step", initial=meta["step"], disable=not progress)
    running = None
    while True:
        elapsed = time.perf_counter() - t0
        if (max_steps and meta["step"] >= max_steps) or (not max_steps and elapsed >= budget):
            break
        idx = rng.integers(0, len(demos.state), size=meta["batch_size"])
        img, state, text, plk, target = _batch(demos, idx, rng, augment=True, device=device)
        with torch.enable_grad():
            loss = chunk_loss(net(img, state, text, plk), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        meta["step"] += 1
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}")
        if meta["step"] % 20 == 0:
            meta["losses"].append([meta["step"], round(running, 5)])
        if meta["step"] % checkpoint_every == 0:
            meta["train_seconds"] = time.perf_counter() - t0
            meta["cpu_seconds"] = time.process_time() - cpu0
            save()
    bar.close()
    meta["train_seconds"] = time.perf_counter() - t0
    meta["cpu_seconds"] = time.process_time() - cpu0
    if running is not None:
        meta["final_loss"] = round(running, 5)  # the smoothed loss at the last step of this call
    save()
    return meta


def load_baseline(run: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained network (eval mode) and ``baseline.json`` of a baseline run directory."""
    from actionimages.model.io import verify_recorded_checksums

    run = Path(run)
    if (run / "baseline.json").is_file():  # an exported folder: weights and baseline.json as recorded
        verify_recorded_checksums(run)  # before baseline.json is parsed
    meta = read_meta(run)
    if not (run / "model.safetensors").is_file():
        raise ActionImagesError(f"{run}: no model.safetensors (training never checkpointed)")
    net = build_net(meta["kind"], meta["arch"])
    net.load_state_dict(load_file(run / "model.safetensors"))  # fp16 exports load back as fp32
    return net.eval(), meta


def export_baseline(
    run: str | Path,
    out: str | Path,
    dtype: str,
    provenance: dict[str, Any],
    extra_files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write the baseline run ``run`` as the folder ``out`` (replaced atomically) and return its
    provenance: ``model.safetensors`` in ``dtype``, ``baseline.json`` (no optimizer state) and
    ``provenance.json`` = ``provenance`` plus kind, step, parameter count and the weights' SHA-256."""
    from actionimages.model.io import WEIGHT_DTYPES, write_provenance

    if dtype not in WEIGHT_DTYPES:
        raise ActionImagesError(f"dtype must be one of {tuple(WEIGHT_DTYPES)}, got {dtype!r}")
    net, meta = load_baseline(run)
    with atomic_dir(out) as tmp:
        weights = tmp / "model.safetensors"
        cast = WEIGHT_DTYPES[dtype]
        save_file({k: v.detach().to(cast).contiguous() for k, v in net.state_dict().items()}, weights)
        write_meta(tmp, meta)
        params = sum(p.numel() for p in net.parameters())
        info = {**provenance, "kind": meta["kind"], "step": meta["step"]}
        return write_provenance(tmp, weights, dtype, params, info, extra_files)
