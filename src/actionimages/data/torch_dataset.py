"""A torch ``Dataset`` of training clips over any episode source, and its ``collate``.

A *source* is anything with ``len(source)`` and ``source.episode(i) -> Episode`` (a
:class:`~actionimages.data.DatasetReader`, a paper-layout reader, or a
:class:`~actionimages.data.Mixture`); ``source.num_frames(i)`` is used when present to plan
evaluation clips without decoding. Sampling randomness comes from ``(seed, epoch, item)`` only, so
results do not depend on the number of DataLoader workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from actionimages.data.episode import Episode, source_num_frames
from actionimages.data.sample import SampleBuilder
from actionimages.errors import ActionImagesError, DataError

log = logging.getLogger(__name__)


class EpisodeSource(Protocol):
    """What :class:`ClipDataset` needs of a source of episodes."""

    def __len__(self) -> int: ...

    def episode(self, i: int) -> Episode: ...


class ClipDataset(Dataset):
    """Training/evaluation clips built by ``builder`` from ``source``.

    Args:
        source: episodes (see module docstring).
        builder: the :class:`SampleBuilder`; its ``training`` flag picks the mode.
        samples_per_epoch: training items per epoch (default ``len(source)``); item ``k`` uses
            episode ``k % len(source)`` with a random start and views.
        eval_clips: evaluation mode only: ``"first"`` (one clip per episode, start 0) or ``"all"``
            (consecutive non-overlapping clips covering each episode).
        seed: base seed; :meth:`set_epoch` changes the draw per epoch.
        skip_bad: on a :class:`DataError` (corrupt video, missing calibration, ...) log a warning
            and use the next episode instead of raising.
    """

    def __init__(
        self,
        source: EpisodeSource,
        builder: SampleBuilder,
        *,
        samples_per_epoch: int | None = None,
        eval_clips: str = "first",
        seed: int = 0,
        skip_bad: bool = False,
    ) -> None:
        if len(source) == 0:
            raise DataError("ClipDataset: the source has no episodes")
        if eval_clips not in ("first", "all"):
            raise ActionImagesError(f"eval_clips must be 'first' or 'all', got {eval_clips!r}")
        self.source, self.builder = source, builder
        self.seed, self.epoch, self.skip_bad = int(seed), 0, bool(skip_bad)
        self.samples_per_epoch = int(samples_per_epoch) if samples_per_epoch is not None else None
        self._bad: set[int] = set()
        self._clips: list[tuple[int, int]] | None = None
        if not builder.training:
            self._clips = []
            for i in range(len(source)):
                if eval_clips == "first":
                    self._clips.append((i, 0))
                    continue
                try:
                    T = source_num_frames(source, i)
                except DataError as exc:
                    if not self.skip_bad:
                        raise
                    self._warn(i, exc)
                    continue
                self._clips.extend((i, s) for s in range(0, T, builder.span))
            if not self._clips:
                raise DataError("ClipDataset: no usable episodes")

    def set_epoch(self, epoch: int) -> None:
        """Reseed the random clips (and the source's schedule, if it has one) for ``epoch``."""
        self.epoch = int(epoch)
        if hasattr(self.source, "set_epoch"):
            self.source.set_epoch(self.epoch)

    def __len__(self) -> int:
        if self._clips is not None:
            return len(self._clips)
        return self.samples_per_epoch if self.samples_per_epoch is not None else len(self.source)

    def _warn(self, i: int, exc: Exception) -> None:
        if i not in self._bad:
            self._bad.add(i)
            log.warning("skipping bad episode %d: %s", i, exc)

    def __getitem__(self, k: int) -> dict[str, Any]:
        if not 0 <= k < len(self):
            raise IndexError(f"item {k} out of range for {len(self)}")
        n = len(self.source)
        if self._clips is not None:
            i, start = self._clips[k]
        else:
            i, start = k % n, None
        for attempt in range(n):
            j = (i + attempt) % n
            if j in self._bad:
                continue
            rng = np.random.default_rng([self.seed, self.epoch, k, attempt])
            try:
                episode = self.source.episode(j)
                # provenance: the episode's index in its own dataset (a Mixture slot is not one)
                index = int(episode.info.get("episode_index", j))
                return self.builder(
                    episode, start=start if attempt == 0 else None, rng=rng, episode_index=index
                )
            except DataError as exc:
                if not self.skip_bad:
                    raise
                self._warn(j, exc)
        raise DataError(f"ClipDataset: every episode of the source failed to load ({len(self._bad)} bad)")


def _stack(vals: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack`` that keeps broadcast (stride-0) dimensions shared by every sample as views.

    Static-camera Plücker maps are one (6, H, W) map per view expanded over F frames; stacking
    them naively would materialise B·V·6·F·H·W floats (hundreds of MB at 41×256²).
    """
    shape = vals[0].shape
    bcast = [
        d
        for d in range(len(shape))
        if shape[d] > 1 and all(v.shape == shape and v.stride(d) == 0 for v in vals)
    ]
    if not bcast:
        return torch.stack(vals)
    index = tuple(slice(0, 1) if d in bcast else slice(None) for d in range(len(shape)))
    return torch.stack([v[index] for v in vals]).expand(len(vals), *shape)


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch: tensors gain a leading B, ``instruction`` becomes a list of str,
    ``episode`` / ``start`` become int64 tensors (B,).

    ``plucker`` of static cameras stays a broadcast view over frames (stride 0); call
    ``.contiguous()`` before writing into it in place.
    """
    if not samples:
        raise ActionImagesError("collate: empty batch")
    out: dict[str, Any] = {}
    for key in samples[0]:
        vals = [s[key] for s in samples]
        if isinstance(vals[0], torch.Tensor):
            out[key] = _stack(vals)
        elif isinstance(vals[0], str):
            out[key] = list(vals)
        elif isinstance(vals[0], (int, np.integer, bool)):
            out[key] = torch.tensor([int(v) for v in vals], dtype=torch.int64)
        else:
            out[key] = list(vals)
    return out
