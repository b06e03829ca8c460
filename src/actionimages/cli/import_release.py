"""``actionimages import-release``: the authors' released checkpoint as our model folder.

SRC is the release's DiT (``anyeZHY/ActionImages``: a ``.ckpt`` torch state dict in DiffSynth-Studio's
``WanModel`` layout with the release's camera modules) or the same layout as safetensors (one file,
or shards with their index). ``--wan`` names a diffusers-format Wan2.2-TI2V-5B folder for the
architecture, the VAE and the umT5 text encoder. The folder written to ``--out`` loads with
``load_model`` and runs under ``actionimages eval`` and ``serve``; ``import_report.json`` in it (also
printed) lists what was mapped, folded, left unmapped and initialised otherwise. See
docs/SCALE.md ("Converting and running the authors' checkpoint").
"""

from __future__ import annotations

import argparse
import json
import sys

DTYPES = ("fp32", "bf16", "fp16")


def run_import_release(args: argparse.Namespace) -> int:
    from actionimages.model.release import import_release

    report = import_release(
        args.src, args.wan, args.out, config=args.config, dtype=args.dtype, strict=args.strict
    )
    print(json.dumps(report, indent=1))
    for warning in report["warnings"]:
        print(f"actionimages import-release: warning: {warning}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-release",
        help="the authors' released checkpoint (DiffSynth WanModel layout) as our model folder",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("src", help="release weights: a .ckpt / .safetensors file, or a folder of shards + index")
    p.add_argument("--wan", required=True, help="diffusers-format Wan2.2-TI2V-5B folder (VAE, umT5, config)")
    p.add_argument("--out", required=True, help="model folder to write (replaced if it exists)")
    p.add_argument("--config", default="wan2.2-ti2v-5b", help="our model config (default wan2.2-ti2v-5b)")
    p.add_argument("--dtype", default="fp32", choices=DTYPES, help="stored weight dtype (default fp32)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse when any source tensor is left unmapped or the trained camera encoder is dropped",
    )
    p.set_defaults(func=run_import_release)
