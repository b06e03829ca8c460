"""``actionimages embed-text``: umT5 embeddings of every instruction, computed once and cached."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from actionimages.cli.ranges import COUNT
from actionimages.errors import ActionImagesError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "embed-text",
        help="cache the umT5 embeddings of a dataset's instructions (train and serve then skip umT5)",
        description="Encode every distinct instruction of --data (and any --text) with the umT5 encoder of "
        "a diffusers Wan folder, once; `train --text-cache` and `serve --text-cache` read the cache.",
    )
    p.add_argument(
        "--pretrained", required=True, help="diffusers-format Wan folder (text_encoder/, tokenizer/)"
    )
    p.add_argument("--data", action="append", default=[], help="dataset directory (repeat for several)")
    p.add_argument("--text", action="append", default=[], help="an extra instruction (repeat)")
    p.add_argument("--out", help="cache directory (default: PRETRAINED/text_cache)")
    p.add_argument("--max-tokens", type=COUNT, default=512)
    p.add_argument("--batch-size", type=COUNT, default=8)
    p.set_defaults(func=run_embed_text)


def run_embed_text(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from actionimages.data import open_source
    from actionimages.model.text import UMT5TextEncoder
    from actionimages.model.text_cache import embed_texts, encoder_hash

    if not Path(args.pretrained).is_dir():  # a local folder: the cache is keyed by its files' hashes
        raise ActionImagesError(
            f"--pretrained {args.pretrained}: no such folder (a diffusers-format Wan folder with "
            "text_encoder/ and tokenizer/)"
        )
    texts = list(args.text)
    for d in args.data:
        src = open_source(d)
        texts += [src.episode(i).instruction for i in tqdm(range(len(src)), desc=f"instructions of {d}")]
    texts = list(dict.fromkeys(texts))
    out = Path(args.out) if args.out else Path(args.pretrained) / "text_cache"
    encoder = UMT5TextEncoder.from_pretrained(args.pretrained, args.max_tokens)
    counts = embed_texts(encoder, texts, out, encoder_hash(args.pretrained), args.batch_size)
    print(json.dumps({"cache": str(out), **counts}))
    return 0
