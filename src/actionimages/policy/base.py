"""The policy interface the closed-loop evaluator drives."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """A closed-loop policy over the sim's observations (docs/ARCHITECTURE.md, sim).

    ``reset(obs)`` starts an episode; ``act(obs)`` returns the next absolute end-effector target
    (7,) ``[x, y, z, rx, ry, rz, openness]``. Optional extras the evaluator uses when present:
    ``attach(env)`` (policies that need the environment, e.g. the scripted expert),
    ``stats() -> dict`` (replans, invalid decodes, latencies) and
    ``preview() -> {view: (H, W, 3)}`` (the action images behind the current action, for videos).
    """

    def reset(self, obs: dict[str, Any]) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...


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
