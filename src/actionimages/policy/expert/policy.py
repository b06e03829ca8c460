"""The sim's scripted expert behind the :class:`~actionimages.policy.base.Policy` interface."""

from __future__ import annotations

from typing import Any

import numpy as np

from actionimages.errors import ActionImagesError
from actionimages.policy.base import Policy


class ExpertPolicy(Policy):
    """Wraps ``actionimages.sim.scripted_expert``; a sanity policy (should score ~100%)."""

    def __init__(self) -> None:
        self._env = None
        self._expert = None

    def attach(self, env: Any) -> None:
        """Bind to the environment (the scripted expert reads privileged sim state)."""
        self._env = env

    def reset(self, obs: dict[str, Any]) -> None:
        if self._env is None:
            raise ActionImagesError("ExpertPolicy: call attach(env) before reset(obs)")
        from actionimages.sim import scripted_expert

        self._expert = scripted_expert(self._env)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self._expert is None:
            raise ActionImagesError("ExpertPolicy: act() before reset()")
        return np.asarray(self._expert.act(obs), dtype=np.float64)
