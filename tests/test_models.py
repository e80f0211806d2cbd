"""MLP: shapes, its own time and class embeddings, and the errors a learner may hit."""

import pytest
import torch

from lessons.models import MLP, SinusoidalTimeEmbedding


def _xt(batch=5, dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g), torch.rand(batch, generator=g)


@pytest.mark.parametrize(
    "dim, depth, activation", [(2, 3, "silu"), (1, 1, "relu"), (5, 2, "gelu"), (3, 2, "selu")]
)
def test_output_shape(dim, depth, activation):
    x, t = _xt(7, dim)
    model = MLP(dim=dim, hidden=16, depth=depth, activation=activation)
    assert model(x=x, t=t).shape == (7, dim)
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == depth + 1


def test_time_embedding_by_hand():
    emb = SinusoidalTimeEmbedding(dim=6, max_period=100.0)
    t = torch.tensor([0.0, 0.3])
    freqs = torch.tensor([100.0 ** (-i / 3) for i in range(3)])
    angles = 1000 * t[:, None] * freqs
    assert torch.allclose(emb(t), torch.cat([angles.sin(), angles.cos()], 1), atol=1e-5)
    with pytest.raises(ValueError, match="even"):
        SinusoidalTimeEmbedding(dim=5)
    slow = SinusoidalTimeEmbedding(dim=6, max_period=100.0, scale=1.0)
    assert torch.allclose(slow(t), torch.cat([(t[:, None] * freqs).sin(), (t[:, None] * freqs).cos()], 1))
    with pytest.raises(ValueError, match="time scale"):
        SinusoidalTimeEmbedding(dim=6, scale=0.0)


def test_mlp_passes_its_time_scale_on():
    assert MLP(time_scale=2.0).time_embedding.scale == 2.0
    assert MLP().time_embedding.scale == 1000.0


def test_model_owns_its_time_embedding():
    torch.manual_seed(0)
    model = MLP(dim=2, hidden=16, depth=2, time_dim=8)
    assert isinstance(model.time_embedding, SinusoidalTimeEmbedding)
    # the first layer sees x (2 numbers) and the embedding (8), nothing is smuggled into x
    assert model.net[0].in_features == 2 + 8
    x = torch.zeros(3, 2)
    out_a = model(x=x, t=torch.full((3,), 0.1))
    out_b = model(x=x, t=torch.full((3,), 0.9))
    assert not torch.allclose(out_a, out_b)  # time matters
    # the output equals the net applied to [x, embedding(t)]
    t = torch.tensor([0.2, 0.5, 0.7])
    manual = model.net(torch.cat([x, model.time_embedding(t)], 1))
    assert torch.allclose(model(x=x, t=t), manual)


def test_class_embedding_and_null_class():
    torch.manual_seed(0)
    model = MLP(dim=2, hidden=16, depth=2, time_dim=8, num_classes=3)
    assert model.class_embedding.num_embeddings == 4  # 3 classes + the 'no class' token
    x, t = _xt(4)
    null = model(x=x, t=t)
    assert torch.allclose(null, model(x=x, t=t, cond=torch.full((4,), 3)))
    labelled = model(x=x, t=t, cond=torch.tensor([0, 1, 2, 0]))
    assert not torch.allclose(null, labelled)
    manual = model.net(
        torch.cat([x, model.time_embedding(t) + model.class_embedding(torch.tensor([0, 1, 2, 0]))], 1)
    )
    assert torch.allclose(labelled, manual)


def test_cond_to_an_unconditional_model_raises():
    x, t = _xt()
    with pytest.raises(ValueError, match="without classes"):
        MLP()(x=x, t=t, cond=torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize(
    "x, t, match",
    [
        (torch.zeros(5, 3), torch.rand(5), r"\(B, 2\)"),
        (torch.zeros(5), torch.rand(5), r"\(B, 2\)"),
        (torch.zeros(5, 2, 1), torch.rand(5), r"\(B, 2\)"),
        (torch.zeros(5, 2), torch.rand(4), "one time per sample"),
        (torch.zeros(5, 2), torch.rand(5, 1), "shape"),
        (torch.zeros(5, 2), torch.full((5,), 1.5), r"\[0, 1\]"),
    ],
)
def test_bad_inputs_raise(x, t, match):
    with pytest.raises(ValueError, match=match):
        MLP()(x=x, t=t)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": 0}, "dim"),
        ({"dim": 2.0}, "dim"),
        ({"depth": 0}, "depth"),
        ({"hidden": 0}, "hidden"),
        ({"hidden": -4}, "hidden"),
        ({"time_dim": 0}, "time_dim"),
        ({"time_dim": -2}, "time_dim"),
        ({"time_dim": 7}, "even"),
        ({"activation": "tanh"}, "unknown activation 'tanh'; choose one of: gelu, relu, selu, silu"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": -1}, "num_classes"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"time_scale": float("inf")}, "time scale"),
        ({"time_scale": -1.0}, "time scale"),
    ],
)
def test_bad_construction_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": 0}, "dim"),
        ({"dim": 3}, "even"),
        ({"max_period": 0.0}, "max_period"),
        ({"scale": float("nan")}, "scale"),
    ],
)
def test_bad_time_embedding_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SinusoidalTimeEmbedding(**kwargs)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        SinusoidalTimeEmbedding(4)(torch.rand(3, 1))


def test_wrong_dtype_device_or_kind_of_input_is_refused_in_words():
    model, (x, t) = MLP(), _xt()
    with pytest.raises(
        ValueError, match=r"x has dtype torch.float64 but the model's weights are torch.float32"
    ):
        model(x=x.double(), t=t)
    with pytest.raises(ValueError, match=r"convert it with x.float\(\)"):
        model(x=x.long(), t=t)
    with pytest.raises(TypeError, match="x must be a torch tensor"):
        model(x=[[0.0, 0.0]], t=t[:1])
    with pytest.raises(ValueError, match="t must be a float tensor"):
        model(x=x, t=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="t must lie in"):
        model(x=x, t=torch.full((5,), float("nan")))


def test_float64_times_for_a_float32_model_give_the_float32_answer():
    model, (x, t) = MLP(), _xt()
    assert torch.allclose(model(x=x, t=t.double()), model(x=x, t=t), atol=1e-5)
    assert model(x=x, t=t.double()).dtype == torch.float32
    double = MLP().double()
    assert double(x=x.double(), t=t).dtype == torch.float64  # a float64 model takes float64 x


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = MLP(dim=2, hidden=8, depth=2, time_dim=4, num_classes=2)
    x, t = _xt(6)
    model(x=x, t=t, cond=torch.tensor([0, 1, 2, 0, 1, 2])).pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_smooth_time_embedding_by_hand():
    emb = SinusoidalTimeEmbedding(dim=4, max_period=100.0, scale=1.0)
    t = torch.tensor([0.25, 1.0])
    angles = t[:, None] * torch.tensor([1.0, 0.1])
    assert torch.allclose(emb(t), torch.cat([angles.sin(), angles.cos()], 1))
    assert MLP(time_scale=2.0).time_embedding.scale == 2.0
