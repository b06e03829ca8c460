"""Mixtures of episode sources by ratio, deterministic per seed and split across ranks.

Spec strings (:func:`parse_mixture`)::

    rlbench@0.5,droid@0.3,bridge@0.2            names resolved in a given {name: source or path}
    sim=/data/sim@0.7,bridge=/data/bridge@0.3   NAME=PATH@RATIO: the path is opened by open_source
    /data/sim                                   a bare path, ratio 1

Ratios are relative weights (normalised). Each epoch draws an exact-count schedule: source ``i``
gets ``round(N · w_i)`` slots (largest remainders), slots are shuffled, and each source's slots
walk a fresh permutation of its episodes (re-permuted when exhausted). Rank ``r`` of
``world_size`` takes slots ``r, r + world_size, ...``, so ranks never share a slot, and no episode
repeats within an epoch unless its source has fewer episodes than slots.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actionimages.data.episode import Episode, source_num_frames
from actionimages.data.registry import open_source
from actionimages.errors import ActionImagesError, DataError


def parse_mixture_spec(spec: str) -> list[tuple[str, str | None, float]]:
    """``"a=PATH@0.5,b@0.5"`` -> ``[(name, path or None, ratio), ...]`` (validated)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ActionImagesError("mixture spec is empty")
    out: list[tuple[str, str | None, float]] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise ActionImagesError(f"mixture spec {spec!r} has an empty entry")
        body, ratio = part, 1.0
        if "@" in part:
            body, _, r = part.rpartition("@")
            try:
                ratio = float(r)
            except ValueError as exc:
                raise ActionImagesError(f"mixture entry {part!r}: ratio {r!r} is not a number") from exc
        if not np.isfinite(ratio) or ratio <= 0:
            raise ActionImagesError(f"mixture entry {part!r}: ratio must be positive, got {ratio}")
        if "=" in body:
            name, _, path = body.partition("=")
            name, path = name.strip(), path.strip()
            if not name or not path:
                raise ActionImagesError(f"mixture entry {part!r}: expected NAME=PATH@RATIO")
        elif "/" in body or os.sep in body or Path(body).is_dir():
            name, path = Path(body).name or body, body
        else:
            name, path = body, None
        if any(name == n for n, _, _ in out):
            raise ActionImagesError(f"mixture spec {spec!r} names {name!r} twice")
        out.append((name, path, ratio))
    return out


class Mixture:
    """Episodes drawn from several sources by ratio (see module docstring).

    Args:
        sources: ``[(name, source, weight), ...]``; a source has ``len()`` and ``episode(i)``.
        seed: base seed of the schedule.
        rank, world_size: this process's share of each epoch.
        epoch_size: slots per epoch over all ranks (default: total episodes of all sources).
    """

    def __init__(
        self,
        sources: Sequence[tuple[str, Any, float]],
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_size: int | None = None,
    ) -> None:
        if not sources:
            raise ActionImagesError("a mixture needs at least one source")
        if not (0 <= rank < world_size):
            raise ActionImagesError(f"rank {rank} must lie in [0, world_size={world_size})")
        self.names = [n for n, _, _ in sources]
        self.sources = [s for _, s, _ in sources]
        w = np.asarray([float(x) for _, _, x in sources])
        if np.any(~np.isfinite(w)) or np.any(w <= 0):
            raise ActionImagesError(f"mixture weights must be positive, got {w.tolist()}")
        self.weights = w / w.sum()
        for name, src in zip(self.names, self.sources, strict=True):
            if len(src) == 0:
                raise DataError(f"mixture source {name!r} has no episodes")
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch_size = int(epoch_size) if epoch_size is not None else sum(len(s) for s in self.sources)
        if self.epoch_size < world_size:
            raise ActionImagesError(f"epoch_size {self.epoch_size} is smaller than world_size {world_size}")
        self.epoch = 0
        self._schedule: np.ndarray | None = None

    @classmethod
    def from_spec(cls, spec: str, sources: Mapping[str, Any] | None = None, **kwargs: Any) -> Mixture:
        """Build from a spec string; names without a path are looked up in ``sources``
        (values are readers or paths)."""
        entries = []
        for name, path, ratio in parse_mixture_spec(spec):
            if path is None:
                if not sources or name not in sources:
                    known = sorted(sources) if sources else []
                    raise ActionImagesError(f"mixture source {name!r} has no path and is not among {known}")
                src = sources[name]
                src = open_source(src) if isinstance(src, (str, Path)) else src
            else:
                src = open_source(path)
            entries.append((name, src, ratio))
        return cls(entries, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Switch to ``epoch``'s schedule."""
        if int(epoch) != self.epoch:
            self.epoch, self._schedule = int(epoch), None

    def counts(self) -> np.ndarray:
        """Slots per source in one epoch (over all ranks), largest-remainder rounding of N·w."""
        exact = self.epoch_size * self.weights
        counts = np.floor(exact).astype(np.int64)
        rest = self.epoch_size - counts.sum()
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:rest]] += 1
        return counts

    def schedule(self) -> np.ndarray:
        """The epoch's global schedule (N, 2) of (source index, episode index)."""
        if self._schedule is None:
            labels = np.concatenate([np.full(c, i) for i, c in enumerate(self.counts())])
            np.random.default_rng([self.seed, self.epoch, 0]).shuffle(labels)
            sched = np.zeros((len(labels), 2), dtype=np.int64)
            sched[:, 0] = labels
            for i, src in enumerate(self.sources):
                slots = np.nonzero(labels == i)[0]
                rng = np.random.default_rng([self.seed, self.epoch, 1 + i])
                n = len(src)
                perms = [rng.permutation(n) for _ in range(-(-len(slots) // n))]
                eps = np.concatenate(perms)[: len(slots)] if perms else np.zeros(0, np.int64)
                sched[slots, 1] = eps
            self._schedule = sched
        return self._schedule

    def __len__(self) -> int:
        return self.epoch_size // self.world_size  # equal lengths on every rank

    def entry(self, k: int) -> tuple[str, int]:
        """``(source name, episode index)`` of this rank's slot ``k``."""
        if not 0 <= k < len(self):
            raise IndexError(f"mixture slot {k} out of range for {len(self)}")
        s, e = self.schedule()[k * self.world_size + self.rank]
        return self.names[int(s)], int(e)

    def episode(self, k: int) -> Episode:
        """The episode in this rank's slot ``k`` (its ``info['mixture_source']`` names the source)."""
        name, e = self.entry(k)
        ep = self.sources[self.names.index(name)].episode(e)
        ep.info["mixture_source"] = name
        return ep

    def num_frames(self, k: int) -> int:
        name, e = self.entry(k)
        return source_num_frames(self.sources[self.names.index(name)], e)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}@{w:.3f}" for n, w in zip(self.names, self.weights, strict=True))
        return f"Mixture({parts}; epoch_size={self.epoch_size}, rank {self.rank}/{self.world_size})"
