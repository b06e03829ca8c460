"""``actionimages import-release``: the authors' checkpoint layout into our model folder.

The source state dicts here are written by hand from the release's layout (DiffSynth-Studio
``WanModel`` keys, as the release's ``training/models/wan_video_dit.py`` names them, plus the
``cam_encoder`` and ``projector`` that its ``train.py`` adds to every block), at the dims of the
tiny diffusers Wan folder. The forward reference is diffusers' own converter.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from actionimages.cli import main
from actionimages.errors import ActionImagesError
from actionimages.model import generate, get_config, load_model
from actionimages.model.release import import_release
from actionimages.model.synthetic import synthetic_batch, tiny_wan_folder

# The tiny Wan folder's transformer: dim 32 (2 heads × 16), FFN 64, 2 layers, 16 latent channels,
# text_dim 24, freq_dim 16, patch (1, 2, 2).
DIM, FFN, LAYERS, CH, TEXT, FREQ = 32, 64, 2, 16, 24, 16
CAM_IN = 32 * 32 * 12  # the release's cam_encoder Linear input: AdaptiveAvgPool3d((48, 16, 16)) flattened


def release_state_dict(seed: int = 0, identity_projector: bool = False, zero_camera: bool = False) -> dict:
    """A random state dict in the release's layout (DiffSynth WanModel + cam_encoder + projector)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.2

    sd = {
        "patch_embedding.weight": r(DIM, CH, 1, 2, 2),
        "patch_embedding.bias": r(DIM),
        "text_embedding.0.weight": r(DIM, TEXT),
        "text_embedding.0.bias": r(DIM),
        "text_embedding.2.weight": r(DIM, DIM),
        "text_embedding.2.bias": r(DIM),
        "time_embedding.0.weight": r(DIM, FREQ),
        "time_embedding.0.bias": r(DIM),
        "time_embedding.2.weight": r(DIM, DIM),
        "time_embedding.2.bias": r(DIM),
        "time_projection.1.weight": r(6 * DIM, DIM),
        "time_projection.1.bias": r(6 * DIM),
        "head.head.weight": r(CH * 4, DIM),
        "head.head.bias": r(CH * 4),
        "head.modulation": r(1, 2, DIM),
    }
    for n in range(LAYERS):
        b = f"blocks.{n}."
        for attn in ("self_attn", "cross_attn"):
            for lin in "qkvo":
                sd[f"{b}{attn}.{lin}.weight"] = r(DIM, DIM)
                sd[f"{b}{attn}.{lin}.bias"] = r(DIM)
            sd[f"{b}{attn}.norm_q.weight"] = 1 + r(DIM)
            sd[f"{b}{attn}.norm_k.weight"] = 1 + r(DIM)
        sd[b + "norm3.weight"], sd[b + "norm3.bias"] = 1 + r(DIM), r(DIM)
        sd[b + "ffn.0.weight"], sd[b + "ffn.0.bias"] = r(FFN, DIM), r(FFN)
        sd[b + "ffn.2.weight"], sd[b + "ffn.2.bias"] = r(DIM, FFN), r(DIM)
        sd[b + "modulation"] = r(1, 6, DIM)
        cam_w, cam_b = r(DIM, CAM_IN), r(DIM)
        sd[b + "cam_encoder.2.weight"] = cam_w * 0 if zero_camera else cam_w
        sd[b + "cam_encoder.2.bias"] = cam_b * 0 if zero_camera else cam_b
        p_w, p_b = torch.eye(DIM) + r(DIM, DIM), r(DIM)
        sd[b + "projector.weight"] = torch.eye(DIM) if identity_projector else p_w
        sd[b + "projector.bias"] = torch.zeros(DIM) if identity_projector else p_b
    return sd


def write_shards(sd: dict, root, n: int = 2):
    """Safetensors shards + index, as Hugging Face writes a sharded checkpoint."""
    root.mkdir(parents=True)
    keys = sorted(sd)
    weight_map = {}
    for i in range(n):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{n:05d}.safetensors"
        part = {k: sd[k].contiguous() for k in keys[i::n]}
        save_file(part, str(root / name))
        weight_map.update({k: name for k in part})
    index = {"metadata": {"total_size": sum(v.numel() * 4 for v in sd.values())}, "weight_map": weight_map}
    (root / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    return root


def small_config():
    return get_config("wan2.2-ti2v-5b", num_frames=9, height=64, width=64)


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    return tiny_wan_folder(tmp_path_factory.mktemp("wan"))


def test_import_round_trip_and_forward_match_diffusers(tmp_path, wan):
    """Shards + index import; every mapped tensor equals its source, the projector is folded, our camera
    path is zero, and the backbone's forward equals diffusers' converter's plus the projector."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    sd = release_state_dict(seed=1)
    src = write_shards(sd, tmp_path / "release")
    report = import_release(src, wan, tmp_path / "out", config=small_config())

    n_camera = 2 * LAYERS
    assert report["mapped"] == len(sd) - 2 * n_camera  # all but cam_encoder and projector
    assert [u["key"] for u in report["unmapped"]] == sorted(k for k in sd if "cam_encoder" in k)
    assert len(report["folded"]) == LAYERS and report["shape_mismatches"] == []
    assert any("camera encoder is trained" in w for w in report["warnings"])
    assert json.loads((tmp_path / "out" / "import_report.json").read_text()) == report

    model = load_model(tmp_path / "out").eval()  # checks provenance SHA-256 and strict keys
    ours = model.state_dict()
    from actionimages.model.release import release_key_map

    for src_key, our_key in release_key_map(LAYERS).items():
        if ".self_attn.o." in src_key:
            continue
        assert torch.equal(ours[our_key], sd[src_key]), src_key
    for n in range(LAYERS):
        b, o = f"blocks.{n}.", f"transformer.blocks.{n}.attn1.to_out.0."
        p_w, p_b = sd[b + "projector.weight"].double(), sd[b + "projector.bias"].double()
        want_w = (p_w @ sd[b + "self_attn.o.weight"].double()).float()
        want_b = (p_w @ sd[b + "self_attn.o.bias"].double() + p_b).float()
        assert torch.equal(ours[o + "weight"], want_w) and torch.equal(ours[o + "bias"], want_b)
    assert all(not p.any() for p in model.camera_proj.parameters()) and not model.stream_embed.any()

    # Reference: diffusers' converter on the backbone keys, the projector applied by a hook.
    ref = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(str(wan / "transformer")))
    backbone = {k: v.clone() for k, v in sd.items() if "cam_encoder" not in k and "projector" not in k}
    ref.load_state_dict(convert_wan_transformer_to_diffusers(backbone), strict=True)
    ref.eval()
    for n, block in enumerate(ref.blocks):
        w, bias = sd[f"blocks.{n}.projector.weight"], sd[f"blocks.{n}.projector.bias"]
        block.attn1.register_forward_hook(lambda m, i, out, w=w, bias=bias: F.linear(out, w, bias))

    cfg = model.spec
    g = torch.Generator().manual_seed(0)
    lt, (h, w_) = cfg.num_segments * cfg.latent_frames, cfg.latent_hw
    latents = torch.randn(1, CH, lt, h, w_, generator=g)
    text = torch.randn(1, 7, TEXT, generator=g)
    with torch.no_grad():
        want = ref(latents, torch.tensor([400.0]), text, return_dict=False)[0]
        got_tr = model.transformer(latents, torch.tensor([400.0]), text, return_dict=False)[0]
        camera = torch.randn(1, cfg.num_views, cfg.latent_frames, *cfg.token_hw, 6 * 16, generator=g)
        got = model(latents, torch.full((1, lt), 400.0), text, camera)
    torch.testing.assert_close(got_tr, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)  # our camera term and stream add nothing

    batch = synthetic_batch(cfg, 1, seed=0, instruction="close the drawer")
    gen = generate(model, batch, "joint", num_steps=2, guidance=3.0, seed=0, decode_action_poses=False)
    assert gen.action_images.shape == batch["action_images"].shape and torch.isfinite(gen.action_images).all()


def test_ckpt_file_with_prefix_and_unknown_key_via_cli(tmp_path, wan, capsys):
    """A single torch .ckpt (the published format) under a ``dit.`` prefix: an identity projector and
    zero camera import exactly and without warnings; an unknown key is listed, warned, refused by --strict."""
    sd = release_state_dict(seed=2, identity_projector=True, zero_camera=True)
    torch.save({f"dit.{k}": v for k, v in sd.items()}, tmp_path / "checkpoint.ckpt")
    out = tmp_path / "out"
    argv = ["import-release", str(tmp_path / "checkpoint.ckpt"), "--wan", str(wan), "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["source"]["format"] == "torch" and report["source"]["prefix_stripped"] == "dit."
    assert report["warnings"] == [] and captured.err == ""
    model = load_model(out)
    o = model.state_dict()["transformer.blocks.1.attn1.to_out.0.weight"]
    assert torch.equal(o, sd["blocks.1.self_attn.o.weight"])  # identity projector: bit for bit

    torch.save({**sd, "blocks.0.extra_gate": torch.ones(3)}, tmp_path / "extra.ckpt")
    argv[1] = str(tmp_path / "extra.ckpt")
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    unknown = {"key": "blocks.0.extra_gate", "shape": [3], "reason": "unknown key: not in the release layout"}
    assert unknown in report["unmapped"]
    assert "blocks.0.extra_gate" in captured.err
    assert main(argv + ["--strict"]) == 2
    assert "refused (strict)" in capsys.readouterr().err


def test_bad_release_names_the_key(tmp_path, wan, capsys):
    """A shape mismatch and a missing backbone tensor name the key; unreadable input is one line, exit 2."""
    sd = release_state_dict()
    sd["blocks.1.ffn.0.weight"] = torch.zeros(FFN + 1, DIM)
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ActionImagesError, match=r"blocks\.1\.ffn\.0\.weight \(65, 32\) -> transformer"):
        import_release(tmp_path / "bad.safetensors", wan, tmp_path / "out", config=small_config())

    sd = release_state_dict()
    del sd["blocks.0.cross_attn.norm_k.weight"]
    save_file(sd, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ActionImagesError, match=r"lacks 1 backbone tensors: blocks\.0\.cross_attn\.norm_k"):
        import_release(tmp_path / "missing.safetensors", wan, tmp_path / "out", config=small_config())

    sd = release_state_dict()
    del sd["blocks.1.projector.bias"]
    save_file(sd, str(tmp_path / "half.safetensors"))
    with pytest.raises(ActionImagesError, match=r"incomplete in blocks \[1\]"):
        import_release(tmp_path / "half.safetensors", wan, tmp_path / "out", config=small_config())
    # a config the release cannot fill: our pixel-space observation encoder
    save_file(release_state_dict(), str(tmp_path / "ok.safetensors"))
    with pytest.raises(ActionImagesError, match="observation encoder"):
        cfg = dataclasses.replace(small_config(), obs_patch=8)
        import_release(tmp_path / "ok.safetensors", wan, tmp_path / "out", config=cfg)
    assert not (tmp_path / "out").exists()  # nothing written for a refused import

    (tmp_path / "trunc.safetensors").write_bytes((tmp_path / "half.safetensors").read_bytes()[:1000])
    shards = write_shards(release_state_dict(), tmp_path / "shards")
    next(shards.glob("*00002*.safetensors")).unlink()
    for src, msg in [
        (tmp_path / "nope", "does not exist"),
        (tmp_path / "trunc.safetensors", "cannot read"),
        (shards, "names shards that are missing"),
    ]:
        assert main(["import-release", str(src), "--wan", str(wan), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
