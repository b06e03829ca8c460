"""The policy interface the closed-loop evaluator drives, and receding-horizon chunk execution.

Shape legend (every policy):

- ``obs["images"]``: ``{view: uint8 (H, W, 3)}``; ``obs["cameras"]``: ``{view: calibration}``, the
  sim's arrays ``{K, cam_to_world, width, height}`` or a :class:`~actionimages.codec.Camera`
  (``actionimages.codec.as_camera`` takes either);
  ``obs["ee_pose"]``: (7,) ``[x, y, z, rx, ry, rz, openness]``; ``obs["instruction"]``: str.
- ``act(obs)`` -> (7,) the next absolute end-effector target (world frame, metres, Euler xyz).
- a chunk: future absolute poses (N, 7) with per-pose validity (N,) bool.

A new policy subclasses :class:`Policy` (or :class:`ChunkedPolicy` when it predicts chunks) and
registers a builder in :mod:`actionimages.policy.registry`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from actionimages.errors import ActionImagesError
from actionimages.policy.chunking import ChunkExecutor


class Policy(ABC):
    """A closed-loop policy over the sim's (or a robot's) observations; see the module legend.

    The evaluator calls, per episode: :meth:`attach` (the env; only privileged policies use it),
    :meth:`set_seed` (the episode seed, for reproducible sampling), :meth:`reset`, then :meth:`act`
    every control step, and :meth:`stats` / :meth:`preview` for results and videos.
    """

    def attach(self, env: Any) -> None:
        """Bind to the environment (the scripted expert and the oracles read sim state)."""
        return None  # optional hook: most policies see only observations

    def set_seed(self, seed: int) -> None:
        """The episode seed; stochastic policies derive their noise from it."""
        return None  # optional hook: deterministic policies ignore it

    @abstractmethod
    def reset(self, obs: dict[str, Any]) -> None:
        """Start an episode at observation ``obs``."""

    @abstractmethod
    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The next absolute target (7,)."""

    def stats(self) -> dict[str, Any]:
        """Per-episode counters (replans, invalid decodes, latencies); empty by default."""
        return {}

    def preview(self) -> dict[str, np.ndarray] | None:
        """Images behind the current action, per view (H, W, 3) in [0, 1], for rollout videos."""
        return None


class PolicyStats:
    """Counters a replanning policy keeps per episode."""

    def __init__(self) -> None:
        self.replans = 0
        self.invalid_decodes = 0  # plans whose decode was invalid (pose held, replanned)
        self.invalid_frames = 0  # individual decoded frames flagged invalid
        self.latencies: list[float] = []  # seconds per replanning call
        self.decode_errors: list[str] = []  # codec failures on generated action videos (also invalid)

    def as_dict(self) -> dict[str, Any]:
        return {
            "replans": self.replans,
            "invalid_decodes": self.invalid_decodes,
            "invalid_frames": self.invalid_frames,
            "latencies_s": [round(x, 5) for x in self.latencies],
            "decode_errors": len(self.decode_errors),
            "first_decode_error": self.decode_errors[0] if self.decode_errors else None,
        }


@dataclass
class Chunk:
    """One plan: future absolute poses (N, 7), their validity (N,) and a tag per pose (e.g. the
    generated frame it came from, for previews)."""

    poses: np.ndarray
    valid: np.ndarray
    tags: list[Any] | None = None


class ChunkedPolicy(Policy):
    """A policy that predicts chunks and executes them through one :class:`ChunkExecutor`.

    Subclasses implement :meth:`plan_chunk`; this class replans when the executed prefix is used
    up, times each replanning call and counts invalid frames and plans in :class:`PolicyStats`.
    """

    def __init__(
        self,
        execute: int,
        horizon: int,
        repeat: int = 1,
        executor: ChunkExecutor | None = None,
        **options: Any,
    ) -> None:
        """``executor``: use this one (e.g. a client's) instead of building one from the arguments."""
        try:
            self.executor = (
                executor if executor is not None else ChunkExecutor(execute, horizon, repeat, **options)
            )
        except ValueError as exc:
            raise ActionImagesError(str(exc)) from exc
        self._stats = PolicyStats()
        self._tag: Any = None

    @property
    def execute(self) -> int:
        return self.executor.execute

    @property
    def repeat(self) -> int:
        return self.executor.repeat

    def reset(self, obs: dict[str, Any]) -> None:
        self.executor.reset()
        self._stats = PolicyStats()
        self._tag = None

    @abstractmethod
    def plan_chunk(self, obs: dict[str, Any]) -> Chunk:
        """Predict the next chunk from ``obs``."""

    def replan(self, obs: dict[str, Any]) -> Chunk:
        """One plan with its bookkeeping (latency, replan count, invalid frames): what :meth:`act`
        does when the executed prefix is used up, and what the policy server answers with."""
        t0 = time.perf_counter()
        chunk = self.plan_chunk(obs)
        self._stats.latencies.append(time.perf_counter() - t0)
        self._stats.replans += 1
        self._stats.invalid_frames += int((~np.asarray(chunk.valid, bool)[: self.execute]).sum())
        return chunk

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self.executor.empty:
            chunk = self.replan(obs)
            if not self.executor.load(chunk.poses, chunk.valid, obs["ee_pose"], chunk.tags):
                self._stats.invalid_decodes += 1
        target, self._tag = self.executor.pop()
        return target

    def stats(self) -> dict[str, Any]:
        return self._stats.as_dict()

    def fresh(self) -> ChunkedPolicy:
        """A policy sharing this one's weights and options with its own episode state (executor,
        counters): what a server gives each episode."""
        import copy

        new = copy.copy(self)
        new.executor = copy.deepcopy(self.executor)
        new._stats, new._tag = PolicyStats(), None
        return new

    def serving_info(self) -> dict[str, Any]:
        """What a policy server announces: ``kind``, ``num_views``, ``image_size`` (H, W) and
        optionally ``model_config``. Policies that can be served override it."""
        raise ActionImagesError(f"a {type(self).__name__} cannot be served (no serving_info)")
