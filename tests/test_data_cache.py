"""LatentCache: hits, invalidation by weights and config, corrupt entries."""

from __future__ import annotations

import pytest
import torch

from actionimages.data import LatentCache, hash_config, hash_state_dict
from actionimages.errors import ActionImagesError


def test_cache_hits_and_invalidation(tmp_path):
    enc = torch.nn.Linear(4, 3)
    calls = []

    def encode(text: str) -> dict[str, torch.Tensor]:
        calls.append(text)
        x = torch.tensor([float(len(text))] * 4)
        return {"emb": enc(x).detach(), "mask": torch.ones(2, dtype=torch.bool)}

    cfg = {"height": 64, "frames": 5}
    c = LatentCache(tmp_path, encode, model_hash=hash_state_dict(enc), config=cfg)
    a = c("pick the cube")
    b = c("pick the cube")
    assert calls == ["pick the cube"] and c.hits == 1 and c.misses == 1
    torch.testing.assert_close(a["emb"], b["emb"])
    assert b["mask"].dtype == torch.bool
    # same weights + config in a new process-like instance: served from disk
    c2 = LatentCache(tmp_path, encode, model_hash=hash_state_dict(enc), config=dict(reversed(cfg.items())))
    c2("pick the cube")
    assert calls == ["pick the cube"] and c2.key == c.key
    # changed weights or config: new key, recomputed
    with torch.no_grad():
        enc.weight[0, 0] += 1
    c3 = LatentCache(tmp_path, encode, model_hash=hash_state_dict(enc), config=cfg)
    c4 = LatentCache(tmp_path, encode, model_hash=c.key, config={**cfg, "height": 32})
    assert len({c.key, c3.key, c4.key}) == 3
    c3("pick the cube")
    assert len(calls) == 2
    assert set(c3.prune()) == {c.key, c4.key} and not c.dir.exists()


def test_tensor_results_and_corrupt_entries(tmp_path):
    calls = []

    def vae(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return x * 2

    c = LatentCache(tmp_path, vae, model_hash="m", key_fn=lambda x: f"clip-{int(x.sum())}")
    x = torch.arange(6.0).reshape(2, 3)
    torch.testing.assert_close(c(x), x * 2)
    torch.testing.assert_close(c(x), x * 2)
    assert len(calls) == 1 and "clip-15" in c
    c._path("clip-15").write_bytes(b"broken")
    torch.testing.assert_close(c(x), x * 2)
    assert len(calls) == 2
    with pytest.raises(ActionImagesError, match="model_hash"):
        LatentCache(tmp_path, vae, model_hash="")
    with pytest.raises(ActionImagesError, match="tensor"):
        LatentCache(tmp_path, lambda s: 3, model_hash="m")("x")
    assert hash_config({"a": 1, "b": 2}) == hash_config({"b": 2, "a": 1})
