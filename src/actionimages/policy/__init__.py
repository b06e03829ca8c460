"""Closed-loop policies: the interface, chunk execution, the registry of kinds, and the expert.

The action-image policy (generate, decode, execute k, replan) lives in
``actionimages.policy.action_image_policy``; the kinds ``eval --policy`` offers are in
``actionimages.policy.registry``.
"""

from actionimages.policy.base import Chunk, ChunkedPolicy, Policy, PolicyStats
from actionimages.policy.chunking import ChunkExecutor
from actionimages.policy.expert import ExpertPolicy

__all__ = ["Chunk", "ChunkExecutor", "ChunkedPolicy", "ExpertPolicy", "Policy", "PolicyStats"]
