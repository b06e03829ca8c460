"""Regenerate the README's figures: ``python scripts/make_readme_figures.py``.

1. ``docs/img/codec_demo.png`` — the codec demo (``actionimages codec demo``).
2. ``docs/img/sim_views.png`` — one embedded-benchmark observation per task from four calibrated
   cameras, with the action image of the current end-effector pose blended on top.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from actionimages.codec import ActionImageCodec, as_camera  # noqa: E402
from actionimages.sim import make_env  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"
TASKS = ["reach_target", "push_button", "close_drawer", "pick_up_cube"]
CAMERAS = ["front", "left_shoulder", "right_shoulder", "overhead"]


def sim_views(size: int = 192) -> None:
    fig, axes = plt.subplots(len(TASKS), len(CAMERAS), figsize=(2.2 * len(CAMERAS), 2.3 * len(TASKS)))
    for row, task in enumerate(TASKS):
        env = make_env(task, split="train", seed=3, image_size=size, cameras=CAMERAS)
        obs, _ = env.reset(seed=3)
        codec = ActionImageCodec([as_camera(obs["cameras"][c]) for c in CAMERAS])
        act = codec.encode(obs["ee_pose"][None])[:, 0]  # (V, H, W, 3)
        for col, cam in enumerate(CAMERAS):
            rgb = obs["images"][cam].astype(np.float32) / 255.0
            blob = act[col].copy()
            # drop the gripper background so only the blobs cover the scene
            blob[..., 2] = np.where(blob[..., 2] <= 0.25 + 1e-6, 0.0, blob[..., 2])
            alpha = np.clip(blob.max(-1, keepdims=True) * 1.5, 0, 1)
            ax = axes[row, col]
            ax.imshow(np.clip(rgb * (1 - alpha) + blob * alpha, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(cam, fontsize=9)
            if col == 0:
                ax.set_ylabel(task, fontsize=9)
        env.close()
    title = "Embedded benchmark: calibrated cameras with the current pose's action image overlaid"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT / "sim_views.png", dpi=90)


def codec_demo() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "actionimages", "codec", "demo", "--out", tmp], check=True)
        shutil.copy(Path(tmp) / "codec_demo.png", OUT / "codec_demo.png")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    codec_demo()
    sim_views()
    print(f"wrote {OUT}/codec_demo.png and {OUT}/sim_views.png")
