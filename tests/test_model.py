import pytest
import torch
import torchvision
from torch import nn

from alexnet_fast import alexnet
from alexnet_fast.model import PRESETS, feature_shapes, make_config, min_input_size


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts():
    assert n_params(alexnet("paper")) == 60_965_224
    assert n_params(alexnet("torchvision")) == 61_100_840
    # groups=1: conv2/4/5 see all channels
    assert n_params(alexnet("paper", groups=1)) == 62_378_344


def test_module_names_are_roles():
    m = alexnet("paper")
    names = dict(m.named_modules())
    expected = ["features.conv1", "features.relu1", "features.lrn1", "features.pool1",
                "features.conv2", "features.lrn2", "features.pool2", "features.conv3",
                "features.conv4", "features.conv5", "features.pool5", "classifier.drop6",
                "classifier.fc6", "classifier.fc7", "classifier.fc8"]
    for n in expected:
        assert n in names, n
    assert [c for c in m.features._modules] == [
        "conv1", "relu1", "lrn1", "pool1", "conv2", "relu2", "lrn2", "pool2",
        "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5"]
    assert list(m.classifier._modules) == ["drop6", "fc6", "relu6", "drop7", "fc7", "relu7", "fc8"]


def test_paper_layers():
    m = alexnet("paper")
    f = m.features
    assert (f.conv1.out_channels, f.conv1.kernel_size, f.conv1.stride, f.conv1.padding) == (96, (11, 11), (4, 4), (0, 0))
    assert [getattr(f, f"conv{i}").out_channels for i in range(1, 6)] == [96, 256, 384, 384, 256]
    assert [getattr(f, f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    for lrn in (f.lrn1, f.lrn2):
        assert isinstance(lrn, nn.LocalResponseNorm)
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 5e-4, 0.75, 2.0)
    for pool in (f.pool1, f.pool2, f.pool5):
        assert (pool.kernel_size, pool.stride) == (3, 2)
    assert m.classifier.drop6.p == m.classifier.drop7.p == 0.5
    assert (m.classifier.fc6.in_features, m.classifier.fc6.out_features) == (9216, 4096)
    g1 = alexnet("paper", groups=1).features
    assert [getattr(g1, f"conv{i}").groups for i in range(1, 6)] == [1] * 5


def test_paper_init():
    m = alexnet("paper")
    layers = dict(m.features.named_children()) | dict(m.classifier.named_children())
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        w, b = layers[name].weight, layers[name].bias
        assert abs(w.mean().item()) < 2e-3, name
        assert w.std().item() == pytest.approx(0.01, rel=0.05), name
        expected_bias = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        assert torch.all(b == expected_bias), name


def test_kaiming_init():
    m = alexnet("paper", width_mult=0.25, input_size=67, init="kaiming")
    assert m.config.init == "kaiming"
    layers = dict(m.features.named_children()) | dict(m.classifier.named_children())
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        w, b = layers[name].weight, layers[name].bias
        fan_in = w[0].numel()  # in_channels / groups * kH * kW, or in_features
        assert w.std().item() == pytest.approx((2.0 / fan_in) ** 0.5, rel=0.1), name
        assert torch.all(b == 0), name
    # the same seed gives the same weights: one way to build the model
    torch.manual_seed(3)
    a = alexnet("torchvision", width_mult=0.25, init="kaiming").state_dict()
    torch.manual_seed(3)
    b = alexnet("torchvision", width_mult=0.25, init="kaiming").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="init must be one of paper, torchvision, kaiming, got 'he'"):
        alexnet(init="he")


def test_output_shapes():
    m = alexnet("paper").eval()
    with torch.no_grad():
        assert m(torch.randn(2, 3, 227, 227)).shape == (2, 1000)
    shapes = feature_shapes(m.config)
    assert shapes["conv1"] == (96, 55, 55)
    assert shapes["pool1"] == (96, 27, 27)
    assert shapes["conv2"] == (256, 27, 27)
    assert shapes["pool2"] == (256, 13, 13)
    assert shapes["conv5"] == (256, 13, 13)
    assert shapes["pool5"] == (256, 6, 6)
    t = alexnet("torchvision", num_classes=10).eval()
    with torch.no_grad():
        assert t(torch.randn(1, 3, 224, 224)).shape == (1, 10)
        assert t(torch.randn(1, 3, 100, 120)).shape == (1, 10)  # adaptive pool takes any size


def test_torchvision_preset_matches_torchvision():
    ref = torchvision.models.alexnet(weights=None).eval()
    m = alexnet("torchvision").eval()
    m.load_state_dict(ref.state_dict())  # unchanged keys (features.0.weight, ...)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref(x), atol=1e-6, rtol=0)
    # and our own state_dict round-trips
    m2 = alexnet("torchvision").eval()
    m2.load_state_dict(m.state_dict())
    with torch.no_grad():
        assert torch.equal(m2(x), m(x))


def test_width_mult_and_input_size():
    m = alexnet("paper", num_classes=7, width_mult=0.125, input_size=99).eval()
    assert [getattr(m.features, f"conv{i}").out_channels for i in range(1, 6)] == [12, 32, 48, 48, 32]
    with torch.no_grad():
        assert m(torch.randn(1, 3, 99, 99)).shape == (1, 7)


def test_input_too_small():
    assert min_input_size(PRESETS["paper"]) == 67
    with pytest.raises(ValueError, match="too small.*minimum input size is 67"):
        alexnet("paper", input_size=66)
    alexnet("paper", input_size=67, width_mult=0.1)
    t = alexnet("torchvision")
    with pytest.raises(ValueError, match="too small.*minimum is 63x63"):
        t(torch.randn(1, 3, 62, 62))
    p = alexnet("paper", width_mult=0.1)
    with pytest.raises(ValueError, match="built for 227x227"):
        p(torch.randn(1, 3, 224, 224))
    with pytest.raises(ValueError, match="3 input channels"):
        p(torch.randn(1, 1, 227, 227))
    with pytest.raises(ValueError, match="4-D"):
        p(torch.randn(3, 227, 227))


@pytest.mark.parametrize("kwargs, match", [
    (dict(groups=3), "conv2: groups=3 does not divide its 256 output channels"),
    (dict(groups=0), "groups must be a positive integer"),
    (dict(width_mult=0.01), "groups=2 does not divide"),
    (dict(width_mult=-1), "width_mult must be a positive number"),
    (dict(num_classes=0), "num_classes"),
    (dict(dropout=1.0), "dropout"),
    (dict(preset="lenet"), "unknown preset 'lenet'"),
    (dict(preset="torchvision", groups=2), "no grouped convolutions"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        alexnet(**kwargs)


def test_configs_are_data():
    c = make_config("paper", width_mult=0.5)
    assert c.lrn == PRESETS["paper"].lrn
    assert c.convs[0].out_channels == 48 and c.hidden == (2048, 2048)
