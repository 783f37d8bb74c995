"""Tests for sbir_lib.models.dssa: Sketch-a-Net shapes and sizes, attention, CFF, variants, init loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sbir_lib.losses import losses
from sbir_lib.models import dssa as models
from sbir_lib.models.dssa import (DSSANet, SketchANet, SpatialAttention, VARIANTS,
                             VariantConfig, count_parameters, get_variant)
from sbir_lib.models.sketchanet_init import TF_INPUT_SCALE, load_sketchanet_init

torch.set_num_threads(2)

# Expected parameter counts, by hand: weights + biases.
CONV1 = 64 * 1 * 15 * 15 + 64
CONV2 = 128 * 64 * 5 * 5 + 128
CONV3 = 256 * 128 * 3 * 3 + 256
CONV4 = 256 * 256 * 3 * 3 + 256
CONV5 = 256 * 256 * 3 * 3 + 256
FC6 = 256 * 7 * 7 * 512 + 512
FC7 = 512 * 256 + 256
BACKBONE = CONV1 + CONV2 + CONV3 + CONV4 + CONV5 + FC6 + FC7
ATTENTION = (256 * 256 + 256) + (256 * 1 + 1)


@pytest.fixture(scope="module")
def x2():
    torch.manual_seed(0)
    return torch.randn(2, 1, 225, 225)


# ----------------------------------------------------------------------------- Sketch-a-Net

def test_layer_shapes_225():
    shapes = SketchANet().layer_shapes(225)
    assert shapes["conv1"] == (64, 71, 71)
    assert shapes["pool1"] == (64, 35, 35)
    assert shapes["conv2"] == (128, 31, 31)
    assert shapes["pool2"] == (128, 15, 15)
    assert shapes["conv3"] == shapes["conv4"] == shapes["conv5"] == (256, 15, 15)
    assert shapes["pool5"] == (256, 7, 7)
    assert shapes["fc6"] == (512,)
    assert shapes["fc7"] == (256,)


def test_features_and_forward_shapes(x2):
    net = SketchANet().eval()
    f = net.features(x2)
    assert f.shape == (2, 256, 7, 7)
    assert net(x2).shape == (2, 256)


def test_parameter_counts():
    net = SketchANet()
    for name, expected in zip(models.LAYERS, (CONV1, CONV2, CONV3, CONV4, CONV5, FC6, FC7)):
        assert count_parameters(getattr(net, name)) == expected, name
    assert count_parameters(net) == BACKBONE == 8_249_088
    assert count_parameters(SpatialAttention()) == ATTENTION == 66_049
    assert count_parameters(DSSANet("base")) == BACKBONE
    assert count_parameters(DSSANet("full")) == BACKBONE + ATTENTION
    assert count_parameters(DSSANet("full").make_energy()) == 512 * 512
    assert count_parameters(DSSANet("base+holef").make_energy()) == 256 * 256


def test_state_dict_names():
    keys = set(SketchANet().state_dict())
    assert keys == {f"{n}.{p}" for n in models.LAYERS for p in ("weight", "bias")}


def test_dropout_configurable():
    torch.manual_seed(1)
    f = torch.relu(torch.randn(2, 256, 7, 7))  # dropout sits in the head (after fc6)
    net = SketchANet(dropout=0.0).train()
    assert torch.equal(net.head(f), net.head(f))  # no dropout -> deterministic in train mode
    net = SketchANet(dropout=0.5).train()
    assert not torch.equal(net.head(f), net.head(f))
    net.eval()
    assert torch.equal(net.head(f), net.head(f))


# ----------------------------------------------------------------------------- attention

def test_attention_softmax_sums_to_one():
    torch.manual_seed(0)
    att = SpatialAttention(normalize="softmax")
    f = torch.relu(torch.randn(3, 256, 7, 7))
    f_att, alpha = att(f)
    assert alpha.shape == (3, 7, 7)
    assert torch.allclose(alpha.flatten(1).sum(1), torch.ones(3), atol=1e-6)
    assert (alpha > 0).all()
    assert f_att.shape == f.shape


def test_attention_sigmoid_in_unit_interval():
    att = SpatialAttention(normalize="sigmoid")
    _, alpha = att(torch.randn(2, 256, 7, 7))
    assert ((alpha > 0) & (alpha < 1)).all()


def test_attention_scores_by_hand():
    torch.manual_seed(0)
    att = SpatialAttention(hidden=8)
    f = torch.randn(2, 256, 7, 7)
    # Eq. 2 as an explicit per-position MLP
    fp = f.permute(0, 2, 3, 1)  # [B, H, W, C]
    h = torch.relu(fp @ att.conv1.weight[:, :, 0, 0].t() + att.conv1.bias)
    s = (h @ att.conv2.weight[:, :, 0, 0].t() + att.conv2.bias)[..., 0]
    assert torch.allclose(att.scores(f), s, atol=1e-5)
    alpha = torch.softmax(s.reshape(2, -1), dim=1).reshape(2, 7, 7)
    assert torch.allclose(att(f)[1], alpha, atol=1e-6)


def test_shortcut_on_off():
    torch.manual_seed(0)
    with_sc = SpatialAttention(shortcut=True)
    without = SpatialAttention(shortcut=False)
    without.load_state_dict(with_sc.state_dict())
    f = torch.randn(2, 256, 7, 7)
    fa, alpha = with_sc(f)
    fb, alpha2 = without(f)
    assert torch.allclose(alpha, alpha2)
    a = alpha.unsqueeze(1)
    assert torch.allclose(fa, f + a * f)
    assert torch.allclose(fb, a * f)
    assert torch.allclose(fa - fb, f)


def test_bad_attention_norm():
    with pytest.raises(ValueError, match="softmax, sigmoid"):
        SpatialAttention(normalize="relu")


# ----------------------------------------------------------------------------- DSSA + CFF

def test_cff_embedding_512_unit_halves(x2):
    net = DSSANet("full").eval()
    out = net.intermediates(x2)
    emb = out["embedding"]
    assert net.embed_dim == 512 and emb.shape == (2, 512)
    assert torch.allclose(emb[:, :256].norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(emb[:, 256:].norm(dim=1), torch.ones(2), atol=1e-5)
    # fine half = L2norm(sum_ij (f_ij + alpha_ij f_ij)) (the authors' reduce_sum of the attended map
    # with the shortcut); coarse half = L2norm(fc7 of the attended map)
    fine = (out["conv5"] + out["alpha"].unsqueeze(1) * out["conv5"]).sum(dim=(2, 3))
    assert torch.allclose(emb[:, 256:], F.normalize(fine, dim=1), atol=1e-5)
    fc7 = net.backbone.head(out["conv5"] + out["alpha"].unsqueeze(1) * out["conv5"])
    assert torch.allclose(emb[:, :256], F.normalize(fc7, dim=1), atol=1e-5)


def test_fine_branch_without_shortcut_is_sum_of_alpha_f(x2):
    net = DSSANet("full-noshortcut").eval()
    out = net.intermediates(x2)
    fine = (out["alpha"].unsqueeze(1) * out["conv5"]).sum(dim=(2, 3))
    assert torch.allclose(out["fine"], fine, atol=1e-5)
    assert torch.allclose(out["embedding"][:, 256:], F.normalize(fine, dim=1), atol=1e-5)
    # with and without the shortcut the fine vectors differ (Table 4 compares two computations)
    short = DSSANet("full").eval()
    short.load_state_dict(net.state_dict())
    assert not torch.allclose(short.intermediates(x2)["fine"], out["fine"])


def test_cff_without_attention_sums_conv5(x2):
    net = DSSANet("base+cff").eval()
    out = net.intermediates(x2)
    assert out["alpha"] is None
    assert torch.allclose(out["fine"], out["conv5"].sum(dim=(2, 3)), rtol=1e-5)
    assert torch.allclose(out["fc7"], net.backbone(x2), atol=1e-5)


def test_no_cff_embedding_is_l2_normalised_fc7(x2):
    net = DSSANet("base").eval()
    emb, alpha = net(x2, return_attention=True)
    assert alpha is None and emb.shape == (2, 256) and net.embed_dim == 256
    assert torch.allclose(emb, F.normalize(net.backbone.head(net.backbone.features(x2)), dim=1), atol=1e-5)
    with pytest.raises(ValueError, match="l2_normalize_fc7"):
        get_variant("base", l2_normalize_fc7=False)  # the literal Triplet SN normalises too


def test_no_dropout_in_paper_variants(x2):
    for name in VARIANTS:
        net = DSSANet(name).train()
        assert net.config.dropout == 0.0
        assert not any(isinstance(m, torch.nn.Dropout) for m in net.modules())
    net = DSSANet(get_variant("base", dropout=0.5)).train()  # the recorded non-paper option
    assert any(isinstance(m, torch.nn.Dropout) for m in net.modules())


def test_attention_init_is_the_authors_truncated_normal():
    torch.manual_seed(0)
    att = DSSANet("full").attention
    w = att.conv1.weight.detach()
    assert w.abs().max() <= 0.2 + 1e-6  # cut at 2 std
    assert 0.08 < float(w.std()) < 0.1  # a normal(0, 0.1) truncated at 2 std has std 0.088
    assert torch.count_nonzero(att.conv1.bias) == 0 and torch.count_nonzero(att.conv2.bias) == 0
    torch_init = DSSANet(get_variant("full", attention_init="torch")).attention.conv1.weight
    assert float(torch_init.detach().std()) < 0.05  # PyTorch's default: U(+-1/sqrt(256))


def test_embedding_bn_option(x2):
    net = DSSANet(get_variant("full", embedding_bn=True)).train()
    x = torch.randn(6, 1, 225, 225)
    emb = net(x)
    assert emb.shape == (6, 512)
    assert torch.allclose(emb[:, :256].norm(dim=1), torch.ones(6), atol=1e-5)
    assert net.fc7_bn is not None and net.fine_bn is not None and net.fc7_bn.affine is False


def test_return_attention(x2):
    emb, alpha = DSSANet("base+att").eval()(x2, return_attention=True)
    assert emb.shape == (2, 256) and alpha.shape == (2, 7, 7)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_forward_backward(name):
    torch.manual_seed(0)
    # two images keep this cheap on a CPU; a large margin keeps the hinge active so gradients flow
    model = DSSANet(name)
    loss_fn = losses.TripletLoss(model.make_energy(), 100.0)
    x = torch.randn(2, 1, 225, 225)
    emb = model(x)
    assert emb.shape == (2, model.embed_dim)
    loss, stats = loss_fn(emb[0:1], emb[1:2], emb[1:2].flip(1))
    loss.backward()
    assert torch.isfinite(loss) and stats["active"].item() == 1.0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    if model.attention is not None:
        assert model.attention.conv1.weight.grad.abs().sum() > 0
    for p in loss_fn.energy.parameters():
        assert p.grad is not None
    assert set(stats) >= {"loss", "hinge", "reg", "d_pos", "d_neg"}


def test_variant_embed_dims_and_losses():
    for name, cfg in VARIANTS.items():
        assert cfg.embed_dim == (512 if cfg.cff else 256), name
        assert losses.make_energy(cfg.energy, cfg.embed_dim).name == cfg.energy
    assert get_variant("full") == VariantConfig()  # defaults are the full model


def test_bad_config_values_rejected():
    with pytest.raises(ValueError, match="euclidean, weighted_euclidean, mahalanobis, holef"):
        VariantConfig(energy="cosine").validate()
    with pytest.raises(ValueError, match="softmax, sigmoid"):
        VariantConfig(attention_norm="tanh").validate()
    with pytest.raises(ValueError, match="bool"):
        VariantConfig(cff="yes").validate()
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        VariantConfig(dropout=1.5).validate()
    with pytest.raises(ValueError, match="positive integer"):
        VariantConfig(fc7_dim=0).validate()
    with pytest.raises(ValueError, match="allowed: .*attention"):
        get_variant("full", atention=True)
    with pytest.raises(ValueError, match="allowed: base, base\\+att"):
        get_variant("nope")
    with pytest.raises(ValueError, match="holef"):
        DSSANet({"energy": "l1"})


def test_config_dict_roundtrip():
    cfg = get_variant("base+att+cff-noshortcut")
    assert VariantConfig.from_dict(cfg.to_dict()) == cfg
    assert DSSANet(cfg.to_dict()).config == cfg


def test_freeze_and_param_groups():
    net = DSSANet("full")
    frozen = net.freeze("conv4")
    assert frozen == ["conv1", "conv2", "conv3", "conv4"]
    assert not net.backbone.conv4.weight.requires_grad and net.backbone.conv5.weight.requires_grad
    groups = net.param_groups(weight_decay=5e-4)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    assert groups[0]["weight_decay"] == 5e-4 and groups[1]["weight_decay"] == 0.0
    # decay: conv5/fc6/fc7/attention weights; no decay: their biases
    assert all(p.dim() > 1 for p in groups[0]["params"]) and all(p.dim() == 1 for p in groups[1]["params"])
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == CONV5 + FC6 + FC7 + ATTENTION
    assert net.freeze(None) == []
    assert all(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="conv1, conv2"):
        net.freeze("conv9")


# ----------------------------------------------------------------------------- init loading

def _tf_conv_nhwc(x_nhwc: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1) -> np.ndarray:
    """TF-style VALID conv2d (cross-correlation) on NHWC with an HWIO kernel, written out with numpy."""
    kh, kw = w.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x_nhwc, (kh, kw), axis=(1, 2))  # [N, Ho, Wo, C, kh, kw]
    win = win[:, ::stride, ::stride]
    return np.einsum("nyxcij,ijco->nyxo", win, w) + b


def _random_tf_weights(rng: np.random.Generator, suffix: str = "") -> dict:
    shapes = {"conv1": (15, 15, 1, 64), "conv2": (5, 5, 64, 128), "conv3": (3, 3, 128, 256),
              "conv4": (3, 3, 256, 256), "conv5": (3, 3, 256, 256), "fc6": (7 * 7 * 256, 512), "fc7": (512, 256)}
    return {name + suffix: [rng.standard_normal(s).astype(np.float32) * 0.01,
                            rng.standard_normal(s[-1]).astype(np.float32)]
            for name, s in shapes.items()}


@pytest.fixture(scope="module")
def tf_npy(tmp_path_factory):
    rng = np.random.default_rng(0)
    weights = _random_tf_weights(rng)
    weights["att_conv1"] = [np.zeros((1, 1, 256, 256), np.float32), np.zeros(256, np.float32)]  # not ours
    path = tmp_path_factory.mktemp("init") / "model_dssa.npy"
    np.save(path, weights, allow_pickle=True)
    return path, weights


def test_tf_npy_conversion(tf_npy):
    path, tfw = tf_npy
    net = DSSANet("full").eval()
    report = load_sketchanet_init(net, path, input_scale=1.0)  # the layout alone (scale: next test)
    assert report.format == "tf_npy"
    assert report.loaded == list(models.LAYERS)
    assert report.missing == ["attention"] and report.ignored == ["att_conv1"]
    bb = net.backbone
    rng = np.random.default_rng(1)

    # conv1 (stride 3) and conv3 (padding 1 -> pad the NHWC input by hand): TF computation == torch
    x = rng.standard_normal((2, 40, 40, 1)).astype(np.float32)
    ref = _tf_conv_nhwc(x.astype(np.float64), tfw["conv1"][0].astype(np.float64), tfw["conv1"][1], stride=3)
    got = bb.conv1(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    x3 = rng.standard_normal((1, 6, 6, 128)).astype(np.float32)
    ref3 = _tf_conv_nhwc(np.pad(x3, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(np.float64),
                         tfw["conv3"][0].astype(np.float64), tfw["conv3"][1])
    got3 = bb.conv3(torch.from_numpy(x3).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(got3, ref3, rtol=1e-4, atol=1e-4)

    # fc6: TF flattens the pooled map as HWC; torch flattens CHW. Same output from the same map.
    f = rng.standard_normal((3, 256, 7, 7)).astype(np.float32)  # torch layout
    tf_flat = f.transpose(0, 2, 3, 1).reshape(3, -1)  # manual HWC flatten
    ref6 = tf_flat.astype(np.float64) @ tfw["fc6"][0] + tfw["fc6"][1]
    got6 = bb.fc6(torch.from_numpy(f).flatten(1)).detach().numpy()
    np.testing.assert_allclose(got6, ref6, rtol=1e-4, atol=1e-4)
    # fc7: plain transpose; biases copied
    h = rng.standard_normal((3, 512)).astype(np.float32)
    np.testing.assert_allclose(bb.fc7(torch.from_numpy(h)).detach().numpy(),
                               h.astype(np.float64) @ tfw["fc7"][0] + tfw["fc7"][1], rtol=1e-4, atol=1e-4)
    for name in models.LAYERS:
        np.testing.assert_array_equal(getattr(bb, name).bias.detach().numpy(), tfw[name][1])


def test_input_scale(tf_npy, tmp_path):
    path, _ = tf_npy
    a, b = SketchANet().eval(), SketchANet().eval()
    assert load_sketchanet_init(a, path, input_scale=1.0).input_scale == 1.0
    rep = load_sketchanet_init(b, path)  # .npy: the authors' 0..255 scale, automatically
    assert rep.input_scale == TF_INPUT_SCALE == 255.0 and "input scale 255" in str(rep)
    x = torch.randn(1, 1, 30, 30)
    assert torch.allclose(b.conv1(x), a.conv1(255.0 * x), rtol=1e-4, atol=1e-3)
    # torch checkpoints (ours, trained on our input scale) are not rescaled
    p = tmp_path / "ours.pt"
    torch.save(a.state_dict(), p)
    c = SketchANet()
    assert load_sketchanet_init(c, p).input_scale == 1.0
    assert torch.equal(c.conv1.weight, a.conv1.weight)


def test_tf_npy_suffixes_dicts_and_fc_as_conv(tmp_path):
    rng = np.random.default_rng(2)
    w = _random_tf_weights(rng, suffix="_s1")
    # fc6 stored as a 7x7 conv kernel [7, 7, 256, 512] = the HWC-flattened matrix reshaped
    fc6_mat = w["fc6_s1"][0]
    w["fc6_s1"] = {"weights": fc6_mat.reshape(7, 7, 256, 512), "biases": w["fc6_s1"][1]}
    path = tmp_path / "w.npy"
    np.save(path, w, allow_pickle=True)
    net = SketchANet().eval()
    report = load_sketchanet_init(net, path, strict=True)
    assert report.loaded == list(models.LAYERS)
    f = rng.standard_normal((2, 256, 7, 7)).astype(np.float32)
    ref = f.transpose(0, 2, 3, 1).reshape(2, -1).astype(np.float64) @ fc6_mat + w["fc6_s1"]["biases"]
    np.testing.assert_allclose(net.fc6(torch.from_numpy(f).flatten(1)).detach().numpy(), ref, rtol=1e-4, atol=1e-4)


def test_tf_npy_shape_mismatch_and_missing(tmp_path):
    rng = np.random.default_rng(3)
    w = _random_tf_weights(rng)
    w["conv2"][0] = w["conv2"][0][:3]  # 3x5 kernel
    path = tmp_path / "bad.npy"
    np.save(path, w, allow_pickle=True)
    with pytest.raises(ValueError, match="conv2"):
        load_sketchanet_init(SketchANet(), path)
    w = _random_tf_weights(rng)
    del w["fc7"]
    np.save(path, w, allow_pickle=True)
    rep = load_sketchanet_init(SketchANet(), path)
    assert rep.missing == ["fc7"]
    with pytest.raises(ValueError, match="fc7"):
        load_sketchanet_init(SketchANet(), path, strict=True)
    w["conv1_a"], w["conv1_b"] = w.pop("conv1"), [np.zeros((15, 15, 1, 64)), np.zeros(64)]
    np.save(path, w, allow_pickle=True)
    with pytest.raises(ValueError, match="name_map"):
        load_sketchanet_init(SketchANet(), path)
    rep = load_sketchanet_init(SketchANet(), path, name_map={"conv1": "conv1_a"})
    assert "conv1" in rep.loaded and "conv1_b" in rep.ignored


def test_torch_checkpoint_roundtrip(tmp_path, x2):
    torch.manual_seed(0)
    src = DSSANet("full").eval()
    p = tmp_path / "ckpt.pt"
    torch.save({"model": src.state_dict(), "epoch": 3, "variant": "full"}, p)
    dst = DSSANet("full").eval()
    rep = load_sketchanet_init(dst, p, strict=True)
    assert rep.format == "torch" and rep.loaded == list(models.LAYERS) + ["attention"]
    assert torch.allclose(dst(x2), src(x2))

    # a SketchANet state dict (DataParallel prefix) initialises a DSSANet backbone only
    sk = SketchANet()
    torch.save({f"module.{k}": v for k, v in sk.state_dict().items()}, p)
    net = DSSANet("base+att")
    rep = load_sketchanet_init(net, p)
    assert rep.loaded == list(models.LAYERS) and rep.missing == ["attention"]
    for k, v in sk.state_dict().items():
        assert torch.equal(net.backbone.state_dict()[k], v)

    # a DSSANet checkpoint initialises a bare SketchANet (attention ignored)
    torch.save(src.state_dict(), p)
    sk2 = SketchANet()
    rep = load_sketchanet_init(sk2, p)
    assert rep.loaded == list(models.LAYERS) and any(k.startswith("attention.") for k in rep.ignored)

    # mismatched widths -> error naming the layer
    torch.save(DSSANet(get_variant("base", fc7_dim=128)).state_dict(), p)
    with pytest.raises(ValueError, match="fc7"):
        load_sketchanet_init(DSSANet("base"), p)


def _flat_tf_dssa(rng: np.random.Generator) -> dict:
    """A small stand-in for a model saved by triplet_sbir_train.py line 217: {var.name: array}."""
    nested = _random_tf_weights(rng)
    flat = {}
    for ours, scope in (("conv1", "conv1_s1"), ("conv2", "conv2_s1"), ("conv3", "conv3_s1"), ("conv4", "conv4_s1"),
                        ("conv5", "conv5_s1"), ("fc6", "fc6_s1"), ("fc7", "fc7_sketch")):
        flat[f"{scope}/weights:0"], flat[f"{scope}/biases:0"] = nested[ours]
        flat[f"{scope}/weights/Momentum:0"] = np.zeros_like(nested[ours][0])  # optimiser slot
    # the attention at top level (scopes conv1/conv2, lines 21 and 25)
    flat["conv1/weights:0"] = rng.standard_normal((1, 1, 256, 256)).astype(np.float32) * 0.1
    flat["conv1/biases:0"] = rng.standard_normal(256).astype(np.float32)
    flat["conv2/weights:0"] = rng.standard_normal((1, 1, 256, 1)).astype(np.float32) * 0.1
    flat["conv2/biases:0"] = rng.standard_normal(1).astype(np.float32)
    flat["Variable:0"] = np.int32(200)  # the global step
    return flat


def test_tf_flat_format_with_attention_and_input_scale(tmp_path):
    from sbir_lib.data import augment as A

    rng = np.random.default_rng(5)
    flat = _flat_tf_dssa(rng)
    path = tmp_path / "model-iter200.npy"
    np.save(path, flat, allow_pickle=True)
    net = DSSANet("full").eval()
    rep = load_sketchanet_init(net, path, strict=True)
    assert rep.format == "tf_npy_flat" and rep.loaded == list(models.LAYERS) + ["attention"]
    assert "Variable:0" in rep.ignored and "conv1_s1/weights/Momentum:0" in rep.ignored
    assert rep.input_scale == 255.0
    # Sketch-a-Net's conv1 came from conv1_s1, not from the attention's top-level conv1
    assert torch.equal(net.backbone.conv1.bias, torch.from_numpy(flat["conv1_s1/biases:0"]))
    w_att = torch.from_numpy(flat["conv1/weights:0"].transpose(3, 2, 0, 1).copy())
    assert torch.equal(net.attention.conv1.weight, w_att)
    assert torch.equal(net.attention.conv2.bias, torch.from_numpy(flat["conv2/biases:0"]))
    # end to end for conv1: our input pipeline (x/255 - mean) + the loaded weights == the TF
    # computation on x - 250.42 (triplet_sbir_train.py line 170)
    x = rng.integers(0, 256, size=(1, 33, 33), dtype=np.uint8)
    ref = _tf_conv_nhwc((x.astype(np.float64) - 250.42)[..., None], flat["conv1_s1/weights:0"].astype(np.float64),
                        flat["conv1_s1/biases:0"], stride=3)
    got = net.backbone.conv1(A.to_input(torch.from_numpy(x))).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-2)


def test_trainer_feeds_tf_weights_their_input_scale(tmp_path):
    from sbir_lib.training import triplet as T

    rng = np.random.default_rng(6)
    flat = _flat_tf_dssa(rng)
    path = tmp_path / "sketchnet_init.npy"
    np.save(path, flat, allow_pickle=True)
    cfg = T.profile_config("quick", experiment="pretrain", variant="full", init=str(path))  # a Sketch-a-Net recipe
    model, _ = T.build_network(cfg, torch.device("cpu"))
    w = torch.from_numpy(flat["conv1_s1/weights:0"].transpose(3, 2, 0, 1).copy()) * 255.0
    assert torch.allclose(model.backbone.conv1.weight, w)
    # conv1-conv4 frozen with a pretrained init (DSSA trains conv5, fc6, fc7, attention)
    assert not model.backbone.conv4.weight.requires_grad and model.backbone.conv5.weight.requires_grad
