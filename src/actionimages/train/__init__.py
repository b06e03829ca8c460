"""Training: masked rectified flow for the world-action model, and the tiny VAE.

Public API: :class:`Trainer` / :class:`TrainConfig` (the world-action model), :func:`train_vae` /
:class:`VAETrainConfig` (option (a)'s small Wan VAE), the checkpoint helpers and the data sources.
"""

from actionimages.train.checkpoint import (
    CheckpointDamaged,
    latest_checkpoint,
    list_checkpoints,
    load_newest_intact,
    save_checkpoint,
    verify_checkpoint,
)
from actionimages.train.data import (
    PreparedCache,
    SyntheticSource,
    global_indices,
    open_training_source,
    sample_seed,
)
from actionimages.train.trainer import EMA, TrainConfig, Trainer, make_accelerator
from actionimages.train.vae import VAETrainConfig, latent_stats, train_vae

__all__ = [
    "EMA",
    "CheckpointDamaged",
    "PreparedCache",
    "SyntheticSource",
    "TrainConfig",
    "Trainer",
    "VAETrainConfig",
    "global_indices",
    "latent_stats",
    "latest_checkpoint",
    "list_checkpoints",
    "load_newest_intact",
    "make_accelerator",
    "open_training_source",
    "sample_seed",
    "save_checkpoint",
    "train_vae",
    "verify_checkpoint",
]
