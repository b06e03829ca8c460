"""Baselines trained on the same demonstrations with the same compute budget as the world model.

- ``bc``: image behaviour cloning (CNN per view + action-chunk regression head).
- ``lowdim``: the world model's transformer backbone with a low-dimensional action head.
"""

from actionimages.eval.baselines.policy import BaselinePolicy, load_baseline_policy
from actionimages.eval.baselines.train import export_baseline, load_baseline, train_baseline

__all__ = ["BaselinePolicy", "export_baseline", "load_baseline", "load_baseline_policy", "train_baseline"]
