"""The image training recipe: losses, device switches, sampling by hand, training with EMA, checkpoints."""

import contextlib
import itertools

import pytest
import torch
import torch.nn.functional as F
from model_helpers import randomized

from lessons.checkpoints import load_checkpoint, save_checkpoint
from lessons.ddpm import DDPM
from lessons.image_training import (
    autocast_for,
    compiled_forward,
    ddim_times,
    generate,
    generate_reflow_pairs,
    load_image_model,
    make_loss,
    memory_format_for,
    save_image_model,
    train_image_model,
)
from lessons.mnist import MNIST
from lessons.optimal_transport import ot_assignment
from lessons.unet import UNet, unet_config


def test_device_switches_fall_back_on_cpu():
    assert isinstance(autocast_for("cpu"), contextlib.nullcontext)
    assert memory_format_for("cpu") == torch.contiguous_format
    assert memory_format_for("cuda") == torch.channels_last
    assert compiled_forward(UNet(unet_config("tiny")), "cpu") is None  # compile is for CUDA only


def test_losses_match_library_definitions():
    model = randomized(UNet(unet_config("tiny", num_classes=10)))
    images, labels = torch.randn(4, 1, 28, 28).clamp(-1, 1), torch.tensor([1, 2, 3, 4])
    torch.manual_seed(1)
    ours = make_loss("cfm", p_uncond=0.0)(model, (images, labels))
    torch.manual_seed(1)
    noise, t = torch.randn_like(images), torch.rand(4)
    x_t = t.view(-1, 1, 1, 1) * images + (1 - t.view(-1, 1, 1, 1)) * noise  # the OT path, by hand
    assert torch.allclose(ours, F.mse_loss(model(x=x_t, t=t, cond=labels), images - noise), atol=1e-6)
    torch.manual_seed(2)
    ours = make_loss("ddpm", p_uncond=0.0)(model, images)
    torch.manual_seed(2)
    assert torch.allclose(ours, _ddpm_reference(model, images), atol=1e-6)
    torch.manual_seed(3)  # an eps network on the straight path: the same x_t, the noise as its target
    ours = make_loss("cfm", p_uncond=0.0, prediction="eps")(model, (images, labels))
    torch.manual_seed(3)
    noise, t = torch.randn_like(images), torch.rand(4)
    x_t = t.view(-1, 1, 1, 1) * images + (1 - t.view(-1, 1, 1, 1)) * noise
    assert torch.allclose(ours, F.mse_loss(model(x=x_t, t=t, cond=labels), noise), atol=1e-6)


def test_ot_and_reflow_couplings_match_the_loss_by_hand():
    model = randomized(UNet(unet_config("tiny", num_classes=10)))
    images, labels = torch.randn(6, 1, 28, 28).clamp(-1, 1), torch.arange(6)
    torch.manual_seed(3)
    ours = make_loss("cfm", p_uncond=0.0, coupling="ot")(model, (images, labels))
    torch.manual_seed(3)
    noise = torch.randn_like(images)
    cost = torch.cdist(noise.flatten(1).double(), images.flatten(1).double()) ** 2
    # the exact assignment by brute force over the 720 permutations: the cheapest pairing
    best = min(itertools.permutations(range(6)), key=lambda p: float(cost[range(6), list(p)].sum()))
    partner = torch.tensor(best)
    assert torch.equal(partner, ot_assignment(noise.flatten(1), images.flatten(1)))
    t = torch.rand(6)
    paired, their_labels = images[partner], labels[partner]  # each image keeps its own label
    x_t = t.view(-1, 1, 1, 1) * paired + (1 - t.view(-1, 1, 1, 1)) * noise
    assert torch.allclose(ours, F.mse_loss(model(x=x_t, t=t, cond=their_labels), paired - noise), atol=1e-6)
    # reflow: the batch brings its noise, which is used as it is
    given = torch.randn_like(images)
    torch.manual_seed(4)
    ours = make_loss("cfm", p_uncond=0.0, coupling="reflow")(model, (images, labels, given))
    torch.manual_seed(4)
    t = torch.rand(6)
    x_t = t.view(-1, 1, 1, 1) * images + (1 - t.view(-1, 1, 1, 1)) * given
    assert torch.allclose(ours, F.mse_loss(model(x=x_t, t=t, cond=labels), images - given), atol=1e-6)
    unconditional = randomized(UNet(unet_config("tiny")))
    torch.manual_seed(4)
    ours = make_loss("cfm", coupling="reflow")(unconditional, (images, given))
    torch.manual_seed(4)
    t = torch.rand(6)
    x_t = t.view(-1, 1, 1, 1) * images + (1 - t.view(-1, 1, 1, 1)) * given
    assert torch.allclose(ours, F.mse_loss(unconditional(x=x_t, t=t), images - given), atol=1e-6)
    with pytest.raises(ValueError, match="DDPM's loss draws its own noise"):
        make_loss("ddpm", coupling="ot")
    with pytest.raises(ValueError, match="unknown coupling 'minibatch'"):
        make_loss("cfm", coupling="minibatch")
    with pytest.raises(ValueError, match="needs batches .images, labels, noise."):
        make_loss("cfm", coupling="reflow")(model, images)


def test_reflow_pairs_are_the_models_samples_and_train_as_pairs():
    model = randomized(UNet(unet_config("tiny", num_classes=10)))
    data, noise = generate_reflow_pairs(model, 25, nfe=2, seed=5, batch_size=10)
    assert (
        len(data) == 25
        and noise.shape == (25, 1, 28, 28)
        and data.labels.tolist() == [i % 10 for i in range(25)]
    )
    expected = torch.randn(25, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    assert torch.equal(noise, expected)
    one_call = generate(model, "cfm", noise, nfe=2, cond=data.labels).final.clamp(-1, 1)
    assert torch.allclose(data.images, one_call, atol=1e-5)  # the same samples, ten at a time
    seen = []
    ema, result = train_image_model(
        model,
        "cfm",
        data,
        steps=2,
        batch_size=5,
        classes=True,
        device="cpu",
        progress=False,
        coupling="reflow",
        noise=noise,
        callback=lambda step, m, losses: seen.append(step),
        callback_every=1,
    )
    assert result.steps_done == 2 and seen == [1, 2]
    with pytest.raises(ValueError, match="class-conditional"):
        generate_reflow_pairs(UNet(unet_config("tiny")), 4)
    with pytest.raises(ValueError, match="give noise"):
        train_image_model(model, "cfm", data, steps=1, coupling="reflow", progress=False)
    with pytest.raises(ValueError, match="give noise"):
        train_image_model(model, "cfm", data, steps=1, noise=noise, progress=False)
    with pytest.raises(ValueError, match="one noise image per training image"):
        train_image_model(model, "cfm", data, steps=1, coupling="reflow", noise=noise[:3], progress=False)


def _ddpm_reference(model, images):
    ddpm = DDPM()
    k = torch.randint(1, 1001, (images.shape[0],))
    noise = torch.randn_like(images)
    abar = ddpm.alpha_bars[k].float().view(-1, 1, 1, 1)
    return F.mse_loss(model(x=abar.sqrt() * images + (1 - abar).sqrt() * noise, t=1 - k / 1000), noise)


def test_label_dropout_replaces_every_label_when_p_is_one():
    seen = []
    model = UNet(unet_config("tiny", num_classes=10))

    def spy(x, t, cond):
        return seen.append(cond) or model(x=x, t=t, cond=cond)

    make_loss("cfm", forward=spy, num_classes=10, p_uncond=1.0)(
        model, (torch.zeros(3, 1, 28, 28), torch.arange(3))
    )
    assert seen[0].tolist() == [10, 10, 10]
    with pytest.raises(ValueError, match="p_uncond"):
        make_loss("cfm", p_uncond=1.5)
    with pytest.raises(ValueError, match="method"):
        make_loss("gan")


def test_one_step_samplers_by_hand():
    model = randomized(UNet(unet_config("tiny")))
    noise = torch.randn(2, 1, 28, 28)
    euler = generate(model, "cfm", noise, nfe=1)
    assert euler.nfe == 1 and torch.allclose(euler.final, noise + model(x=noise, t=torch.zeros(2)), atol=1e-5)
    abar = (
        DDPM().alpha_bars[-1].item()
    )  # DDIM from k = T straight to k = 0: x = (x_T - sqrt(1 - abar) eps) / sqrt(abar)
    ddim = generate(model, "ddpm", noise, nfe=1)
    expected = (noise - (1 - abar) ** 0.5 * model(x=noise, t=torch.zeros(2))) / abar**0.5
    assert torch.allclose(ddim.final, expected, rtol=1e-4, atol=1e-3)
    clipped = generate(
        model, "ddpm", noise, nfe=1, clip=True
    )  # one step lands on the clipped data prediction
    assert torch.allclose(clipped.final, expected.clamp(-1, 1), atol=1e-4)
    with pytest.raises(ValueError, match="clip"):
        generate(model, "cfm", noise, nfe=1, clip=True)
    ts = ddim_times(DDPM(), 4)
    assert torch.allclose(ts, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    with pytest.raises(ValueError, match="at most"):
        ddim_times(DDPM(num_steps=10), 11)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "cfm", "nfe": 3},
        {"method": "ddpm", "nfe": 2, "clip": True},
        {"method": "cfm", "nfe": 2, "guidance": 1.5},  # guided: conditional and unconditional calls per batch
    ],
)
def test_generate_in_batches_gives_the_one_call_images(kwargs):
    torch.manual_seed(0)
    model = randomized(UNet(unet_config("tiny", num_classes=10)))
    noise, labels = torch.randn(5, 1, 28, 28), torch.tensor([3, 1, 4, 1, 5])
    whole = generate(model, noise=noise, cond=labels, **kwargs)
    # float32 convolutions round differently at another batch size (~1e-7 relative), and DDIM's first step from
    # k = T divides by sqrt(abar_T) ~ 0.006: differences up to ~1e-5 of the largest value are rounding
    tol = 1e-4 * whole.xs.abs().max().item()
    for batch_size in (1, 2, 5, 64):  # one image a batch, an uneven last batch, one batch, more than B
        parts = generate(model, noise=noise, cond=labels, batch_size=batch_size, **kwargs)
        assert parts.xs.shape == whole.xs.shape and parts.nfe == whole.nfe and torch.equal(parts.ts, whole.ts)
        assert torch.allclose(parts.xs, whole.xs, rtol=0, atol=tol), (
            batch_size
        )  # every state, not only the last
    # batch by batch by hand: each batch sampled alone, its images in their places
    by_hand = torch.cat(
        [generate(model, noise=z, cond=c, **kwargs).final for z, c in zip(noise.split(2), labels.split(2))]
    )
    assert torch.equal(generate(model, noise=noise, cond=labels, batch_size=2, **kwargs).final, by_hand)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.5}, ValueError, "batch_size"),
        ({"batch_size": 2, "cond": torch.tensor([1, 2, 3])}, ValueError, "one label per noise image"),
        ({"batch_size": 2, "cond": [1, 2, 3, 4]}, TypeError, "cond"),
    ],
)
def test_generate_refuses_bad_batches(kwargs, error, match):
    model = UNet(unet_config("tiny", num_classes=10))
    with pytest.raises(error, match=match):
        generate(model, "cfm", torch.randn(4, 1, 28, 28), nfe=1, **kwargs)


def test_training_runs_and_ema_lags(tmp_path):
    data = MNIST(torch.rand(40, 1, 28, 28) * 2 - 1, torch.arange(40) % 10, "test", "random images")
    model = UNet(unet_config("tiny", num_classes=10))
    ema, result = train_image_model(
        model, "cfm", data, steps=3, batch_size=8, classes=True, device="cpu", progress=False
    )
    assert result.steps_done == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    assert not torch.equal(ema.stem.weight, model.stem.weight)
    path = tmp_path / "m.pt"
    save_image_model(path, ema, {"method": "cfm"})
    loaded, settings = load_image_model(path)
    assert settings["method"] == "cfm" and settings["unet"]["num_classes"] == 10
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), ema.state_dict().values()))
    with pytest.raises(ValueError, match="num_classes"):
        train_image_model(UNet(unet_config("tiny")), "cfm", data, steps=1, classes=True, device="cpu")


def test_checkpoint_checksum_catches_corruption(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.arange(4.0)}, {"lr": 0.1})
    state, settings = load_checkpoint(path)
    assert torch.equal(state["w"], torch.arange(4.0)) and settings == {"lr": 0.1}
    blob = torch.load(path, weights_only=True)
    blob["state"]["w"][0] = 9.0  # a flipped value with the old checksum
    torch.save(blob, path)
    with pytest.raises(ValueError, match="checksum"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="plain data"):
        save_checkpoint(path, {"w": torch.ones(1)}, {"f": object()})
    with pytest.raises(ValueError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def _tiny_data():
    return MNIST(torch.rand(16, 1, 28, 28) * 2 - 1, torch.arange(16) % 10, "test", "random images")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "gan"}, ValueError, "unknown training method 'gan'; choose one of: cfm, ddpm"),
        ({"steps": 0}, ValueError, "training steps"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"lr": -1.0}, ValueError, "learning rate"),
        ({"ema_decay": 1.0}, ValueError, "ema_decay"),
        ({"seed": -2}, ValueError, "seed"),
        ({"callback_every": 0}, ValueError, "callback_every"),
        ({"device": "gpu"}, ValueError, "unknown device 'gpu'"),
        ({"callback": 3}, TypeError, "callback"),
        ({"data": torch.zeros(4, 1, 28, 28)}, TypeError, "data must be a MNIST object"),
        ({"model": UNet}, TypeError, "the class UNet itself"),
        (
            {"prediction": "noise"},
            ValueError,
            r"unknown prediction \(what the flow network outputs\) 'noise'",
        ),
        (
            {"method": "ddpm", "prediction": "eps"},
            ValueError,
            "DDPM's network predicts eps on its own schedule",
        ),
    ],
)
def test_train_image_model_refuses_bad_arguments_before_any_work(kwargs, error, match):
    model = UNet(unet_config("tiny"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = {"model": model, "method": "cfm", "data": _tiny_data(), "steps": 2, **kwargs}
    with pytest.raises(error, match=match):
        train_image_model(progress=False, **args)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "flow"}, ValueError, "unknown sampling method 'flow'; choose one of: cfm, ddpm"),
        ({"nfe": 0}, ValueError, "nfe"),
        ({"nfe": 2.5}, ValueError, "nfe"),
        ({"nfe": -1}, ValueError, "nfe"),
        ({"guidance": float("inf")}, ValueError, "guidance"),
        ({"guidance": -1.0}, ValueError, "guidance"),
        ({"eta": float("nan")}, ValueError, "eta"),
        ({"noise": torch.randn(2, 28, 28)}, ValueError, "noise must have 4 dimensions"),
        ({"noise": torch.zeros(0, 1, 28, 28)}, ValueError, "noise must hold at least 1"),
        ({"noise": torch.zeros(2, 1, 28, 28, dtype=torch.long)}, ValueError, "float"),
        ({"noise": torch.full((2, 1, 28, 28), float("nan"))}, ValueError, "noise holds 1568 NaN"),
        ({"model": "cfm_small"}, TypeError, "model must be a network"),
        ({"ddpm": "DDPM"}, TypeError, "ddpm must be a DDPM object"),
        ({"nfe": 10**9}, ValueError, "[KMGT]iB of memory"),
    ],
)
def test_generate_refuses_bad_arguments(kwargs, error, match):
    args = {"model": UNet(unet_config("tiny")), "method": "cfm", "noise": torch.randn(2, 1, 28, 28), "nfe": 1}
    with pytest.raises(error, match=match):
        generate(**{**args, **kwargs})


def test_make_loss_and_device_helpers_refuse_bad_arguments():
    with pytest.raises(ValueError, match="p_uncond"):
        make_loss("cfm", p_uncond=float("nan"))
    with pytest.raises(ValueError, match="num_classes"):
        make_loss("cfm", num_classes=0)
    with pytest.raises(TypeError, match="forward"):
        make_loss("cfm", forward="unet")
    with pytest.raises(TypeError, match="the class DDPM itself"):
        make_loss("ddpm", ddpm=DDPM)
    model = UNet(unet_config("tiny", num_classes=10))
    with pytest.raises(ValueError, match="make_loss has no num_classes"):
        make_loss("cfm")(model, (torch.zeros(2, 1, 28, 28), torch.tensor([1, 2])))
    for helper in (autocast_for, memory_format_for):
        with pytest.raises(ValueError, match="unknown device 'gpu'"):
            helper("gpu")
    with pytest.raises(TypeError, match="UNet object"):
        save_image_model("unused.pt", "model", {})
    with pytest.raises(TypeError, match="UNet object"):
        compiled_forward("unet", "cpu")
    with pytest.raises(TypeError, match="use_compile must be True, False or None"):
        compiled_forward(UNet(unet_config("tiny")), "cpu", use_compile="yes")
