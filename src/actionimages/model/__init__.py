"""The world-action model: Wan 2.2 (diffusers) over multiview RGB + action-image segments.

Public API: ``CONFIGS`` / :func:`get_config` (the config registry), :class:`WorldActionModel`,
:func:`build_model`, :func:`load_model`, :func:`load_pretrained_wan`, :func:`generate` /
:class:`Generation`, the mask modes (``MODES``), and the training objective
(:func:`prepare_batch`, :func:`training_loss`).
"""

from actionimages.model.config import (
    CONFIGS,
    LatentSpec,
    MaskMix,
    ModelConfig,
    TextSpec,
    TransformerSpec,
    get_config,
)
from actionimages.model.flow import Prepared, prepare_batch, shift_sigma, training_loss
from actionimages.model.io import add_lora, build_model, load_model, load_pretrained_wan, load_vae, set_vae
from actionimages.model.latents import LatentSpace, build_wan_vae
from actionimages.model.masks import ABSENT, GENERATE, GIVEN, MODES, mode_states
from actionimages.model.network import WorldActionModel
from actionimages.model.sampling import Generation, decode_actions, generate
from actionimages.model.text import HashedTextEncoder, UMT5TextEncoder

__all__ = [
    "ABSENT",
    "CONFIGS",
    "GENERATE",
    "GIVEN",
    "MODES",
    "Generation",
    "HashedTextEncoder",
    "LatentSpace",
    "LatentSpec",
    "MaskMix",
    "ModelConfig",
    "Prepared",
    "TextSpec",
    "TransformerSpec",
    "UMT5TextEncoder",
    "WorldActionModel",
    "add_lora",
    "build_model",
    "build_wan_vae",
    "decode_actions",
    "generate",
    "get_config",
    "load_model",
    "load_pretrained_wan",
    "load_vae",
    "mode_states",
    "prepare_batch",
    "set_vae",
    "shift_sigma",
    "training_loss",
]
