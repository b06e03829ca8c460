"""Closed-loop policies: the action-image policy (generate, decode, execute k, replan) and the expert."""

from actionimages.policy.base import Policy, PolicyStats
from actionimages.policy.expert import ExpertPolicy

__all__ = ["Policy", "PolicyStats", "ExpertPolicy"]
