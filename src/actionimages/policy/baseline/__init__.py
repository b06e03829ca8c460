"""What the baseline kinds (``bc``, ``lowdim``) share: demonstrations as (frame, pose, chunk)
samples, training on the same data and compute budget as the world model, the checkpoint
(``baseline.json`` + weights, fp16 export with a checked SHA-256), and receding-horizon execution.
"""

from actionimages.policy.baseline.policy import BaselinePolicy, load_baseline_policy
from actionimages.policy.baseline.train import export_baseline, load_baseline, train_baseline

__all__ = ["BaselinePolicy", "export_baseline", "load_baseline", "load_baseline_policy", "train_baseline"]
