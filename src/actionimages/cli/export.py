"""``actionimages export``: a trained world model (or baseline) as a small, self-contained checkpoint folder.

The folder holds ``config.json`` and ``diffusion_pytorch_model.safetensors`` (weights cast to
fp16 by default, which halves the size; ``load_model`` loads them back as fp32) plus
``provenance.json`` (source run, training step, dtype, parameter count, SHA-256 of the weights
and of ``config.json``, checked on load) and, when given, a recipe file copied beside them. It is
written to a temporary folder and renamed into place, so an interrupted export never leaves a
half-written checkpoint. A trainer checkpoint whose files no longer match its ``checksums.json``
is refused before anything is written.

A baseline run (``actionimages baseline train``) exports the same way: ``model.safetensors``,
``baseline.json`` and ``provenance.json``, without the optimizer state, so the shipped baselines sit
beside ``checkpoints/tiny`` and ``actionimages eval`` compares all three in one command.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from actionimages.cli.ranges import float_at_least
from actionimages.errors import ActionImagesError

DTYPES = ("fp16", "bf16", "fp32")


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    dtype: str = "fp16",
    recipe: str | Path | None = None,
    cpu_hours: float | None = None,
) -> dict:
    """Export the model behind ``checkpoint`` (run, step or model dir) to ``out``; returns provenance.

    ``cpu_hours`` (the training's cost) defaults to what the checkpoint records."""
    from actionimages.model import load_model
    from actionimages.model.io import save_model_folder
    from actionimages.train.checkpoint import resolve_model_dir

    if dtype not in DTYPES:
        raise ActionImagesError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if recipe is not None and not Path(recipe).is_file():
        raise ActionImagesError(f"recipe file {recipe} does not exist")
    from actionimages.train.checkpoint import training_cpu_hours

    extra = {Path(recipe).name: Path(recipe).read_bytes()} if recipe is not None else None
    hours = cpu_hours if cpu_hours is not None else training_cpu_hours(checkpoint)
    stamp = {"exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if hours is not None:
        stamp["cpu_hours"] = round(float(hours), 4)  # training cost, for success-per-CPU-hour
    if (Path(checkpoint) / "baseline.json").is_file():
        from actionimages.policy.baseline import export_baseline

        return export_baseline(checkpoint, out, dtype, {"source": str(checkpoint), **stamp}, extra)
    src, step = resolve_model_dir(checkpoint)
    model = load_model(src)
    if model.spec.pretrained:
        raise ActionImagesError(
            "export is for self-contained models; this one needs its pretrained Wan folder "
            f"({model.spec.pretrained}) for the text encoder"
        )
    info = {"source": str(src), "step": step, "config": model.spec.name, **stamp}
    return save_model_folder(model, out, dtype, info, extra)


def run_export(args: argparse.Namespace) -> int:
    info = export_checkpoint(args.checkpoint, args.out, args.dtype, args.recipe, args.cpu_hours)
    print(json.dumps({"out": str(args.out), **info}, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="a trained world model or baseline as a small self-contained checkpoint "
        "(fp16 safetensors + provenance)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "--checkpoint", required=True, help="training run, trainer step dir, model dir or baseline run"
    )
    p.add_argument("--out", required=True, help="checkpoint folder to write (replaced if it exists)")
    p.add_argument("--dtype", default="fp16", choices=DTYPES, help="stored weight dtype (default fp16)")
    p.add_argument("--recipe", help="a text file (how the model was made) copied into the folder")
    p.add_argument(
        "--cpu-hours",
        type=float_at_least(0),
        help="training CPU-hours to record (default: from the checkpoint's state.json)",
    )
    p.set_defaults(func=run_export)
