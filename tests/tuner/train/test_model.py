import pytest
import torch

from tuner.train.model import LAB_ARCH, ArchError, ArchSpec, ConvNet, count_parameters, feature_size


def test_lab_spec_builds_the_labs_network_with_exactly_2211338_parameters():
    model = ConvNet(LAB_ARCH, in_channels=3, num_classes=10, input_size=32)
    assert count_parameters(model) == 2_211_338
    assert model.flatten_size == 256 * 4 * 4  # the notebook's hard-coded flatten size
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256]
    assert all(c.bias is not None for c in convs)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4096, 256), (256, 64), (64, 10)]
    dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.2]


@pytest.mark.parametrize("size", [8, 12, 16, 28, 32])
def test_flatten_size_follows_the_input(size):
    model = ConvNet(LAB_ARCH, in_channels=1, num_classes=10, input_size=size)
    out = model(torch.zeros(2, 1, size, size))
    assert out.shape == (2, 10)
    side = feature_size(LAB_ARCH, size)
    assert model.flatten_size == 256 * side * side


def test_stride_padding_dilation_change_the_feature_map_as_conv2d_does():
    spec = ArchSpec(
        channels=(8,),
        convs_per_block=2,
        kernel_size=5,
        stride=2,
        padding="valid",
        dilation=2,
        pool="none",
        fc_widths=(),
        fc_dropout=(),
    )
    model = ConvNet(spec, 3, 10, 32)
    feats = model.features(torch.zeros(1, 3, 32, 32))
    assert feats.shape[-1] == feature_size(spec, 32) == 4  # (32-9)//2+1=12, then 12-8=4


def test_an_architecture_that_shrinks_the_image_away_is_refused():
    with pytest.raises(ArchError, match="shrinks to nothing"):
        ConvNet(ArchSpec(channels=(8, 8, 8, 8)), 1, 10, 8)


def test_batch_norm_residual_and_global_pool():
    spec = ArchSpec(
        channels=(16, 32),
        batch_norm=True,
        residual=True,
        stride=2,
        pool="none",
        global_pool=True,
        fc_widths=(),
        fc_dropout=(),
        conv_dropout=0.1,
    )
    model = ConvNet(spec, 3, 10, 32)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(c.bias is None for c in model.modules() if isinstance(c, torch.nn.Conv2d))
    assert model.flatten_size == 32


@pytest.mark.parametrize(
    "bad",
    [
        dict(pool="median"),
        dict(padding="full"),
        dict(channels=()),
        dict(fc_dropout=(0.2,)),
        dict(conv_dropout=1.0),
    ],
)
def test_bad_specs_are_refused(bad):
    with pytest.raises(ArchError):
        ArchSpec(**bad)
