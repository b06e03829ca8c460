"""Model configurations: frozen dataclasses in a named registry.

``CONFIGS`` maps a name to a :class:`ModelConfig`:

- ``tiny``: the CPU policy. 2 views, 1 + 4 frames at 64², a small Wan-2.2-style VAE (8× spatial,
  no temporal compression, z_dim 16) trained on our own data (``actionimages train-vae``), a
  6.2M-parameter Wan transformer with 4×4 patches over 80 tokens, a hashed-n-gram text encoder,
  action-image blobs of σ = 0.10·64 px, and the current frames in pixel space (``obs_patch`` 8:
  as cross-attention tokens, and with ``obs_align`` added to every token of their view at its
  cell; the shipped ``checkpoints/tiny`` predates both and loads with them off;
  docs/results/policy.md). Why each choice, and the 16×/4×
  design it replaced, are measured in docs/results/model.md.
- ``tiny-pixel``: option (b), a transformer of tiny's size in pixel space (9 frames, METHOD's σ)
  with no learned autoencoder:
  frames are folded 4× in time like the VAE does, patches are 16×16 pixels (192 tokens), and the
  network predicts the clean sample (x-prediction), as pixel-space diffusion transformers do.
  No VAE stage, ~5× slower training per sample, ~0.3 s per ``generate``.
- ``tiny-pixel-p8``: option (b) with 8×8 patches (768 tokens); measured too slow for a CPU policy.
- ``micro``: a few-hundred-kilobyte model for tests and smoke runs.
- ``small``: 128², 9 frames, a wider/deeper transformer, a 16×/4× Wan 2.2-style VAE.
- ``wan2.2-ti2v-5b``: the real Wan 2.2 TI2V-5B architecture (transformer 4,999,787,712
  parameters; VAE base_dim 160, z_dim 48; umT5-XXL text encoder, text_dim 4096). Weights come
  from a diffusers-format directory (``pretrained``), fine-tuned fully or with LoRA.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actionimages.errors import ActionImagesError

if TYPE_CHECKING:  # data imports torch and the codec; keep configs importable without them
    from actionimages.data.sample import SampleBuilder


@dataclass(frozen=True)
class TransformerSpec:
    """Arguments of diffusers' ``WanTransformer3DModel``."""

    patch_size: tuple[int, int, int] = (1, 2, 2)
    num_attention_heads: int = 4
    attention_head_dim: int = 64
    num_layers: int = 6
    ffn_dim: int = 768
    text_dim: int = 128
    freq_dim: int = 64
    cross_attn_norm: bool = True
    qk_norm: str = "rms_norm_across_heads"
    rope_max_seq_len: int = 1024

    @property
    def dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim


@dataclass(frozen=True)
class LatentSpec:
    """The space the transformer works in.

    ``kind="wan_vae"``: diffusers' ``AutoencoderKLWan`` with these arguments (Wan 2.2 style when
    ``patch_size=2`` and ``is_residual``); ``kind="pixel"``: no autoencoder, frames folded
    ``temporal`` × in time into channels (the first frame alone, repeated), like the VAE's
    causal 1 + 4k layout.
    """

    kind: str = "wan_vae"
    base_dim: int = 16
    decoder_base_dim: int | None = None
    z_dim: int = 48
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    is_residual: bool = True
    patch_size: int | None = 2
    spatial: int = 16
    temporal: int = 4

    @property
    def channels(self) -> int:
        """Channels of one latent frame."""
        return self.z_dim if self.kind == "wan_vae" else 3 * self.temporal


@dataclass(frozen=True)
class TextSpec:
    """Text conditioning.

    ``kind="hashed"``: word, word-bigram and character-trigram ids hashed into ``num_buckets``
    embeddings and a small transformer (trained with the model). ``kind="umt5"``: a frozen umT5
    encoder loaded from ``<pretrained>/text_encoder`` (+ ``tokenizer``), padded with zeros to
    ``max_tokens`` as Wan does.
    """

    kind: str = "hashed"
    dim: int = 128
    num_buckets: int = 4096
    num_layers: int = 1
    num_heads: int = 4
    max_tokens: int = 24


@dataclass(frozen=True)
class MaskMix:
    """Probabilities of the mask modes for samples that have actions (normalised on use).

    ``view1`` gives view 1's whole RGB clip and generates the rest as in ``joint``.
    """

    joint: float = 0.70
    i2a: float = 0.09
    view1: float = 0.04
    v2a: float = 0.04
    video: float = 0.10
    a2v: float = 0.03

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes a world-action model's architecture and training objective."""

    name: str
    num_views: int = 2
    num_frames: int = 9
    height: int = 64
    width: int = 64
    transformer: TransformerSpec = field(default_factory=TransformerSpec)
    latent: LatentSpec = field(default_factory=LatentSpec)
    text: TextSpec = field(default_factory=TextSpec)
    # Action-image blob width as a fraction of min(H, W). METHOD.md fixes 0.05 (25.6 px at 512²);
    # low-resolution CPU configs may widen it so blobs survive a small autoencoder (ours).
    action_sigma_frac: float = 0.05
    camera_dim: int = 64  # width of the shared Plücker-ray encoder
    plucker_subgrid: int = 4  # Plücker rays sampled on a (sub × sub) grid inside each token
    # Pixels per side of an observation token: each view's current frame also enters cross-attention
    # in pixel space through a small stem (model/observation.py), past the autoencoder. 0 = off.
    obs_patch: int = 0
    # Also add the observation grid, pooled to the token grid, to every token of its view (needs
    # obs_patch; model/observation.py says why).
    obs_align: bool = False
    # Pixel-aligned output path (ours; RVT's full-resolution skip, a ControlNet-style injection):
    # the transformer's output, unpatchified to the latent grid, is refined by a few convolutions
    # that also see the noisy input and the observation stem's features at latent resolution; the
    # last one is zero-initialised. Hidden channels; 0 = off. Needs obs_patch (model/refine.py).
    out_refine: int = 0
    # Instruction FiLM in the observation stem (early fusion, model/observation.py); needs obs_patch.
    obs_film: bool = False
    prediction: str = "v"  # "v" (velocity) or "x" (clean sample)
    timestep_shift: float = 3.0
    logit_normal: bool = True  # training sigmas from a logit-normal (else uniform) before the shift
    text_dropout: float = 0.05
    mask_mix: MaskMix = field(default_factory=MaskMix)
    # Loss weight of generated action-segment frames relative to RGB ones (1: METHOD's plain mean);
    # > 1 puts more of the loss on the blobs the policy decodes.
    action_loss_weight: float = 1.0
    # Control steps between consecutive frames of the clips the model learned (train --stride): a
    # plan's poses are this many control steps apart, so a policy holds each for as many steps.
    frame_stride: int = 1
    pretrained: str | None = None  # diffusers-format Wan directory (transformer/, vae/, ...)
    lora_rank: int = 0  # 0: full fine-tune; >0: peft LoRA on the transformer's attention + FFN
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        lat, tr = self.latent, self.transformer
        if self.prediction not in ("v", "x"):
            raise ActionImagesError(f"prediction must be 'v' or 'x', got {self.prediction!r}")
        if lat.kind not in ("wan_vae", "pixel"):
            raise ActionImagesError(f"latent.kind must be 'wan_vae' or 'pixel', got {lat.kind!r}")
        if self.text.kind not in ("hashed", "umt5"):
            raise ActionImagesError(f"text.kind must be 'hashed' or 'umt5', got {self.text.kind!r}")
        if self.num_views < 1:
            raise ActionImagesError(f"num_views must be >= 1, got {self.num_views}")
        for name in ("num_layers", "num_attention_heads", "attention_head_dim", "ffn_dim", "freq_dim"):
            if getattr(tr, name) < 1:  # 0 layers: a model that learns nothing, trained for hours
                raise ActionImagesError(f"transformer.{name} must be >= 1, got {getattr(tr, name)}")
        if self.height < 1 or self.width < 1:
            raise ActionImagesError(f"height and width must be >= 1, got {self.height}×{self.width}")
        # The VAE keeps 1 + 4k frames; other counts would silently lose frames.
        if self.num_frames < 1 or (self.num_frames - 1) % lat.temporal:
            raise ActionImagesError(f"num_frames must be 1 + {lat.temporal}k, got {self.num_frames}")
        stride = self.token_stride
        if self.height % stride or self.width % stride:
            raise ActionImagesError(
                f"height/width ({self.height}×{self.width}) must be multiples of the token stride {stride} "
                "(latent compression × patch); the patchifier would crop silently"
            )
        if tr.patch_size[0] != 1:
            raise ActionImagesError("the temporal patch must be 1 (each latent frame is masked on its own)")
        if tr.text_dim != self.text.dim:
            raise ActionImagesError(f"transformer.text_dim {tr.text_dim} != text.dim {self.text.dim}")
        if not 0 < self.action_sigma_frac < 0.5:
            raise ActionImagesError(f"action_sigma_frac must be in (0, 0.5), got {self.action_sigma_frac}")
        if self.obs_patch and (
            self.obs_patch < 2
            or self.obs_patch % 2
            or self.height % self.obs_patch
            or self.width % self.obs_patch
        ):
            raise ActionImagesError(
                f"obs_patch must be even and divide {self.height}×{self.width}, got {self.obs_patch}"
            )
        if self.obs_align and (not self.obs_patch or self.token_stride % self.obs_patch):
            raise ActionImagesError(
                f"obs_align needs an obs_patch dividing the token stride {self.token_stride}, "
                f"got {self.obs_patch}"
            )
        if self.out_refine < 0 or (self.out_refine and not self.obs_patch):
            raise ActionImagesError(
                f"out_refine must be 0 (off) or a channel count with obs_patch set, got {self.out_refine} "
                f"(obs_patch {self.obs_patch})"
            )
        if self.frame_stride < 1:
            raise ActionImagesError(f"frame_stride must be >= 1, got {self.frame_stride}")
        if not self.action_loss_weight > 0:
            raise ActionImagesError(f"action_loss_weight must be positive, got {self.action_loss_weight}")
        if self.obs_film and not self.obs_patch:
            raise ActionImagesError("obs_film modulates the observation stem: it needs obs_patch")
        if lat.kind == "pixel" and self.latent.spatial != 1:
            raise ActionImagesError("pixel latent space must have spatial=1 (patching is the transformer's)")

    # ------------------------------------------------------------------ layout
    @property
    def latent_frames(self) -> int:
        """Latent frames per segment (1 + (F - 1) / temporal)."""
        return 1 + (self.num_frames - 1) // self.latent.temporal

    @property
    def num_segments(self) -> int:
        """Segments along latent time: [view1 RGB | view1 action | view2 RGB | ...]."""
        return 2 * self.num_views

    @property
    def latent_hw(self) -> tuple[int, int]:
        return self.height // self.latent.spatial, self.width // self.latent.spatial

    @property
    def token_stride(self) -> int:
        """Pixels per token side (latent compression × transformer patch)."""
        return self.latent.spatial * self.transformer.patch_size[1]

    @property
    def token_hw(self) -> tuple[int, int]:
        return self.height // self.token_stride, self.width // self.token_stride

    @property
    def num_tokens(self) -> int:
        h, w = self.token_hw
        return self.num_segments * self.latent_frames * h * w

    def sample_builder(
        self,
        stride: int = 1,
        training: bool = False,
        views: list[str] | None = None,
        hold_final: int = 0,
    ) -> SampleBuilder:
        """The data ``SampleBuilder`` that makes this model's clips (F, V, H×W from the config)."""
        from actionimages.data.sample import SampleBuilder

        return SampleBuilder(
            num_frames=self.num_frames,
            stride=stride,
            num_views=self.num_views,
            height=self.height,
            width=self.width,
            training=training,
            views=views,
            sigma_frac=self.action_sigma_frac,
            hold_final=hold_final,
        )

    # ------------------------------------------------------------ serialise
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ActionImagesError(f"unknown model config keys {sorted(unknown)}")
        subs = {"transformer": TransformerSpec, "latent": LatentSpec, "text": TextSpec, "mask_mix": MaskMix}
        for key, sub in subs.items():
            if key in d and isinstance(d[key], dict):
                vals = {
                    k: tuple(v) if isinstance(v, list) else v for k, v in d[key].items()
                }  # JSON gives lists where tuples are declared
                d[key] = sub(**vals)
        return cls(**d)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with top-level fields changed (nested specs: pass whole replaced specs)."""
        return dataclasses.replace(self, **changes)


# CPU scale (ours, measured in docs/results/model.md): the sim moves the gripper ~25 mm per control
# step, so a 4× temporal fold puts four far-apart blobs in one latent frame, and a 16× VAE trained
# from scratch put them back 40–100 mm wrong. `tiny` keeps every frame (the Wan VAE class with no
# temporal downsampling), compresses 8× in space (it learns ~10× faster than 16× from scratch),
# lets the transformer's 4×4 patches make the 2×2 tokens per frame, predicts 1 + 4 frames, and
# draws blobs wider than METHOD's 0.05 so the small latent holds them.
_TINY = ModelConfig(
    name="tiny",
    num_frames=5,
    transformer=TransformerSpec(patch_size=(1, 4, 4)),
    latent=LatentSpec(
        z_dim=16, dim_mult=(1, 2, 2), temporal_downsample=(False, False), spatial=8, temporal=1
    ),
    action_sigma_frac=0.10,
    obs_patch=8,
    obs_align=True,
)

CONFIGS: dict[str, ModelConfig] = {
    "tiny": _TINY,
    "tiny-pixel": ModelConfig(
        name="tiny-pixel",
        latent=LatentSpec(kind="pixel", spatial=1, temporal=4, patch_size=None),
        transformer=TransformerSpec(patch_size=(1, 16, 16)),
        prediction="x",
    ),
    "tiny-pixel-p8": ModelConfig(
        name="tiny-pixel-p8",
        latent=LatentSpec(kind="pixel", spatial=1, temporal=4, patch_size=None),
        transformer=TransformerSpec(patch_size=(1, 8, 8)),
        prediction="x",
    ),
    # For tests and smoke runs only: trains in seconds, learns little.
    "micro": ModelConfig(
        name="micro",
        transformer=TransformerSpec(
            num_attention_heads=2, attention_head_dim=32, num_layers=2, ffn_dim=128, text_dim=32, freq_dim=32
        ),
        latent=LatentSpec(base_dim=8, z_dim=16),
        text=TextSpec(dim=32, num_buckets=256, num_heads=2),
        camera_dim=32,
    ),
    "small": ModelConfig(
        name="small",
        height=128,
        width=128,
        transformer=TransformerSpec(
            num_attention_heads=6,
            attention_head_dim=64,
            num_layers=10,
            ffn_dim=1536,
            text_dim=256,
            freq_dim=128,
        ),
        latent=LatentSpec(base_dim=32, z_dim=48),
        text=TextSpec(dim=256, num_layers=2),
        camera_dim=128,
    ),
    "wan2.2-ti2v-5b": ModelConfig(
        name="wan2.2-ti2v-5b",
        num_views=2,
        num_frames=41,
        height=512,
        width=512,
        transformer=TransformerSpec(
            patch_size=(1, 2, 2),
            num_attention_heads=24,
            attention_head_dim=128,
            num_layers=30,
            ffn_dim=14336,
            text_dim=4096,
            freq_dim=256,
        ),
        latent=LatentSpec(base_dim=160, decoder_base_dim=256, z_dim=48),
        text=TextSpec(kind="umt5", dim=4096, max_tokens=512),
        camera_dim=256,
        timestep_shift=5.0,
        gradient_checkpointing=True,
    ),
}


def get_config(name: str, **changes: Any) -> ModelConfig:
    """The registered config ``name``, with top-level fields replaced by ``changes``."""
    if name not in CONFIGS:
        raise ActionImagesError(f"unknown model config {name!r}; known: {sorted(CONFIGS)}")
    return CONFIGS[name].replace(**changes) if changes else CONFIGS[name]
