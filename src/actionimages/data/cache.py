"""An on-disk cache of expensive encodings (VAE latents, text embeddings), invalidated by key.

Entries live under ``root/<key>/`` where ``key`` hashes the encoder's weights
(:func:`hash_state_dict`) and the config that shaped the inputs (:func:`hash_config`: resolution,
frames, stride, ...). Changing either changes ``key``, so stale entries are never read (and
:meth:`LatentCache.prune` deletes them). Entries are safetensors files written atomically; a
corrupt entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from actionimages.atomic import atomic_path, write_json_atomic
from actionimages.data.lerobot import JSON_STYLE
from actionimages.errors import ActionImagesError

log = logging.getLogger(__name__)


def hash_state_dict(state: Any) -> str:
    """SHA-256 of a module's (or state dict's) parameter names, dtypes, shapes and values."""
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise ActionImagesError(
            f"hash_state_dict needs an nn.Module or a state dict, got {type(state).__name__}"
        )
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(np.asarray(t))
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def hash_config(config: Any) -> str:
    """SHA-256 of a JSON-serialisable config (keys sorted, so dict order does not matter)."""
    try:
        text = json.dumps(config, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise ActionImagesError(f"config is not JSON-serialisable: {exc}") from exc
    return hashlib.sha256(text.encode()).hexdigest()


def _item_file(item: str) -> str:
    return hashlib.sha256(item.encode()).hexdigest()


class LatentCache:
    """Cache ``encode(*args)`` results on disk, one entry per item key.

    Args:
        root: cache directory (shared by several keys).
        encode: the expensive function; returns a tensor or a ``{name: tensor}`` dict.
        model_hash: identifies the encoder's weights (e.g. ``hash_state_dict(vae)``).
        config: anything JSON-serialisable that also determines the result.
        key_fn: maps the call's arguments to a string item key (default: ``str`` of the first
            argument, e.g. an instruction for text embeddings).

    ``cache(*args)`` returns ``{name: tensor}`` (a bare tensor result is stored under ``"value"``
    and returned as a tensor).
    """

    def __init__(
        self,
        root: str | Path,
        encode: Callable[..., Any],
        *,
        model_hash: str,
        config: Any = None,
        key_fn: Callable[..., str] | None = None,
    ) -> None:
        if not model_hash:
            raise ActionImagesError("LatentCache needs a model_hash (e.g. hash_state_dict(vae))")
        self.root = Path(root)
        self.encode = encode
        self.key_fn = key_fn or (
            lambda *a, **k: str(a[0]) if a else json.dumps(k, sort_keys=True, default=str)
        )
        self.key = hashlib.sha256(f"{model_hash}|{hash_config(config)}".encode()).hexdigest()[:24]
        self.dir = self.root / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "cache.json"
        if not meta.exists():
            write_json_atomic(meta, {"model_hash": model_hash, "config": config}, **JSON_STYLE)
        self.hits = self.misses = 0

    def _path(self, item: str) -> Path:
        name = _item_file(item)
        return self.dir / name[:2] / f"{name}.safetensors"

    def __contains__(self, item: str) -> bool:
        return self._path(item).exists()

    def get(self, item: str) -> dict[str, torch.Tensor] | None:
        """The stored tensors of ``item``, or None (a corrupt entry counts as missing)."""
        path = self._path(item)
        if not path.exists():
            return None
        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as exc:
            log.warning("latent cache: corrupt entry %s (%s); recomputing", path, exc)
            return None

    def put(self, item: str, tensors: Mapping[str, torch.Tensor]) -> None:
        """Store ``tensors`` for ``item`` atomically."""
        data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        with atomic_path(self._path(item)) as tmp:
            save_file(data, str(tmp), metadata={"item": item[:1000]})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        item = self.key_fn(*args, **kwargs)
        got = self.get(item)
        if got is not None:
            self.hits += 1
            return got["value"] if set(got) == {"value"} else got
        self.misses += 1
        out = self.encode(*args, **kwargs)
        if isinstance(out, torch.Tensor):
            self.put(item, {"value": out})
        elif isinstance(out, Mapping) and all(isinstance(v, torch.Tensor) for v in out.values()):
            self.put(item, out)
        else:
            raise ActionImagesError(
                f"encode must return a tensor or a dict of tensors, got {type(out).__name__}"
            )
        return out

    def prune(self) -> list[str]:
        """Delete entries of other keys (other weights or configs) under ``root``; their names."""
        removed = []
        for d in self.root.iterdir():
            if d.is_dir() and d.name != self.key and (d / "cache.json").exists():
                shutil.rmtree(d)
                removed.append(d.name)
        return removed
