"""The U-Net, the image training recipe (EMA, losses, device switches), sampling, guidance and checkpoints."""

import pytest
import torch
import torch.nn.functional as F
from model_helpers import randomized

from lessons.unet import ResBlock, UNet, UNetConfig, count_parameters, unet_config


def test_sizes_and_shapes():
    counts = {size: count_parameters(UNet(unet_config(size))) for size in ("tiny", "small", "full")}
    assert counts["tiny"] < counts["small"] < counts["full"]
    assert 1_000_000 <= counts["full"] <= 3_000_000
    model = UNet(unet_config("tiny"))
    assert model(x=torch.randn(3, 1, 28, 28), t=torch.rand(3)).shape == (3, 1, 28, 28)


def test_resblock_against_functional_computation():
    block = randomized(ResBlock(4, 6, emb_dim=8))
    x, emb = torch.randn(2, 4, 7, 7), torch.randn(2, 8)
    h = (
        F.conv2d(
            F.silu(F.group_norm(x, 4, block.norm1.weight, block.norm1.bias)),
            block.conv1.weight,
            block.conv1.bias,
            padding=1,
        )
        + (emb @ block.emb.weight.T + block.emb.bias)[:, :, None, None]
    )
    out = F.conv2d(
        F.silu(F.group_norm(h, 2, block.norm2.weight, block.norm2.bias)),
        block.conv2.weight,
        block.conv2.bias,
        padding=1,
    ) + F.conv2d(x, block.skip.weight, block.skip.bias)
    assert torch.allclose(block(x, emb), out, atol=1e-5)


def test_samples_do_not_see_each_other_and_layout_does_not_matter():
    model = randomized(UNet(unet_config("tiny", num_classes=10)))
    x, t, c = torch.randn(4, 1, 28, 28), torch.rand(4), torch.tensor([0, 3, 10, 9])
    full = model(x=x, t=t, cond=c)
    assert torch.allclose(model(x=x[:2], t=t[:2], cond=c[:2]), full[:2], atol=1e-5)
    assert torch.allclose(
        model(x=x.contiguous(memory_format=torch.channels_last), t=t, cond=c), full, atol=1e-5
    )


def test_class_embedding_and_null_class():
    model = randomized(UNet(unet_config("tiny", num_classes=10)))
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    null = model(x=x, t=t, cond=torch.full((2,), 10))
    assert torch.allclose(model(x=x, t=t), null)
    assert not torch.allclose(model(x=x, t=t, cond=torch.tensor([1, 2])), null, atol=1e-3)


def test_bad_input():
    model, cond_model = UNet(unet_config("tiny")), UNet(unet_config("tiny", num_classes=10))
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    with pytest.raises(ValueError, match="shape"):
        model(x=torch.randn(2, 28, 28), t=t)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(x=x, t=t + 2)
    with pytest.raises(ValueError, match="without classes"):
        model(x=x, t=t, cond=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="labels"):
        cond_model(x=x, t=t, cond=torch.tensor([1, 11]))
    with pytest.raises(ValueError, match="size"):
        unet_config("huge")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": ()}, "channels"),
        ({"channels": (8, 0)}, "channels"),
        ({"channels": (8, 2.5)}, "channels"),
        ({"channels": 8}, "channels"),
        ({"emb_dim": 0}, "emb_dim"),
        ({"emb_dim": 31}, "even"),
        ({"image_channels": 0}, "image_channels"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_bad_configurations_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNetConfig(**kwargs)
    with pytest.raises(ValueError, match=match):
        UNet(UNetConfig(**{**dict(channels=(8, 16), emb_dim=32), **kwargs}))


def test_a_list_of_channels_is_kept_as_a_tuple():
    assert UNetConfig(channels=[8, 16]).channels == (8, 16)


@pytest.mark.parametrize(
    "config, match",
    [
        ("tiny", r"UNet\(unet_config\('tiny'\)\)"),
        (UNetConfig, "the class UNetConfig itself"),
        ({}, "UNetConfig"),
    ],
)
def test_wrong_kind_of_config_is_a_type_error(config, match):
    with pytest.raises(TypeError, match=match):
        UNet(config)


def test_inputs_of_the_wrong_shape_dtype_or_batch_are_refused():
    model = UNet(unet_config("tiny"))
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    with pytest.raises(ValueError, match="multiples of 2"):
        model(x=torch.randn(2, 1, 27, 28), t=t)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model(x=torch.randn(2, 3, 28, 28), t=t)
    with pytest.raises(ValueError, match="torch.float64 but the model's weights are torch.float32"):
        model(x=x.double(), t=t)
    with pytest.raises(ValueError, match="float tensor"):
        model(x=x.to(torch.uint8), t=t)
    with pytest.raises(ValueError, match="one time per sample"):
        model(x=x, t=torch.rand(3))
    with pytest.raises(TypeError, match="torch tensor"):
        model(x=x.numpy(), t=t)
    with pytest.raises(ValueError, match="c_out"):
        ResBlock(4, 0, emb_dim=8)
    block = ResBlock(8, 8, emb_dim=4)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 8, H, W\), got \(2, 3, 7, 7\)"):
        block(torch.randn(2, 3, 7, 7), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"emb must have shape \(2, 4\)"):
        block(torch.randn(2, 8, 7, 7), torch.randn(2, 5))
    with pytest.raises(TypeError, match="Module"):
        count_parameters("UNet")
