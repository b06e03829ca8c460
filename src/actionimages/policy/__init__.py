"""Closed-loop policies: the interface, chunk execution, and one folder per registered kind.

- ``base.py``: :class:`Policy` (reset, act) and :class:`ChunkedPolicy` (plan a chunk, execute k);
  ``chunking.py`` the executor every chunked policy and the robot client share.
- ``registry.py``: the table of kinds, filled by each folder's ``@policy_kind`` decorator.
- ``action_images/`` (the world-action model and the ladder's oracles), ``bc/`` (image behaviour
  cloning), ``lowdim/`` (the low-dim head), ``baseline/`` (what ``bc`` and ``lowdim`` share:
  training, checkpoints, execution), ``expert/`` (the scripted expert), ``remote/`` (a served policy).
"""

from actionimages.policy import registry  # noqa: F401  (first: it registers the kinds in CLI order)
from actionimages.policy.base import Chunk, ChunkedPolicy, Policy, PolicyStats
from actionimages.policy.chunking import ChunkExecutor
from actionimages.policy.expert import ExpertPolicy

__all__ = ["Chunk", "ChunkExecutor", "ChunkedPolicy", "ExpertPolicy", "Policy", "PolicyStats"]
