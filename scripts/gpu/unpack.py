"""Turn a ``scripts/gpu/train.py`` world-model result into a loadable model directory.

The result holds the EMA weights of the trainable parameters (fp16) and the model config in its
metadata; the frozen VAE is the shipped tiny one. Every trainable tensor must be present and
every tensor must fit, or this fails naming them.

    python scripts/gpu/unpack.py RESULT.safetensors OUT_DIR [--summary summary.json]
"""

from __future__ import annotations

import argparse
import json
import shutil

from safetensors import safe_open

from actionimages.atomic import atomic_dir
from actionimages.errors import ActionImagesError
from actionimages.model import build_model, set_vae
from actionimages.model.config import ModelConfig
from actionimages.model.io import SHIPPED_TINY


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result")
    ap.add_argument("out")
    ap.add_argument("--summary", default=None, help="the run's summary.json, copied beside the model")
    args = ap.parse_args()
    with safe_open(args.result, "pt") as f:
        meta = f.metadata()
        weights = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    cfg = ModelConfig.from_dict(json.loads(meta["config"]))
    model = build_model(cfg)
    set_vae(model, SHIPPED_TINY)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith("latent_space.")]
    if missing or unexpected:
        raise ActionImagesError(f"{args.result}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with atomic_dir(args.out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if args.summary:
            shutil.copy(args.summary, tmp / "gpu_summary.json")
    print(f"step {meta.get('step')}: {len(weights)} tensors -> {args.out}")


if __name__ == "__main__":
    main()
