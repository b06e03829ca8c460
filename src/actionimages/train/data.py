"""Training data for the trainer: a sample source, a step-indexed order, and a latent cache.

The order of samples is a pure function of (seed, global step): epoch ``e`` is a fixed
permutation seeded by (seed, e), and step ``s`` takes global positions
``s·G .. (s+1)·G − 1`` (G = per-process batch × processes), rank ``r`` its ``r``-th slice. Resuming
at step ``s`` therefore continues exactly the same data order with no iterator state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from actionimages.data import ClipDataset, collate, open_source
from actionimages.errors import ActionImagesError
from actionimages.model.config import ModelConfig
from actionimages.model.flow import Prepared, prepare_batch
from actionimages.model.network import WorldActionModel


class SampleSource(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> dict[str, Any]: ...


class SyntheticSource:
    """``n`` synthetic clips (ball-on-floor scenes; see ``actionimages.model.synthetic``)."""

    def __init__(
        self, cfg: ModelConfig, n: int, seed: int = 0, instruction: str = "move the ball to the target"
    ):
        if n < 1:
            raise ActionImagesError(f"synthetic source needs n >= 1, got {n}")
        self.cfg, self.n, self.seed, self.instruction = cfg, n, seed, instruction

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        from actionimages.model.synthetic import synthetic_sample

        if not 0 <= index < self.n:
            raise IndexError(index)
        return synthetic_sample(self.cfg, self.seed + index, self.instruction)


def open_training_source(
    spec: str,
    cfg: ModelConfig,
    stride: int = 1,
    clips_per_episode: int = 16,
    seed: int = 0,
    hold_final: int = 0,
) -> SampleSource:
    """The training sample source of a CLI ``--data`` value: ``synthetic:N`` or a dataset directory.

    A directory (LeRobot v3 or a paper layout, opened as episodes by ``actionimages.data.open_source``)
    is read through the data package's :class:`SampleBuilder` / :class:`ClipDataset` at the model's
    views, frames and image size. Item ``k`` is episode ``k % episodes`` at a random start drawn
    from ``(seed, k)``, so ``clips_per_episode`` items per episode give a fixed pool of distinct
    clips (which the trainer's latent cache then encodes once each). ``hold_final`` lets clips run
    that many frames past an episode's end, holding still (``SampleBuilder``).
    """
    if spec.startswith("synthetic:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError as exc:
            raise ActionImagesError(f"--data synthetic:N needs an integer N, got {spec!r}") from exc
        return SyntheticSource(cfg, n)
    path = Path(spec)
    if not path.exists():
        raise ActionImagesError(f"--data {spec}: no such dataset directory")
    episodes = open_source(path)
    builder = cfg.sample_builder(stride=stride, training=True, hold_final=hold_final)
    return ClipDataset(episodes, builder, samples_per_epoch=len(episodes) * clips_per_episode, seed=seed)


def data_fingerprint(spec: str) -> str | None:
    """What identifies a training ``--data`` value across machines: ``synthetic:N`` itself; for a
    dataset of ours, a SHA-256 over each episode's key (``sim:TASK/SPLIT/seedN``, or its index and
    task where there is no key) and length, in order. Files are not hashed: re-collecting the same
    episodes on another machine re-encodes their videos, yet trains on the same episodes. None for
    sources without episode metadata (other layouts)."""
    import hashlib

    if spec.startswith("synthetic:"):
        return spec
    if not (Path(spec) / "meta" / "info.json").is_file():
        return None
    from actionimages.data import DatasetReader

    reader = DatasetReader(spec)
    h = hashlib.sha256()
    for i in range(len(reader)):
        meta = reader.meta(i)
        key = meta.get("actionimages/key") or f"{i}:{meta.get('tasks')}"
        h.update(f"{key}\t{int(meta.get('length', 0))}\n".encode())
    return "episodes-sha256:" + h.hexdigest()


def global_indices(step: int, global_batch: int, n: int, seed: int) -> list[int]:
    """Dataset indices of the ``global_batch`` samples of ``step``."""
    out = []
    pos = step * global_batch
    perm_epoch, perm = -1, None
    for k in range(pos, pos + global_batch):
        epoch, off = divmod(k, n)
        if epoch != perm_epoch:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
            perm_epoch = epoch
        out.append(perm[off])
    return out


def sample_seed(seed: int, step: int, position: int) -> int:
    """Seed of the random draws of the sample at global ``position`` of ``step`` (< 2**63)."""
    return (seed * 0x9E3779B1 + step * 1_000_003 + position) % (2**62)


def release_free_heap() -> None:
    """Give the C heap's free pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Filling the latent cache interleaves the VAE's large short-lived buffers with the cache's small
    long-lived tensors; glibc cannot shrink a heap around them, so the resident set grew about 8×
    faster than the cache itself (measured on ``tiny``: +460 MB of resident memory for 56 MB of
    cached tensors; after a trim, +39 MB). Trimming after each fill keeps it near the cache's size.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None


class PreparedCache:
    """Model-space samples (latents, camera features) computed once per dataset index.

    The VAE is frozen, so encoding a clip again would give the same latents; caching them makes
    a training step cost only the transformer. ``enabled=False`` prepares on every access.
    """

    def __init__(
        self,
        model: WorldActionModel,
        source: SampleSource,
        enabled: bool = True,
        prepare: Callable | None = None,
    ):
        self.model, self.source, self.enabled = model, source, enabled
        self.prepare = prepare or prepare_batch
        self.store: dict[int, Prepared] = {}

    def get(self, indices: Sequence[int]) -> Prepared:
        missing = [i for i in dict.fromkeys(indices) if i not in self.store]
        if missing:
            prep = self.prepare(self.model, collate([self.source[i] for i in missing]))
            prep = prep.to("cpu")
            fresh = {i: prep.index([j]) for j, i in enumerate(missing)}
            if not self.enabled:
                return Prepared.cat([fresh[i] if i in fresh else self.store[i] for i in indices])
            self.store.update(fresh)
            del prep
            release_free_heap()
        return Prepared.cat([self.store[i] for i in indices])
