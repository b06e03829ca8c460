"""``actionimages demo --out DIR``: the whole pipeline end to end on the embedded benchmark.

Stages (each skipped when its marker ``DIR/stages/<name>.json`` exists, so a rerun resumes):

1. ``codec``: the codec demo (``actionimages codec demo``).
2. ``collect``: scripted-expert demonstrations (train split, and a few ``test`` episodes for the
   generation metrics).
3. ``vae``: the config's small Wan VAE on those demonstrations (``--vae-steps``; by default
   ``tiny`` reuses the autoencoder shipped in ``checkpoints/tiny``).
4. ``train``: the tiny world-action model.
5. ``baselines``: image BC and the low-dimensional-head ablation on the same demonstrations.
6. ``eval``: closed-loop success of every policy on ``test`` (the training distribution on unseen
   scenes, the headline split), unseen cameras and held-out objects, plus the world model's earlier
   checkpoints on ``test`` (the learning curve) and, when present, the pretrained model shipped in
   ``checkpoints/tiny`` (``--shipped``), trained far longer than a demo can.
7. ``generation``: generation quality (joint / a2v / v2a, shuffled-action control).
8. ``report``: ``DIR/report.html``.

The defaults fit about 30 minutes on a 2-core CPU; ``--episodes``, ``--train-steps``,
``--baseline-minutes``, ``--eval-episodes`` and ``--task`` scale it up.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actionimages.atomic import write_json_atomic
from actionimages.cli.invoke import Invocation, invocation, run_in_subprocess
from actionimages.errors import ActionImagesError
from actionimages.policy.registry import baseline_kinds

DEFAULT_TASKS = ("reach_target", "push_button")
STAGES = ("codec", "collect", "vae", "train", "baselines", "eval", "generation", "report")


class Demo:
    """The demo's stages. Each stage builds typed :class:`Invocation` s of ``actionimages``
    subcommands (checked by the real parser when built) and hands them to ``runner``: a fresh
    process per command by default (isolating torch state), this process in tests."""

    def __init__(
        self, args: argparse.Namespace, runner: Callable[[Invocation, int], None] = run_in_subprocess
    ) -> None:
        self.a = args
        self.runner = runner
        self.out = Path(args.out).resolve()
        self.marks = self.out / "stages"
        self.tasks = args.task or list(DEFAULT_TASKS)
        self.data = self.out / "data"

    def _run(self, command: str, *positionals: str | Path, **options: Any) -> None:
        self.runner(invocation(command, *positionals, **options), self.a.threads)

    def done(self, stage: str) -> bool:
        return (self.marks / f"{stage}.json").is_file()

    def mark(self, stage: str, t0: float, **info: Any) -> None:
        rec = {"stage": stage, "seconds": round(time.time() - t0, 1), **info}
        write_json_atomic(self.marks / f"{stage}.json", rec, indent=1)

    # ------------------------------------------------------------- stages
    def codec(self) -> None:
        self._run("codec demo", out=self.out / "codec", size=128, frames=21)

    def collect(self) -> None:
        import shutil

        for split, n in (("train", self.a.episodes), ("test", self.a.heldout_episodes)):
            if (self.data / split).exists():  # an interrupted collection: collect appends, so start over
                shutil.rmtree(self.data / split)
            self._run(
                "collect",
                out=self.data / split,
                split=split,
                episodes=n,
                task=self.tasks,
                image_size=self.a.image_size,
                workers=self.a.workers,
                seed=self.a.seed,
            )  # fmt: skip  (splits never share scenes: the seeds come from the split)

    def _has_vae(self) -> bool:
        from actionimages.model import get_config

        return get_config(self.a.config).latent.kind == "wan_vae"

    def _trains_vae(self) -> bool:
        return self._has_vae() and (self.a.vae_steps > 0 or self.a.config != "tiny")

    def vae(self) -> None:
        if not self._has_vae():
            print(f"config {self.a.config!r} works in pixel space: no VAE to train")
            return
        if not self._trains_vae():
            print("--vae-steps 0: the world model uses the autoencoder shipped in checkpoints/tiny")
            return
        self._run(
            "train-vae", config=self.a.config, data=self.data / "train", out=self.out / "vae_run",
            steps=self.a.vae_steps, seed=self.a.seed,
        )  # fmt: skip

    def train(self) -> None:
        resume = (self.out / "world_model" / "checkpoints").is_dir()
        self._run(
            "train", config=self.a.config, data=self.data / "train", out=self.out / "world_model",
            steps=self.a.train_steps, save_every=max(1, self.a.train_steps // 3), seed=self.a.seed,
            batch_size=self.a.batch_size,
            vae=self.out / "vae_run" / "vae" if self._trains_vae() else None,
            resume=self.out / "world_model" if resume else None,
        )  # fmt: skip

    def baselines(self) -> None:
        minutes = self.a.baseline_minutes
        if minutes <= 0:  # same compute as the world model: its measured training wall time
            rec = json.loads((self.marks / "train.json").read_text())
            minutes = max(0.5, rec["seconds"] / 60.0)
        for kind in baseline_kinds():
            self._run(
                "baseline train", kind=kind, data=self.data / "train", out=self.out / "baselines" / kind,
                minutes=round(minutes, 2), seed=self.a.seed,
            )  # fmt: skip

    def _eval(self, name: str, policy: dict[str, Any], split: str, episodes: int) -> None:
        out = self.out / "eval" / f"{name}_{split}"
        if (out / "results.json").is_file():
            return  # finished earlier (resume)
        self._run(
            "eval", **policy, split=split, episodes=episodes, seed=self.a.seed, out=out,
            workers=self.a.workers, videos=2, image_size=self.a.image_size, label=name, task=self.tasks,
        )  # fmt: skip

    def eval(self) -> None:
        model = {"checkpoint": [self.out / "world_model"], "num_steps": self.a.num_steps}
        n = self.a.eval_episodes
        # test (unseen scenes of the training distribution) and unseen cameras at full size; held-out
        # objects smaller.
        for split, eps in (("test", n), ("heldout_cameras", n), ("heldout", max(2, n // 2))):
            self._eval("action_images", model, split, eps)
            for kind in baseline_kinds():
                self._eval(kind, {"checkpoint": [self.out / "baselines" / kind]}, split, eps)
        self._eval("expert", {"policy": "expert"}, "test", n)
        shipped = Path(self.a.shipped) if self.a.shipped else None
        if shipped is not None and (shipped / "config.json").is_file():
            for split in ("test", "heldout_cameras"):
                self._eval("action_images_shipped", {**model, "checkpoint": [shipped]}, split, n)
        elif shipped is not None:
            print(f"no shipped checkpoint at {shipped}: skipping its evaluation")
        # The learning curve: success on test at the trainer's kept intermediate checkpoints.
        from actionimages.train.checkpoint import list_checkpoints

        for ck in list_checkpoints(self.out / "world_model" / "checkpoints")[:-1]:
            self._eval(f"action_images_{ck.name}", {**model, "checkpoint": [ck]}, "test", max(2, n // 2))

    def generation(self) -> None:
        self._run(
            "eval-generation", checkpoint=self.out / "world_model", data=self.data / "test",
            out=self.out / "generation", episodes=self.a.generation_episodes, num_steps=self.a.num_steps,
            seed=self.a.seed,
        )  # fmt: skip

    def report(self) -> None:
        self._run("report", self.out)

    def run(self) -> int:
        chosen = [s for s in STAGES if s not in (self.a.skip or [])]
        if self.a.fresh:
            for s in chosen:
                (self.marks / f"{s}.json").unlink(missing_ok=True)
        total = time.time()
        for i, stage in enumerate(chosen, 1):
            if self.done(stage):
                print(
                    f"[{i}/{len(chosen)}] {stage}: done earlier, skipped ({self.marks / (stage + '.json')})"
                )
                continue
            print(f"[{i}/{len(chosen)}] {stage} ...", flush=True)
            t0 = time.time()
            getattr(self, stage)()
            self.mark(stage, t0)
            print(f"[{i}/{len(chosen)}] {stage}: finished in {time.time() - t0:.0f} s", flush=True)
        print(f"demo finished in {(time.time() - total) / 60:.1f} min; open {self.out / 'report.html'}")
        return 0


def run_demo(args: argparse.Namespace) -> int:
    from actionimages.sim import TASKS

    bad = [t for t in args.task or [] if t not in TASKS]
    if bad:
        raise ActionImagesError(f"unknown task(s) {bad}; available: {list(TASKS)}")
    bad = [s for s in args.skip or [] if s not in STAGES]
    if bad:
        raise ActionImagesError(f"unknown stage(s) {bad}; stages: {list(STAGES)}")
    check_sizes(args)
    if Path(args.out).exists() and not Path(args.out).is_dir():  # else the first stage's subprocess says it
        raise ActionImagesError(f"--out {args.out}: a file, where the demo's output directory is needed")
    return Demo(args).run()


def check_sizes(args: argparse.Namespace) -> None:
    """Refuse sizes a later stage would reject, before the first stage spends any time."""
    at_least = {"episodes": 1, "train_steps": 1, "batch_size": 1, "eval_episodes": 1, "num_steps": 1,
                "workers": 1, "threads": 1, "vae_steps": 0, "seed": 0}  # fmt: skip
    if "generation" not in (args.skip or []):  # its shuffled-action control pairs two episodes
        at_least |= {"heldout_episodes": 2, "generation_episodes": 2}
    for name, low in at_least.items():
        if getattr(args, name) < low:
            flag = "--" + name.replace("_", "-")
            why = (
                " (the generation stage's shuffled-action control needs two)"
                if name == "heldout_episodes"
                else ""
            )
            raise ActionImagesError(f"{flag} must be at least {low}, got {getattr(args, name)}{why}")
    if not args.baseline_minutes >= 0:  # NaN too
        raise ActionImagesError(f"--baseline-minutes must be >= 0, got {args.baseline_minutes}")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="end to end: codec demo, collect, train, baselines, closed-loop eval, report (resumable)",
        description="Run the whole pipeline on the embedded benchmark into DIR; rerunning resumes, "
        "skipping finished stages. Defaults fit about 30 minutes on a 2-core CPU.",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--task", action="append", help=f"task (repeat; default {' '.join(DEFAULT_TASKS)})")
    p.add_argument("--episodes", type=int, default=20, help="training demonstrations per task (default 20)")
    p.add_argument(
        "--heldout-episodes",
        type=int,
        default=4,
        help="test-split demonstrations per task (generation metrics)",
    )
    p.add_argument("--config", default="tiny", help="world-model config (default tiny)")
    p.add_argument(
        "--vae-steps", type=int, default=0,
        help="VAE training steps (default 0: tiny reuses the autoencoder shipped in checkpoints/tiny)",
    )  # fmt: skip
    p.add_argument("--train-steps", type=int, default=1000, help="world-model training steps (default 1000)")
    p.add_argument("--batch-size", type=int, default=16, help="world-model batch size (default 16)")
    p.add_argument(
        "--shipped", default="checkpoints/tiny",
        help="pretrained checkpoint also evaluated (default checkpoints/tiny; '' to skip)",
    )  # fmt: skip
    p.add_argument(
        "--baseline-minutes", type=float, default=2.5,
        help="training minutes per baseline (default 2.5; 0: the world model's measured training time)",
    )  # fmt: skip
    p.add_argument("--eval-episodes", type=int, default=10, help="closed-loop episodes per task and split")
    p.add_argument(
        "--generation-episodes", type=int, default=6, help="held-out episodes for generation metrics"
    )
    p.add_argument("--num-steps", type=int, default=8, help="sampling steps per plan (default 8)")
    p.add_argument(
        "--image-size",
        type=int,
        default=64,
        help="sim render size (default 64, as the shipped model was trained)",
    )
    p.add_argument("--workers", type=int, default=2, help="evaluation processes (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="OpenMP threads per process (default 1)")
    p.add_argument("--skip", nargs="+", help=f"stages to skip ({', '.join(STAGES)})")
    p.add_argument("--fresh", action="store_true", help="forget finished stages (outputs are overwritten)")
    p.set_defaults(func=run_demo)
