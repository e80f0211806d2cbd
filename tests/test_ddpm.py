"""DDPM: closed-form marginal vs the forward chain, the loss, and ancestral sampling with the exact eps."""

import numpy as np
import pytest
import torch
from model_helpers import alpha_bars, gaussian_model

from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times, ddpm_step_to_t
from lessons.models import MLP


def test_alpha_bars_and_marginal_by_hand():
    ddpm = DDPM(num_steps=50, beta_start=1e-3, beta_end=0.1)
    betas, abars = alpha_bars(50, 1e-3, 0.1)
    assert np.allclose(ddpm.betas.numpy(), betas) and np.allclose(ddpm.alpha_bars.numpy(), abars)
    assert ddpm.beta(1) == pytest.approx(1e-3) and ddpm.beta(50) == pytest.approx(0.1)
    data, noise = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    k = torch.tensor([0, 1, 25, 50])
    expected = torch.stack(
        [abars[j] ** 0.5 * data[i] + (1 - abars[j]) ** 0.5 * noise[i] for i, j in enumerate(k.tolist())]
    )
    assert torch.allclose(ddpm.marginal(data, k, noise), expected)
    assert torch.equal(
        ddpm.marginal(data, torch.zeros(4, dtype=torch.long), noise), data
    )  # k = 0 is clean data


def test_closed_form_marginal_matches_the_forward_chain():
    """One chain recorded at several k: mean sqrt(abar_k) data, variance 1 - abar_k, to 5 standard errors."""
    torch.manual_seed(0)
    ddpm = DDPM(num_steps=100, beta_start=1e-3, beta_end=0.05)
    n, ks = 20_000, [100, 1, 20]  # any order; each k is recorded once along the same run
    data = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64).repeat(n, 1)  # one data point per column
    chain = ddpm.forward_chain(data, ks, generator=torch.Generator().manual_seed(0))
    assert chain.shape == (3, n, 3)
    for k, x_k in zip(ks, chain):
        abar = alpha_bars(100, 1e-3, 0.05)[1][k]
        mean, var = abar**0.5 * data[0], 1 - abar
        assert (x_k.mean(0) - mean).abs().max() < 5 * (var / n) ** 0.5
        assert (x_k.var(0) - var).abs().max() < 5 * var * (2 / n) ** 0.5
        # the closed form drawn directly agrees in law as well
        direct = ddpm.marginal(data, torch.full((n,), k), torch.randn(n, 3, dtype=torch.float64))
        assert (direct.mean(0) - x_k.mean(0)).abs().max() < 5 * (2 * var / n) ** 0.5


def test_forward_chain_records_the_steps_of_one_run():
    """The recorded states are those of one run by hand with the same draws; k = 0 is the data."""
    ddpm = DDPM(num_steps=10, beta_start=0.01, beta_end=0.2)
    data = torch.randn(5, 2, dtype=torch.float64)
    chain = ddpm.forward_chain(data, [0, 3, 10], generator=torch.Generator().manual_seed(1))
    g, x, by_hand = torch.Generator().manual_seed(1), data, {0: data}
    for i in range(1, 11):
        z = torch.randn(5, 2, generator=g, dtype=x.dtype)
        x = (1 - ddpm.beta(i)) ** 0.5 * x + ddpm.beta(i) ** 0.5 * z
        by_hand[i] = x
    assert torch.equal(chain, torch.stack([by_hand[0], by_hand[3], by_hand[10]]))
    for bad in (3, [], [11], [2.5], [-1]):
        with pytest.raises(ValueError):
            ddpm.forward_chain(data, bad)


def test_loss_of_the_exact_eps_is_the_posterior_variance():
    """For data ~ N(m, s^2 I) the best eps-MSE at step k is abar s^2 / (abar s^2 + 1 - abar), averaged over k."""
    torch.manual_seed(0)
    ddpm = DDPM(num_steps=100, beta_start=1e-3, beta_end=0.2)
    mean, std = torch.tensor([1.0, -2.0]), 0.5
    model = gaussian_model(DiscreteVPSchedule(ddpm), mean, std)
    losses = torch.stack([ddpm.loss(model, mean + std * torch.randn(4096, 2)) for _ in range(8)])
    abars = alpha_bars(100, 1e-3, 0.2)[1][1:]
    expected = np.mean(abars * std**2 / (abars * std**2 + 1 - abars))
    assert losses.mean().item() == pytest.approx(expected, rel=0.05)
    assert torch.isfinite(losses).all()


def test_loss_decreases_when_training_a_small_mlp():
    torch.manual_seed(0)
    ddpm = DDPM(num_steps=100, beta_start=1e-3, beta_end=0.2)
    model = MLP(dim=2, hidden=32, depth=2, time_dim=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = torch.tensor([[2.0, 1.0], [-2.0, -1.0]])
    losses = []
    for _ in range(200):
        batch = data[torch.randint(0, 2, (128,))]
        loss = ddpm.loss(model, batch)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-50:]) < 0.7 * np.mean(losses[:50])


def _propagate_law(ddpm, mean, std):
    """Mean and variance (per dimension) of ancestral sampling's output with the exact eps, in x0-form."""
    betas, abars = alpha_bars(ddpm.num_steps, ddpm.betas[0].item(), ddpm.betas[-1].item())
    mu, var = 0.0, 1.0
    for k in range(ddpm.num_steps, 0, -1):
        gain = (
            abars[k] ** 0.5 * std**2 / (abars[k] * std**2 + 1 - abars[k])
        )  # x0_hat = mean + gain (x - sqrt(abar) mean)
        c0 = (
            abars[k - 1] ** 0.5 * betas[k - 1] / (1 - abars[k])
        )  # posterior mean coefficients of q(x_{k-1} | x_k, x0)
        c1 = (1 - betas[k - 1]) ** 0.5 * (1 - abars[k - 1]) / (1 - abars[k])
        a, b = c0 * gain + c1, c0 * (mean - gain * abars[k] ** 0.5 * mean)
        noise_var = (1 - abars[k - 1]) / (1 - abars[k]) * betas[k - 1] if k > 1 else 0.0
        mu, var = a * mu + b, a * a * var + noise_var
    return mu, var**0.5


def test_ancestral_sampling_matches_its_exact_law():
    """With the exact eps the sampler is linear-Gaussian: its output law is computable in x0-form."""
    ddpm = DDPM(num_steps=100, beta_start=1e-3, beta_end=0.2)
    n, mean, std = 20_000, 1.5, 0.5
    g = torch.Generator().manual_seed(0)
    model = gaussian_model(
        DiscreteVPSchedule(ddpm), mean, std, dim=1
    )  # the exact eps of 1D data N(mean, std^2)
    traj = ddpm.sample(
        model, torch.randn(n, 1, generator=g, dtype=torch.float64), generator=g, keep_path=False
    )
    mu, sd = _propagate_law(ddpm, mean, std)
    x = traj.final[:, 0]
    assert abs(x.mean().item() - mu) < 5 * sd / n**0.5
    assert abs(x.std().item() - sd) < 5 * sd / (2 * n) ** 0.5


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ancestral_sampling_reproduces_a_gaussian(variance):
    ddpm = DDPM()  # Ho et al.'s 1000 steps
    n, mean, std = 6000, torch.tensor([1.5, -0.5]), 0.5
    g = torch.Generator().manual_seed(1)
    x = ddpm.sample(
        gaussian_model(DiscreteVPSchedule(ddpm), mean, std),
        torch.randn(n, 2, generator=g),
        variance=variance,
        generator=g,
        keep_path=False,
    ).final
    assert (x.mean(0) - mean).abs().max() < 5 * std / n**0.5
    # 1000 steps leave a discretisation bias below 1% in the std; the sampling error is ~0.9% here
    assert (x.std(0) / std - 1).abs().max() < 0.035


def test_trajectory_shape_times_and_nfe():
    ddpm = DDPM(num_steps=20, beta_start=1e-3, beta_end=0.3)
    calls = []

    def model(x, t, cond=None):
        calls.append(t[0].item())
        return torch.zeros_like(x)

    traj = ddpm.sample(model, torch.randn(8, 2))
    assert traj.xs.shape == (21, 8, 2) and traj.nfe == 20 and len(calls) == 20
    assert torch.allclose(traj.ts, torch.linspace(0, 1, 21))
    assert np.allclose(calls, 1 - np.arange(20, 0, -1) / 20)  # the model sees t_k = 1 - k / T, k = T..1
    short = ddpm.sample(model, torch.randn(8, 2), generator=torch.Generator().manual_seed(0), keep_path=False)
    assert short.xs.shape == (2, 8, 2) and short.nfe == 20
    assert torch.equal(short.ts, torch.tensor([0.0, 1.0]))
    again = ddpm.sample(model, short.xs[0], generator=torch.Generator().manual_seed(0), keep_path=False)
    assert torch.equal(short.final, again.final)  # a seeded generator reproduces the samples


def test_t_of_and_bad_inputs():
    ddpm = DDPM(num_steps=10)
    assert torch.allclose(ddpm.t_of(torch.tensor([10, 5, 0])), torch.tensor([0.0, 0.5, 1.0]))
    for kwargs in (
        {"num_steps": 0},
        {"beta_start": 0.0},
        {"beta_start": 0.1, "beta_end": 0.01},
        {"beta_end": 1.0},
    ):
        with pytest.raises(ValueError):
            DDPM(**kwargs)
    with pytest.raises(ValueError, match="DDPM variance"):
        ddpm.sample(lambda x, t, cond=None: x, torch.zeros(2, 2), variance="large")
    with pytest.raises(ValueError, match="whole numbers"):
        ddpm.t_of(11)


def test_ddpm_step_to_t():
    T = 1000
    assert ddpm_step_to_t(T, T).item() == 0.0
    assert ddpm_step_to_t(0, T).item() == 1.0
    assert ddpm_step_to_t(250, T).item() == pytest.approx(0.75)
    ks = torch.arange(T + 1)
    assert torch.equal(ddpm_step_to_t(ks, T, torch.float64), 1 - ks.double() / T)
    assert ddpm_step_to_t(ks, T).dtype == torch.get_default_dtype()
    assert ddpm_step_to_t(999, 1000, torch.float64).item() == 1 - 999 / 1000  # exact (float32 is off by 2e-8)
    for bad_k in (-1, T + 1, 2.5, torch.tensor([0, T + 1])):
        with pytest.raises(ValueError, match="whole numbers"):
            ddpm_step_to_t(bad_k, T)
    with pytest.raises(ValueError, match="steps T"):
        ddpm_step_to_t(1, 0)


def _zero_eps(x, t, cond=None):
    return torch.zeros_like(x)


def test_step_indices_outside_the_range_are_refused_naming_it():
    ddpm = DDPM(num_steps=10)
    for bad in (0, -1, 11):  # k = 0 has no beta; -1 once silently meant k = T
        with pytest.raises(ValueError, match=r"whole numbers in 1\.\.10"):
            ddpm.beta(bad)
    with pytest.raises(ValueError, match="whole numbers"):
        ddpm.beta(2.5)
    with pytest.raises(TypeError, match="whole number"):
        ddpm.beta("3")
    with pytest.raises(ValueError, match="one step k"):
        ddpm.beta(torch.tensor([1, 2]))
    data, noise = torch.randn(3, 2), torch.randn(3, 2)
    for bad in (torch.tensor([0, -1, 3]), torch.tensor([0, 11, 3]), -1):
        with pytest.raises(ValueError, match=r"whole numbers in 0\.\.10"):
            ddpm.marginal(data, bad, noise)
    with pytest.raises(ValueError, match="one step per sample"):
        ddpm.marginal(data, torch.tensor([1, 2]), noise)
    assert torch.equal(ddpm.marginal(data, 4, noise), ddpm.marginal(data, torch.full((3,), 4), noise))
    with pytest.raises(ValueError, match="noise and data"):
        ddpm.marginal(data, 4, noise[:, :1])
    with pytest.raises(ValueError, match="data holds 1 NaN"):
        ddpm.marginal(torch.tensor([[0.0, float("nan")]]), 4, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="float dtype"):
        ddpm.t_of(3, dtype=torch.long)
    with pytest.raises(TypeError, match="whole number"):
        ddpm.t_of(None)
    with pytest.raises(ValueError, match=r"0\.\.10"):
        ddpm.forward_chain(data, [3, -1])
    with pytest.raises(TypeError, match="generator"):
        ddpm.forward_chain(data, [3], generator=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"beta_end": float("inf")}, ValueError, "beta_end must be a finite number"),
        ({"beta_start": float("nan")}, ValueError, "beta_start must be a finite number"),
        ({"beta_start": "1e-4"}, TypeError, "beta_start must be a real number"),
        ({"beta_start": -1e-4}, ValueError, "0 < beta_start"),
        ({"num_steps": 10.0}, ValueError, "steps T"),
    ],
)
def test_bad_schedules_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        DDPM(**kwargs)


def test_schedule_objects_of_the_wrong_kind_are_type_errors():
    with pytest.raises(TypeError, match=r"class DDPM itself: call it, DDPM\(\)"):
        DiscreteVPSchedule(DDPM)
    with pytest.raises(TypeError, match="not the string 'ddpm'"):
        DiscreteVPSchedule("ddpm")
    with pytest.raises(TypeError, match="ddpm must be a DDPM"):
        ddim_times(DDPM, 10)


def test_loss_refuses_bad_models_and_data():
    ddpm = DDPM(num_steps=10)
    data = torch.randn(8, 2)
    with pytest.raises(ValueError, match=r"returned shape \(8, 1\) for an input of shape \(8, 2\)"):
        ddpm.loss(lambda x, t, cond=None: x[:, :1], data)  # would broadcast without a word
    with pytest.raises(TypeError, match=r"class MLP itself: call it"):
        ddpm.loss(MLP, data)
    with pytest.raises(
        ValueError, match=r"data has dtype torch.float64 but the model's weights are torch.float32"
    ):
        ddpm.loss(MLP(dim=2, hidden=8, depth=1, time_dim=4), data.double())
    with pytest.raises(ValueError, match="data holds 1 NaN"):
        ddpm.loss(_zero_eps, torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="at least 1 sample"):
        ddpm.loss(_zero_eps, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="float tensor"):
        ddpm.loss(_zero_eps, torch.zeros(4, 2, dtype=torch.long))


def test_sample_refuses_bad_models_and_names_the_step_where_nan_appears():
    ddpm = DDPM(num_steps=10, beta_start=1e-3, beta_end=0.2)
    noise = torch.randn(4, 2)
    with pytest.raises(ValueError, match="returned shape"):
        ddpm.sample(lambda x, t, cond=None: x[:, :1], noise)

    def nan_late(x, t, cond=None):  # fine until t = 0.3 (k = 7, the 4th step)
        return torch.full_like(x, float("nan")) if t[0] >= 0.3 - 1e-9 else torch.zeros_like(x)

    with pytest.raises(ValueError, match=r"DDPM sampling produced NaN or inf at step 4 \(t = 0\.3\)"):
        ddpm.sample(nan_late, noise)
    with pytest.raises(ValueError, match="noise holds"):
        ddpm.sample(_zero_eps, torch.full((2, 2), float("inf")))
    with pytest.raises(TypeError, match="generator"):
        ddpm.sample(_zero_eps, noise, generator=3)
    with pytest.raises(TypeError, match="keep_path"):
        ddpm.sample(_zero_eps, noise, keep_path="no")
    with pytest.raises(TypeError, match="progress"):
        ddpm.sample(_zero_eps, noise, progress="yes")


def test_memory_is_checked_before_allocating(monkeypatch):
    monkeypatch.setattr("lessons.checks.available_memory_bytes", lambda: 100_000)
    with pytest.raises(ValueError, match="a DDPM schedule of T = 100000 steps would need about"):
        DDPM(num_steps=100_000)
    ddpm = DDPM(num_steps=100)
    noise = torch.randn(100, 2)  # 101 states of 800 bytes, listed and stacked: 162 kB
    with pytest.raises(ValueError, match="DDPM sampling would need"):
        ddpm.sample(_zero_eps, noise)
    assert ddpm.sample(_zero_eps, noise, keep_path=False).xs.shape == (2, 100, 2)  # 2 states fit
    with pytest.raises(ValueError, match="forward chain"):
        ddpm.forward_chain(noise, list(range(0, 101)))


def test_progress_bar_only_when_asked_or_long(capsys):
    ddpm = DDPM(num_steps=20)
    ddpm.sample(_zero_eps, torch.randn(3, 2))
    ddpm.forward_chain(torch.randn(3, 2), [5, 20])
    assert capsys.readouterr().err == ""  # short calls stay quiet by default
    ddpm.sample(_zero_eps, torch.randn(3, 2), progress=True)
    assert "DDPM sampling" in capsys.readouterr().err


def test_a_long_sampling_loop_shows_its_bar_without_being_asked(monkeypatch, capsys):
    monkeypatch.setattr("lessons.progress.QUIET_SECONDS", 0.0)  # every loop counts as long
    DDPM(num_steps=5).sample(_zero_eps, torch.randn(3, 2))
    assert "DDPM sampling" in capsys.readouterr().err
    DDPM(num_steps=5).sample(_zero_eps, torch.randn(3, 2), progress=False)
    assert capsys.readouterr().err == ""
