"""umT5 embeddings computed once (``actionimages embed-text``), so training and serving never hold
the 5.7B-parameter text encoder beside the transformer.

A cache directory holds ``index.json`` (the encoder's hash, ``max_tokens``, width, and for each
text its SHA-256 -> row) and ``embeddings.safetensors`` (``emb``: (N, max_tokens, D) with Wan's
zero padding, ``length``: (N,)). The encoder hash is the SHA-256 of the text encoder's and the
tokenizer's files, so embeddings of another encoder are never mixed in. The empty instruction
(classifier-free guidance's unconditional branch, text dropout) is always cached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from actionimages.atomic import atomic_path, sha256_file, write_json_atomic
from actionimages.errors import ActionImagesError

INDEX, WEIGHTS = "index.json", "embeddings.safetensors"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_hash(pretrained: str | Path) -> str:
    """SHA-256 over the files of ``pretrained/text_encoder`` and ``pretrained/tokenizer``."""
    root = Path(pretrained)
    files = sorted(p for sub in ("text_encoder", "tokenizer") for p in (root / sub).rglob("*") if p.is_file())
    if not files:
        raise ActionImagesError(f"{root}: no text_encoder/ or tokenizer/ files to hash")
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def read_cache(cache: str | Path) -> tuple[dict, torch.Tensor, torch.Tensor]:
    from safetensors.torch import load_file

    cache = Path(cache)
    if not (cache / INDEX).is_file() or not (cache / WEIGHTS).is_file():
        raise ActionImagesError(f"{cache} is not a text-embedding cache (run actionimages embed-text)")
    index = json.loads((cache / INDEX).read_text())
    tensors = load_file(str(cache / WEIGHTS))
    if sha256_file(cache / WEIGHTS) != index.get("weights_sha256"):
        raise ActionImagesError(f"{cache / WEIGHTS} changed since it was written (SHA-256 differs)")
    return index, tensors["emb"], tensors["length"]


def embed_texts(
    encoder: nn.Module, texts: Sequence[str], cache: str | Path, enc_hash: str, batch_size: int = 8
) -> dict[str, int]:
    """Add the embeddings of ``texts`` (and "") that ``cache`` lacks; returns counts."""
    from safetensors.torch import save_file

    cache = Path(cache)
    wanted = list(dict.fromkeys(["", *texts]))
    if (cache / INDEX).is_file():
        index, emb, length = read_cache(cache)
        if index["encoder_hash"] != enc_hash:
            raise ActionImagesError(
                f"{cache} holds embeddings of another text encoder ({index['encoder_hash'][:12]}…, "
                f"this one is {enc_hash[:12]}…); use another --out"
            )
    else:
        index, emb, length = {"encoder_hash": enc_hash, "texts": {}}, None, None
    missing = [t for t in wanted if text_key(t) not in index["texts"]]
    new_e, new_l = [], []
    for i in range(0, len(missing), batch_size):
        chunk = missing[i : i + batch_size]
        e = encoder(chunk).float().cpu()  # (b, max_tokens, D), zero beyond each prompt
        new_e.append(e)
        new_l.append((e.abs().sum(-1) > 0).sum(-1).to(torch.int64))
    if missing:
        e = torch.cat(new_e)
        emb = e if emb is None else torch.cat([emb, e])
        length = torch.cat(new_l) if length is None else torch.cat([length, *new_l])
        start = len(index["texts"])
        for j, t in enumerate(missing):
            index["texts"][text_key(t)] = start + j
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache / WEIGHTS) as tmp:
            save_file({"emb": emb.contiguous(), "length": length.contiguous()}, str(tmp))
        index.update(
            max_tokens=int(emb.shape[1]), dim=int(emb.shape[2]), weights_sha256=sha256_file(cache / WEIGHTS)
        )
        write_json_atomic(cache / INDEX, index, indent=1)
    return {"texts": len(wanted), "added": len(missing), "cached": len(index["texts"])}


class CachedTextEncoder(nn.Module):
    """Drop-in for the umT5 encoder: instructions -> cached embeddings (B, max_tokens, D).

    An instruction that is not in the cache is an error naming it (run ``embed-text`` on the data
    first); ``expected_hash`` (the model's encoder) guards against another encoder's cache.
    """

    def __init__(self, cache: str | Path, expected_hash: str | None = None) -> None:
        super().__init__()
        self.cache = Path(cache)
        self.index, emb, length = read_cache(self.cache)
        if expected_hash is not None and self.index["encoder_hash"] != expected_hash:
            raise ActionImagesError(f"{self.cache} was made with another text encoder than this model's")
        self.register_buffer("emb", emb, persistent=False)
        self.register_buffer("length", length, persistent=False)

    def forward(self, instructions: Sequence[str]) -> torch.Tensor:
        rows = []
        for text in instructions:
            row = self.index["texts"].get(text_key(text))
            if row is None:
                raise ActionImagesError(
                    f"instruction {text!r} is not in the text cache {self.cache}; run actionimages embed-text"
                )
            rows.append(row)
        return self.emb[torch.tensor(rows, dtype=torch.long)]
