"""World-action model: configs, layout, masks, sampling, camera/text conditioning, loading."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from actionimages.errors import ActionImagesError
from actionimages.model import (
    ABSENT,
    CONFIGS,
    GENERATE,
    GIVEN,
    MODES,
    HashedTextEncoder,
    LatentSpace,
    LatentSpec,
    build_model,
    build_wan_vae,
    generate,
    get_config,
    load_model,
    mode_states,
    prepare_batch,
    training_loss,
)
from actionimages.model.network import build_transformer
from actionimages.model.synthetic import synthetic_batch, tiny_wan_folder

WAN22_TRANSFORMER_PARAMS = 4_999_787_712  # diffusers WanTransformer3DModel, TI2V-5B arguments
WAN22_VAE_PARAMS = 704_688_668


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return build_model("micro").eval()


@pytest.fixture(scope="module")
def batch():
    return synthetic_batch(get_config("micro"), 2, seed=3)


# ----------------------------------------------------------------------------- configs
def test_registry_names_and_layout():
    assert {"tiny", "small", "wan2.2-ti2v-5b"} <= set(CONFIGS)
    tiny = CONFIGS["tiny"]
    # tiny keeps every frame (no temporal fold) and draws wider blobs than METHOD's 0.05
    assert tiny.num_segments == 4 and tiny.latent_frames == tiny.num_frames == 5 and tiny.token_hw == (2, 2)
    assert tiny.action_sigma_frac > 0.05 and tiny.sample_builder().sigma_frac == tiny.action_sigma_frac
    big = CONFIGS["wan2.2-ti2v-5b"]
    assert big.latent_frames == 11 and big.num_segments == 4 and big.text.kind == "umt5"
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.height = 32  # type: ignore[misc]


def test_config_roundtrip_and_validation():
    cfg = CONFIGS["tiny-pixel"]
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ActionImagesError, match="1 \\+ 4k"):
        get_config("small", num_frames=8)
    with pytest.raises(ActionImagesError, match="action_sigma_frac"):
        get_config("tiny", action_sigma_frac=0.0)
    with pytest.raises(ActionImagesError, match="multiples"):
        get_config("tiny", height=72)
    with pytest.raises(ActionImagesError, match="unknown model config"):
        get_config("nope")
    with pytest.raises(ActionImagesError, match="unknown model config keys"):
        type(cfg).from_dict({**cfg.to_dict(), "bogus": 1})


def test_wan22_5b_parameter_counts_on_meta_device():
    cfg = CONFIGS["wan2.2-ti2v-5b"]
    with torch.device("meta"):
        transformer = build_transformer(cfg)
        vae = build_wan_vae(cfg.latent)
        model = build_model(cfg)
    assert sum(p.numel() for p in transformer.parameters()) == WAN22_TRANSFORMER_PARAMS
    assert sum(p.numel() for p in vae.parameters()) == WAN22_VAE_PARAMS
    parts = model.num_parameters_by_part()
    assert parts["transformer"] == WAN22_TRANSFORMER_PARAMS
    assert 0 < parts["camera"] < 0.01 * WAN22_TRANSFORMER_PARAMS  # the extra pieces are small
    assert model.text_encoder is None  # umT5 is external


# ------------------------------------------------------------------------------ masks
def test_mode_states():
    f = 3
    joint = mode_states("joint", 2, f)
    assert joint.shape == (4, 3) and (joint[:, 0] == GIVEN).all() and (joint[:, 1:] == GENERATE).all()
    a2v = mode_states("a2v", 2, f)
    assert (a2v[1::2] == GIVEN).all() and (a2v[0::2, 1:] == GENERATE).all()
    v2a = mode_states("v2a", 2, f)
    assert (v2a[0::2] == GIVEN).all() and (v2a[1::2] == GENERATE).all()
    video = mode_states("video", 2, f)
    assert (video[1::2] == ABSENT).all() and (video[0::2, 1:] == GENERATE).all()
    i2a = mode_states("i2a", 2, f)
    assert (
        (i2a[0::2, 0] == GIVEN).all()
        and (i2a[0::2, 1:] == ABSENT).all()
        and (i2a[1::2, 1:] == GENERATE).all()
    )
    view1 = mode_states("view1", 2, f)
    assert (view1[0] == GIVEN).all() and (view1[2, 1:] == GENERATE).all()
    with pytest.raises(ActionImagesError, match="unknown mask mode"):
        mode_states("x2y", 2, f)


@pytest.mark.parametrize("mode", MODES)
def test_generate_every_mode_keeps_given_segments(micro, batch, mode):
    cfg = micro.spec
    g = generate(micro, batch, mode=mode, num_steps=2, guidance=2.0, seed=7, decode_action_poses=False)
    states = mode_states(mode, cfg.num_views, cfg.latent_frames)
    assert g.rgb.shape == batch["rgb"].shape and g.action_images.shape == batch["rgb"].shape
    streams = torch.stack([batch["rgb"], batch["action_images"]], 2).flatten(1, 2)
    out = torch.stack([g.rgb, g.action_images], 2).flatten(1, 2)
    given_latents = torch.cat(
        [micro.latent_space.encode(streams[:, s]) for s in range(cfg.num_segments)], 2
    )  # (B, C, S·f, h, w)
    st = states.flatten()
    for s in range(cfg.num_segments):
        seg = states[s]
        if (seg == GIVEN).all() or (seg == ABSENT)[1:].all():
            # fully given or not generated at all: returned exactly as passed in
            assert torch.equal(out[:, s], streams[:, s]), (mode, s)
        else:
            assert (seg == GENERATE).any()
            if seg[0] == GIVEN:
                assert torch.equal(out[:, s, :, :1], streams[:, s, :, :1])  # the given first frame
            assert not torch.allclose(out[:, s, :, 1:], streams[:, s, :, 1:], atol=1e-3)
    given = st == GIVEN
    assert torch.allclose(g.latents[:, :, given], given_latents[:, :, given], atol=1e-5)
    assert g.mode == mode and g.states.shape == states.shape


def test_generate_is_deterministic_for_a_seed(micro, batch):
    a = generate(micro, batch, "joint", num_steps=3, guidance=1.0, seed=5, decode_action_poses=False)
    b = generate(micro, batch, "joint", num_steps=3, guidance=1.0, seed=5, decode_action_poses=False)
    c = generate(micro, batch, "joint", num_steps=3, guidance=1.0, seed=6, decode_action_poses=False)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.action_images, b.action_images)
    assert not torch.allclose(a.latents, c.latents)


def test_generate_from_first_frames_only_matches_full_clip(micro, batch):
    # A policy passes just the current frame (F = 1); frames a mode does not give must not matter.
    first = {**batch, **{k: batch[k][:, :, :, :1] for k in ("rgb", "action_images", "plucker")}}
    a = generate(micro, batch, "joint", num_steps=2, seed=1, decode_action_poses=False)
    b = generate(micro, first, "joint", num_steps=2, seed=1, decode_action_poses=False)
    assert torch.allclose(a.latents, b.latents, atol=1e-5)
    with pytest.raises(ActionImagesError, match="whole given clips"):
        generate(micro, first, "a2v", num_steps=1)


def test_generate_decodes_actions_with_the_codec(micro, batch):
    g = generate(micro, batch, "a2v", num_steps=1, seed=0)  # action segments given: decodes the inputs
    assert g.actions.shape == (2, 9, 7) and g.valid.shape == (2, 9)
    assert g.valid.all()
    err = (g.actions[..., :3] - batch["actions"][..., :3]).norm(dim=-1)
    assert err.max() < 2e-3


def test_generate_rejects_bad_input(micro, batch):
    with pytest.raises(ActionImagesError, match="unknown mode"):
        generate(micro, batch, "dream")
    with pytest.raises(ActionImagesError, match="num_steps"):
        generate(micro, batch, "joint", num_steps=0)
    bad = {**batch, "rgb": batch["rgb"][:, :1]}
    with pytest.raises(ActionImagesError, match="rgb"):
        generate(micro, bad, "joint", num_steps=1)
    with pytest.raises(ActionImagesError, match="missing 'plucker'"):
        generate(micro, {k: v for k, v in batch.items() if k != "plucker"}, "joint", num_steps=1)


# ------------------------------------------------------------------- loss and layout
def test_loss_counts_only_generated_frames(micro, batch):
    prep = prepare_batch(micro, batch)
    loss, parts = training_loss(micro, prep, [1, 2], modes=["joint", "v2a"], return_parts=True)
    assert torch.isfinite(loss)
    # Perturbing a latent frame that is GIVEN in v2a (RGB) changes the v2a sample's input, but a
    # frame that is ABSENT (not in the sequence's clean data) must not change the joint loss target.
    st = parts["states"]
    assert (st[1, 0::1][: micro.spec.latent_frames] == GIVEN).all()
    # The loss of a sample with no generated frames would be undefined: every mode generates something.
    for mode in MODES:
        assert (mode_states(mode, 2, 3) == GENERATE).any()


def test_action_loss_weight_weighs_the_action_segments(micro, batch):
    """action_loss_weight w: each sample's loss is the mean over its generated frames, weighted w on
    action frames and 1 on RGB ones: more weight on the actions, the same frames counted."""
    prep = prepare_batch(micro, batch)
    heavy = build_model(micro.spec.replace(action_loss_weight=3.0))
    heavy.load_state_dict(micro.state_dict())

    def loss(model, modes, per_sample=False):
        with torch.no_grad():
            total, parts = training_loss(model, prep, [1, 2], modes=modes, return_parts=True)
        return parts["per_sample"] if per_sample else float(total)

    rgb_only, action_only = ["a2v", "a2v"], ["v2a", "v2a"]  # RGB frames only / action frames only
    assert loss(heavy, rgb_only) == pytest.approx(loss(micro, rgb_only))
    assert loss(heavy, action_only) == pytest.approx(loss(micro, action_only))
    joint = ["joint", "joint"]
    assert not torch.allclose(loss(micro, joint, True), loss(heavy, joint, True))
    with pytest.raises(ActionImagesError, match="action_loss_weight"):
        micro.spec.replace(action_loss_weight=0.0)


def test_has_actions_false_gets_video_only_masks(micro, batch):
    prep = prepare_batch(micro, {**batch, "has_actions": torch.tensor([False, False])})
    _, parts = training_loss(micro, prep, list(range(2)), return_parts=True)
    assert parts["modes"] == ["video", "video"]


def test_camera_conditioning_is_zero_initialised(batch):
    torch.manual_seed(0)
    model = build_model("micro").eval()
    prep = prepare_batch(model, batch)
    t = torch.full((2, prep.x0.shape[2]), 500.0)
    text = model.encode_text(batch["instruction"])
    other = prep.camera.flip(1)  # swap the views' rays
    with torch.no_grad():
        a, b = model(prep.x0, t, text, prep.camera), model(prep.x0, t, text, other)
        assert torch.equal(a, b)  # zero-init: cameras do not matter yet
        for proj in model.camera_proj:
            torch.nn.init.normal_(proj.weight, std=0.1)
        a, b = model(prep.x0, t, text, prep.camera), model(prep.x0, t, text, other)
    assert not torch.allclose(a, b)


# ------------------------------------------------------------------------------ text
def test_hashed_text_encoder():
    torch.manual_seed(0)
    enc = HashedTextEncoder(32, num_buckets=512, num_heads=2, max_tokens=16).eval()
    with torch.no_grad():
        e = enc(["close the drawer", "close the drawer", "please close drawer", "reach the red target", ""])
    assert e.shape == (5, 17, 32)
    assert torch.equal(e[0], e[1])
    s = torch.nn.functional.cosine_similarity(e[:, 0], e[0:1, 0], dim=-1)
    assert s[2] > s[3]  # a rephrasing sharing words is nearer than another task
    assert e[4, 1:].abs().sum() == 0  # empty instruction: only the summary token
    ids = enc.ids(["close the drawer"])
    assert ids["word"][0, :3].tolist() == enc.ids(["CLOSE the drawer!"])["word"][0, :3].tolist()
    with pytest.raises(ActionImagesError):
        enc.ids("not a list")


# --------------------------------------------------------------------------- latents
def test_pixel_space_roundtrip_is_exact():
    space = LatentSpace(LatentSpec(kind="pixel", spatial=1, temporal=4, patch_size=None))
    video = torch.rand(2, 3, 9, 16, 16) * 2 - 1
    z = space.encode(video)
    assert z.shape == (2, 12, 3, 16, 16)
    assert torch.allclose(space.decode(z), video, atol=1e-6)


def test_vae_first_latent_frame_depends_on_first_frame_only(micro):
    video = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        full = micro.latent_space.encode(video)
        first = micro.latent_space.encode(video[:, :, :1])
    assert full.shape == (1, 16, 3, 4, 4)
    assert torch.allclose(full[:, :, :1], first, atol=1e-5)
    with pytest.raises(ActionImagesError, match="1 \\+ 4k"):
        micro.latent_space.encode(video[:, :, :8])


# ------------------------------------------------------------------------ save / load
def test_save_and_load_model_roundtrip(tmp_path, micro, batch):
    with torch.no_grad():
        micro.latent_space.set_stats(torch.linspace(-0.1, 0.1, 16), torch.linspace(0.5, 1.5, 16))
    micro.save_pretrained(str(tmp_path / "m"))
    loaded = load_model(tmp_path / "m").eval()
    assert loaded.spec == micro.spec
    a = generate(micro, batch, "joint", num_steps=2, seed=3, decode_action_poses=False)
    b = generate(loaded, batch, "joint", num_steps=2, seed=3, decode_action_poses=False)
    assert torch.allclose(a.latents, b.latents, atol=1e-6)
    with pytest.raises(ActionImagesError, match="no config.json"):
        load_model(tmp_path / "missing")


def test_pretrained_wan_folder_loads_with_lora(tmp_path):
    """A tiny random checkpoint in the diffusers Wan 2.2 folder layout loads, generates and trains."""
    from actionimages.model import load_pretrained_wan

    root = tiny_wan_folder(tmp_path / "wan")
    base = get_config("wan2.2-ti2v-5b", num_frames=9, height=64, width=64, gradient_checkpointing=True)
    model = load_pretrained_wan(root, base, lora_rank=4)
    assert model.spec.transformer.text_dim == 24 and model.spec.latent.z_dim == 16
    assert torch.allclose(model.latent_space.mean, torch.full((16,), 0.1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora" in n for n in trainable)
    assert not any(n.startswith("transformer.") and "lora" not in n for n in trainable)
    batch = synthetic_batch(model.spec, 1, seed=0, instruction="close the drawer")
    g = generate(model, batch, "joint", num_steps=2, guidance=3.0, seed=0, decode_action_poses=False)
    assert g.rgb.shape == batch["rgb"].shape
    model.train()
    loss = training_loss(model, prepare_batch(model, batch), [0])
    loss.backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora" in n
    )
    np.testing.assert_equal(model.spec.pretrained, str(root))


def test_tiny_action_images_decode_with_the_configs_blob_width():
    from actionimages.model.sampling import decode_actions

    cfg = get_config("tiny")
    batch = synthetic_batch(cfg, 1, seed=4)  # action images drawn at cfg.action_sigma_frac
    acts, valid = decode_actions(batch, batch["action_images"], cfg.action_sigma_frac)
    assert valid.all()
    assert float((acts[..., :3] - batch["actions"][..., :3]).norm(dim=-1).max()) < 1e-3
    broken = batch["action_images"].clone()
    broken[0, :, :, 2] = float("nan")  # a diverged generation: the codec cannot read it at all
    with pytest.raises(ActionImagesError, match="cannot decode action video 0 .*NaN"):
        decode_actions(batch, broken, cfg.action_sigma_frac)
    # One of two views 3 px off (as generated blobs slip): invalid at the codec's 1 px
    # tolerance, decoded (to within the slip's depth error) at the policy's decode tolerance.
    shifted = batch["action_images"].clone()
    shifted[0, 1] = torch.roll(shifted[0, 1], shifts=3, dims=-2)  # across the epipolar lines here
    _, strict = decode_actions(batch, shifted, cfg.action_sigma_frac)
    loose_acts, loose = decode_actions(batch, shifted, cfg.action_sigma_frac, reproj_threshold_px=4.0)
    assert not strict.any() and loose.all()
    assert float((loose_acts[..., :3] - batch["actions"][..., :3]).norm(dim=-1).max()) < 0.1


def test_set_vae_rejects_a_vae_with_other_temporal_compression():
    from actionimages.model import set_vae
    from actionimages.model.latents import build_wan_vae

    model = build_model("tiny")
    lat = dataclasses.replace(model.spec.latent, temporal_downsample=(False, True), temporal=2)
    with pytest.raises(ActionImagesError, match="temporal"):
        set_vae(model, build_wan_vae(lat))


# ------------------------------------------------------------------ observation tokens
def test_observation_tokens_reach_the_prediction_and_are_required():
    """With obs_patch the current frames enter cross-attention in pixel space: moving one small
    object in frame 0 must change the prediction even where the latents are identical."""
    torch.manual_seed(0)
    cfg = get_config("micro").replace(obs_patch=8)
    model = build_model(cfg).eval()
    batch = synthetic_batch(cfg, 1, seed=5)
    prep = prepare_batch(model, batch)
    assert prep.observation is not None and prep.observation.dtype == torch.uint8
    assert tuple(prep.observation.shape) == (1, cfg.num_views, 3, cfg.height, cfg.width)
    t = torch.full((1, prep.x0.shape[2]), 500.0)
    text = model.encode_text(batch["instruction"])
    obs = prep.observation_frames()
    moved = obs.clone()
    moved[0, 0, :, 10:13, 10:13] = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1)  # a 3-px red dot
    with torch.no_grad():
        a = model(prep.x0, t, text, prep.camera, observation=obs)
        b = model(prep.x0, t, text, prep.camera, observation=moved)
    assert not torch.allclose(a, b)
    with pytest.raises(ActionImagesError, match="observation"):
        model(prep.x0, t, text, prep.camera)
    # the stem is trained by the flow loss
    loss = training_loss(model, prep, [0])
    loss.backward()
    grads = [p.grad for p in model.observation_encoder.parameters()]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)


def test_aligned_observation_reaches_only_its_own_cell():
    """With obs_align a small object changes the per-cell grid of its view at its cell alone (what
    lies under a token reaches that token), and the prediction through the camera path."""
    torch.manual_seed(0)
    cfg = get_config("micro").replace(obs_patch=8, obs_align=True)
    model = build_model(cfg).eval()
    batch = synthetic_batch(cfg, 1, seed=5)
    prep = prepare_batch(model, batch)
    obs = prep.observation_frames()
    moved = obs.clone()
    moved[0, 0, :, 10:13, 10:13] = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1)  # pixels of cell (0, 0)
    with torch.no_grad():
        _, a, _ = model.encode_observation(obs, prep.camera)
        _, b, _ = model.encode_observation(moved, prep.camera)
    hp, wp = cfg.token_hw
    assert tuple(a.shape) == (1, cfg.num_views, 1, hp, wp, cfg.camera_dim)
    changed = (a - b).abs().amax(-1)[0, :, 0]  # (V, hp, wp)
    assert changed[0, 0, 0] > 1e-4 and changed[0].flatten()[1:].max() == 0 and changed[1].max() == 0
    for proj in model.camera_proj:  # zero-initialised: give it weights, as training does
        torch.nn.init.normal_(proj.weight, std=0.02)
    t = torch.full((1, prep.x0.shape[2]), 500.0)
    text = model.encode_text(batch["instruction"])
    with torch.no_grad():
        y0 = model(prep.x0, t, text, prep.camera, observation=obs)
        y1 = model(prep.x0, t, text, prep.camera, observation=moved)
    assert not torch.allclose(y0, y1)
    with pytest.raises(ActionImagesError, match="obs_align"):
        get_config("micro").replace(obs_align=True)  # needs obs_patch
    assert get_config("tiny").obs_align


def test_obs_patch_must_divide_the_frame():
    with pytest.raises(ActionImagesError, match="obs_patch"):
        get_config("micro").replace(obs_patch=7)
    assert get_config("tiny").obs_patch == 8  # tiny reads the current frames in pixel space


def test_set_vae_takes_the_autoencoder_of_a_world_model_checkpoint(tmp_path):
    from actionimages.model import set_vae

    torch.manual_seed(0)
    donor = build_model("micro")
    donor.latent_space.set_stats(torch.arange(16.0), torch.full((16,), 2.0))
    donor.save_pretrained(tmp_path / "donor")
    model = build_model("micro")
    set_vae(model, tmp_path / "donor")
    for (n, a), (_, b) in zip(
        donor.latent_space.state_dict().items(), model.latent_space.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), n


def test_config_registry_walk():
    """Every registered model config names itself, survives a JSON round trip, and has a layout
    the transformer can patch (its own __post_init__ checks ran when it was registered)."""
    import json

    from actionimages.model.config import ModelConfig

    for name, cfg in CONFIGS.items():
        assert cfg.name == name and get_config(name) is cfg
        assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        h, w = cfg.token_hw
        assert h * cfg.token_stride == cfg.height and w * cfg.token_stride == cfg.width
        assert cfg.num_tokens == cfg.num_segments * cfg.latent_frames * h * w


def test_memory_plan_counts_exactly_and_predicts_saved_activations(capsys):
    """plan-memory: parameters counted on the meta device equal a real build's; the activations it
    predicts for a training step are within 25% of what autograd saves (fp32 on the CPU)."""
    import json
    import sys
    from pathlib import Path

    from actionimages.cli import main
    from actionimages.model.memory import GIB, activation_elements, count_parameters, plan_memory

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from memory import saved_activation_bytes

    cfg = get_config("tiny")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    assert sum(count_parameters(cfg).values()) == sum(p.numel() for p in model.parameters())
    prep = prepare_batch(model, synthetic_batch(cfg, 2, seed=1))
    measured = saved_activation_bytes(model, prep, 2)
    predicted = activation_elements(cfg, cfg.num_tokens, False) * 2 * 4
    assert 0.75 < predicted / measured < 1.25
    plan = plan_memory(cfg, batch_size=2, activations_dtype="fp32")
    assert abs(plan.activations_gib * GIB - predicted) < 1
    assert (
        main(
            ["plan-memory", "--config", "wan2.2-ti2v-5b", "--lora-rank", "64", "--memory-gib", "16", "--json"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["params_transformer"] == 4_999_787_712 and out["fits"] is False
    assert {"train_total_gib", "inference_total_gib"} <= set(out)
    assert out["device"] == "cuda" and out["runtime_gib"] == 0.4  # the CUDA context


def test_memory_plan_runtime_line_brings_the_total_near_a_measured_peak():
    """plan-memory --device cpu: tensors + framework + latent cache within 0.5-2x of the peak
    resident set a real (micro) training process reaches (issue 23); the cache grows with its size."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from actionimages.model.memory import FRAMEWORK_GIB, GIB, cache_sample_bytes, plan_memory

    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "model.py"
    argv = [sys.executable, str(bench), "speed", "--config", "micro", "--steps", "2", "--batch-size", "2"]
    run = subprocess.run(argv + ["--threads", "1", "--mixed-precision", "no"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    peak_gib = json.loads(run.stdout.strip().splitlines()[-1])["peak_rss_mb"] / 1024
    cfg = get_config("micro")
    plan = plan_memory(cfg, batch_size=2, activations_dtype="fp32", weights_dtype="fp32", device="cpu",
                       cache_samples=16)  # fmt: skip
    assert 0.5 < plan.train_total_gib / peak_gib < 2.0, (plan.train_total_gib, peak_gib)
    assert plan.runtime_gib == pytest.approx(FRAMEWORK_GIB + 16 * cache_sample_bytes(cfg) / GIB)
    bigger = plan_memory(cfg, activations_dtype="fp32", device="cpu", cache_samples=4016)
    grown = bigger.host_runtime_gib - plan.host_runtime_gib
    assert grown == pytest.approx(4000 * cache_sample_bytes(cfg) / GIB)
    tiny = get_config("tiny")  # latents 16×20×8×8 fp32, camera 2×5×2×2×96 fp32, frames 2×3×64² uint8
    assert cache_sample_bytes(tiny) == 81920 + 15360 + 24576 + 20
    with pytest.raises(ActionImagesError, match="device"):
        plan_memory(cfg, device="tpu")
    with pytest.raises(ActionImagesError, match="cache_samples"):
        plan_memory(cfg, device="cpu", cache_samples=-1)


def test_embed_text_caches_umt5_once_and_replaces_it(tmp_path, capsys):
    """embed-text: the cache holds exactly umT5's embeddings; a model with the cache encodes as with
    umT5 itself; a re-run adds nothing; unknown instructions and another encoder's cache are refused."""
    import json

    from actionimages.cli import main
    from actionimages.model import load_pretrained_wan
    from actionimages.model.text_cache import CachedTextEncoder, embed_texts, encoder_hash

    root = tiny_wan_folder(tmp_path / "wan")
    cache = tmp_path / "cache"
    argv = ["embed-text", "--pretrained", str(root), "--text", "close the drawer", "--out", str(cache)]
    assert main(argv + ["--max-tokens", "16"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 2  # the instruction and ""
    assert main(argv + ["--max-tokens", "16"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 0
    base = get_config("wan2.2-ti2v-5b", num_frames=9, height=64, width=64).replace(
        text=dataclasses.replace(get_config("wan2.2-ti2v-5b").text, max_tokens=16)
    )
    with_umt5 = load_pretrained_wan(root, base)
    cached = load_pretrained_wan(root, base, load_text_encoder=False)
    cached.attach_text_encoder(CachedTextEncoder(cache, encoder_hash(root)))
    texts = ["close the drawer", ""]
    torch.testing.assert_close(cached.encode_text(texts), with_umt5.encode_text(texts))
    with pytest.raises(ActionImagesError, match="not in the text cache"):
        cached.encode_text(["open the drawer"])
    with pytest.raises(ActionImagesError, match="another text encoder"):
        embed_texts(with_umt5._external_text[0], ["x"], cache, "0" * 64)


def test_model_benchmark_measures_train_s_config_overrides():
    """benchmarks/model.py takes train's --model.KEY V flags, builds the variant they name, and
    turns a bad value into a one-line error."""
    import argparse
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    import model as model_bench

    def ns(**overrides):
        return argparse.Namespace(config="tiny", **{f"model.{k}": v for k, v in overrides.items()})

    assert model_bench.model_config(ns()).num_tokens == 80
    fine = model_bench.model_config(ns(**{"transformer.patch_size": [1, 2, 2], "obs_align": False}))
    assert fine.num_tokens == 320 and fine.obs_align is False
    assert fine.transformer.patch_size == (1, 2, 2)  # a tuple, as the config's own
    for argv, message in ((["--model.nope", "1"], "unrecognized arguments: --model.nope"),
                          (["--model.obs_patch", "3"], "error: obs_patch must be even")):  # fmt: skip
        run = subprocess.run(
            [sys.executable, str(bench / "model.py"), "sample", "--repeats", "0", *argv],
            capture_output=True,
            text=True,
        )
        assert run.returncode != 0 and message in run.stderr and "Traceback" not in run.stderr


def test_output_refiner_starts_as_the_identity_and_puts_the_object_where_it_is():
    """out_refine: zero-initialised, so a model keeps its predictions until trained; once its last
    convolution has weights, a small object changes the prediction near its own latent pixels
    first (the pixel-aligned path), on both segments of its view and not on the other view."""
    torch.manual_seed(0)
    base = get_config("micro").replace(obs_patch=8, obs_align=True)
    cfg = base.replace(out_refine=16)
    plain, refined = build_model(base).eval(), build_model(cfg).eval()
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("output_refiner.") for k in missing)
    batch = synthetic_batch(cfg, 1, seed=5)
    prep = prepare_batch(refined, batch)
    obs = prep.observation_frames()
    t = torch.full((1, prep.x0.shape[2]), 500.0)
    text = refined.encode_text(batch["instruction"])
    with torch.no_grad():
        assert torch.equal(refined(prep.x0, t, text, prep.camera, observation=obs),
                           plain(prep.x0, t, text, prep.camera, observation=obs))  # fmt: skip
    # The path alone (the transformer's own output also moves, through cross-attention):
    ref = refined.output_refiner
    torch.nn.init.normal_(ref.body[-1].weight, std=0.05)
    with torch.no_grad():
        _, _, feat = refined.encode_observation(obs, prep.camera)
        moved = obs.clone()
        moved[0, 0, :, 2:5, 2:5] = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1)  # view 1, top-left
        _, _, feat_moved = refined.encode_observation(moved, prep.camera)
        pred = torch.randn_like(prep.x0)
        d = (ref(pred, prep.x0, feat_moved) - ref(pred, prep.x0, feat)).abs().amax(1)  # (1, S·f, h, w)
    f = cfg.latent_frames
    view1, view2 = d[0, : 2 * f], d[0, 2 * f :]
    h, w = view1.shape[-2:]
    assert view2.max() == 0  # the other view's segments do not see view 1's object
    assert view1[:f].max() > 0 and view1[f:].max() > 0  # both of its segments (RGB and action) do
    assert view1[:, : h // 2, : w // 2].mean() > 3 * view1[:, h // 2 :, w // 2 :].mean()
    loss = training_loss(refined, prep, [0])
    loss.backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in refined.output_refiner.parameters())
    with pytest.raises(ActionImagesError, match="out_refine"):
        get_config("micro").replace(out_refine=8)  # needs obs_patch


def test_instruction_film_in_the_observation_stem_starts_neutral_and_then_picks_by_instruction():
    """obs_film: zero-initialised (a model keeps its outputs); once trained, the instruction changes
    what the stem sees, i.e. early fusion (issue 22's binding lever)."""
    torch.manual_seed(0)
    base = get_config("micro").replace(obs_patch=8, obs_align=True)
    plain, film = build_model(base).eval(), build_model(base.replace(obs_film=True)).eval()
    missing, unexpected = film.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and set(missing) == {f"observation_encoder.film.{k}" for k in ("weight", "bias")}
    batch = synthetic_batch(base, 1, seed=5)
    prep = prepare_batch(film, batch)
    obs = prep.observation_frames()
    red, blue = film.encode_text(["reach the red target"]), film.encode_text(["reach the blue target"])
    with torch.no_grad():
        t = torch.full((1, prep.x0.shape[2]), 500.0)
        assert torch.equal(film(prep.x0, t, red, prep.camera, observation=obs),
                           plain(prep.x0, t, red, prep.camera, observation=obs))  # fmt: skip
        torch.nn.init.normal_(film.observation_encoder.film.weight, std=0.5)
        a = film.encode_observation(obs, prep.camera, red)[2]
        b = film.encode_observation(obs, prep.camera, blue)[2]
    assert not torch.allclose(a, b)
    loss = training_loss(film, prep, [0])
    loss.backward()
    assert film.observation_encoder.film.weight.grad.abs().sum() > 0
    with pytest.raises(ActionImagesError, match="obs_film"):
        get_config("micro").replace(obs_film=True)
