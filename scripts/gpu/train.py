"""Train a world model or image BC on a packed dataset for a fixed wall time (the GPU experiment).

The device machine has a GPU but no PyAV, so episodes arrive packed by ``scripts/gpu/pack.py``
and are read here as in-memory :class:`~actionimages.data.Episode` objects; everything else is the
project's own code: :class:`~actionimages.train.Trainer` for the world model (latent cache filled
by DataLoader workers first), :func:`~actionimages.policy.baseline.train.train_baseline` for BC.

World-model results are written as the EMA weights of the trainable parameters (fp16, no VAE:
the VAE is the shipped tiny one, frozen), which ``scripts/gpu/unpack.py`` turns back into a
loadable model directory; every ``--snapshot-minutes`` too, so a run cut short still returns.

    python scripts/gpu/train.py wm  --pack P.npz --out DIR --minutes 6 [--mask-mix i2a]
    python scripts/gpu/train.py bc  --pack P.npz --out DIR --minutes 6
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from actionimages.atomic import atomic_path, write_text_atomic
from actionimages.codec.camera import Camera
from actionimages.data.episode import Episode


class PackedEpisodes:
    """Episodes of a ``pack.py`` file (a source for ClipDataset and load_demonstrations)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with np.load(self.path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            self.cameras = list(meta["cameras"])
            self.frames = {c: z[f"frames_{c}"] for c in self.cameras}
            self.actions, self.state, self.offsets = z["actions"], z["state"], z["offsets"]
        self.meta = meta["episodes"]

    def __len__(self) -> int:
        return len(self.meta)

    def __repr__(self) -> str:
        return f"pack:{self.path.name}"

    def num_frames(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def episode(self, i: int) -> Episode:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        m = self.meta[i]

        def cam(d):
            return [Camera.from_dict(x) for x in d] if isinstance(d, list) else Camera.from_dict(d)

        return Episode(
            frames={c: self.frames[c][a:b] for c in self.cameras},
            cameras={c: cam(m["cameras"][c]) for c in self.cameras},
            actions=self.actions[a:b],
            state=self.state[a:b],
            instruction=m["instruction"],
            task=m["task"],
            fps=m["fps"],
            info=m["info"],
            has_actions=m["has_actions"],
        )


MASK_MIXES = {
    "default": None,
    # action segments generated from the current frames far more often (the policy's own question)
    "i2a": {"joint": 0.35, "i2a": 0.45, "view1": 0.04, "v2a": 0.06, "video": 0.06, "a2v": 0.04},
}


def train_world_model(args: argparse.Namespace, device: str) -> dict:
    from torch.utils.data import DataLoader

    from actionimages.data import ClipDataset, collate
    from actionimages.model import build_model, get_config, set_vae
    from actionimages.model.config import MaskMix
    from actionimages.model.flow import prepare_batch
    from actionimages.model.io import SHIPPED_TINY
    from actionimages.train import TrainConfig, Trainer

    changes = {"obs_align": True} if args.obs_align else {}
    if MASK_MIXES[args.mask_mix] is not None:
        changes["mask_mix"] = MaskMix(**MASK_MIXES[args.mask_mix])
    cfg = get_config(args.config, **changes)
    model = build_model(cfg)
    set_vae(model, SHIPPED_TINY)
    episodes = PackedEpisodes(args.pack)
    source = ClipDataset(
        episodes,
        cfg.sample_builder(training=True),
        samples_per_epoch=len(episodes) * args.clips_per_episode,
        seed=0,
    )
    tc = TrainConfig(
        steps=10**9, batch_size=args.batch_size, lr=args.lr, warmup=200, save_every=0, progress=False
    )
    trainer = Trainer(model, source, args.out, tc)
    t0 = time.perf_counter()
    loader = DataLoader(source, batch_size=128, num_workers=args.workers, collate_fn=collate)
    k = 0
    for batch in loader:  # fill the latent cache in parallel once; training then reads only it
        prep = prepare_batch(trainer.model, batch)
        for j in range(len(batch["instruction"])):
            trainer.cache.store[k + j] = prep.index([j])
        k += len(batch["instruction"])
    cache_s = time.perf_counter() - t0
    print(f"[{args.name}] cached {k} clips in {cache_s:.0f} s", flush=True)
    out_dir = Path(os.environ.get("OUT", args.out))
    end = t0 + args.minutes * 60
    next_snap = time.perf_counter() + args.snapshot_minutes * 60

    def snapshot() -> None:
        from safetensors.torch import save_file

        weights = {n: t.half().contiguous().cpu() for n, t in trainer.ema.shadow.items()}
        with atomic_path(out_dir / f"{args.name}.safetensors") as tmp:
            meta = {"step": str(trainer.step), "config": json.dumps(cfg.to_dict())}
            save_file(weights, str(tmp), metadata=meta)

    while time.perf_counter() < end:
        losses = trainer.fit(trainer.step + 50)
        print(
            f"[{args.name}] step {trainer.step} loss {np.mean(losses):.4f} {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        if time.perf_counter() > next_snap:
            snapshot()
            next_snap = time.perf_counter() + args.snapshot_minutes * 60
    snapshot()
    hist = trainer.history
    return {
        "kind": "world_model",
        "config": cfg.to_dict(),
        "steps": trainer.step,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "samples_seen": trainer.step * args.batch_size,
        "clips": k,
        "cache_seconds": round(cache_s, 1),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "cpu_hours_host": round(trainer.cpu_hours, 4),
        "loss_curve": [[h["step"], round(h["loss"], 5)] for h in hist[:: max(1, len(hist) // 100)]],
    }


def train_bc(args: argparse.Namespace, device: str) -> dict:
    from actionimages.policy.baseline.train import train_baseline

    meta = train_baseline(
        "bc",
        PackedEpisodes(args.pack),
        args.out,
        minutes=args.minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        progress=False,
        device=device,
    )
    return {k: v for k, v in meta.items() if k != "losses"} | {"loss_curve": meta["losses"][::10]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("wm", "bc"))
    ap.add_argument("--pack", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default=None)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--snapshot-minutes", type=float, default=2.0)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--mask-mix", choices=sorted(MASK_MIXES), default="default")
    ap.add_argument(
        "--obs-align", action="store_true", help="world model: add the observation grid per token"
    )
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--clips-per-episode", type=int, default=16)
    ap.add_argument("--workers", type=int, default=3)
    args = ap.parse_args()
    args.name = args.name or Path(args.out).name
    device = "cuda" if torch.cuda.is_available() else "cpu"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = train_world_model(args, device) if args.kind == "wm" else train_bc(args, device)
    summary |= {
        "name": args.name,
        "pack": Path(args.pack).name,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "total_wall_seconds": round(time.perf_counter() - t0, 1),
    }
    write_text_atomic(Path(args.out, "summary.json"), json.dumps(summary, indent=1))
    print(f"[{args.name}] done: {json.dumps({k: summary[k] for k in ('device', 'total_wall_seconds')})}")


if __name__ == "__main__":
    main()
