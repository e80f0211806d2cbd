"""The checks of lesson 07's exercises: a clipped DDIM step, the Frechet distance of two feature sets, bits/dim."""

import math

import torch

from lessons.checkpoints import checkpoint_path
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor, _z_judge
from lessons.image_metrics import frechet_distance
from lessons.image_training import clip_data_prediction, generate, load_image_model

LESSON = "07_mnist"  # the lesson's file name, and that of its solutions file solutions/07_mnist.py


def _clipped_steps(x, eps, a_t, s_t, a_s, s_s) -> dict:
    """What each common slip returns for the step x_t -> x_s (B, ...) from the noise guess eps."""
    guess = (x - s_t * eps) / a_t  # the data guess, unclipped

    def step(data_hat):  # the noise guess recomputed from the clipped data guess, then DDIM
        return a_s * data_hat + s_s * (x - a_t * data_hat) / s_t

    return {
        "the data guess left unclipped (plain DDIM)": a_s * guess + s_s * eps,
        "eps_hat kept for the noise after clipping": a_s * guess.clamp(-1, 1) + s_s * eps,
        "the new state x_s clipped, not the data guess": (a_s * guess + s_s * eps).clamp(-1, 1),
        "the data guess clipped to [0, 1], not [-1, 1]": step(guess.clamp(0, 1)),
    }


def _check_clipped_ddim_step(answer) -> Feedback:
    model, _ = load_image_model(checkpoint_path("mnist", "ddpm_small.pt"))  # the lesson's DDPM network
    schedule, labels = DiscreteVPSchedule(DDPM()), torch.arange(16) % 10
    noise = torch.randn(16, 1, 28, 28, generator=_seeded(70))
    # the states the lesson's sampler visits, and its grid: DDPM's steps k = 1000, 750, ..., 0
    path = generate(model, "ddpm", noise, nfe=4, cond=labels, clip=True)

    @torch.no_grad()
    def eps_model(x, t, cond=None):  # the float32 network, read in float64
        return model(x=x.float(), t=t.float(), cond=cond).double()

    clipped, ts = clip_data_prediction(eps_model, schedule), path.ts.double()
    c, k = schedule(ts), [round(1000 * (1 - t)) for t in ts.tolist()]
    cases, wrong = {}, {}
    for i in range(len(ts) - 1):
        x = path.xs[i].double()
        eps = eps_model(x, ts[i].expand(16), labels)
        a_t, s_t, a_s, s_s = (float(v[j]) for j in (i, i + 1) for v in (c.alpha, c.sigma))
        case = f"step {i + 1} (k = {k[i]} -> {k[i + 1]})"
        got = answer(x.clone(), eps.clone(), a_t, s_t, a_s, s_s)
        want = ddim(clipped, x, schedule, ts[i : i + 2], cond=labels).final
        cases[case] = (_tensor(got, x.shape, "clipped_ddim_step's x_s"), want)
        wrong[case] = _clipped_steps(x, eps, a_t, s_t, a_s, s_s)
    hints = {
        "the data guess left unclipped (plain DDIM)": "clip the data guess to the pixel range, "
        "((x - sigma_t eps_hat) / alpha_t).clamp(-1, 1): near pure noise (alpha_t about 0.006) it lies far outside.",
        "eps_hat kept for the noise after clipping": "the noise guess must agree with the clipped data guess: "
        "eps = (x - alpha_t data_hat) / sigma_t, so that x_t = alpha_t data_hat + sigma_t eps still holds.",
        "the new state x_s clipped, not the data guess": "clip the prediction of the data, not the state: x_s still "
        "carries noise of level sigma_s and lies outside [-1, 1] until the last step.",
        "the data guess clipped to [0, 1], not [-1, 1]": "the models see pixels k / 127.5 - 1 in [-1, 1]: "
        "clip to [-1, 1].",
    }
    return _judge(
        "clipped_ddim_step",
        "On the 4 steps of a 4-step run of the lesson's DDPM network (16 digits), against lessons.ddim.ddim "
        "with lessons.image_training.clip_data_prediction",
        cases,
        1e-6,
        hints,
        wrong,
        "data_hat = ((x - sigma_t eps_hat) / alpha_t).clamp(-1, 1), eps = (x - alpha_t data_hat) / sigma_t, "
        "x_s = alpha_s data_hat + sigma_s eps.",
    )


def _root(cov: torch.Tensor) -> torch.Tensor:
    """The symmetric square root S^(1/2) of a covariance (D, D)."""
    evals, evecs = torch.linalg.eigh(cov)
    return evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T


def _fd(mean_term, cov_a, cov_b) -> torch.Tensor:
    """mean_term + tr(S_a + S_b - 2 (S_a^(1/2) S_b S_a^(1/2))^(1/2)), any square S_a, S_b of one size."""
    root = _root(cov_a)
    cross = torch.linalg.eigvalsh(root @ cov_b @ root).clamp_min(0).sqrt().sum()
    return mean_term + cov_a.trace() + cov_b.trace() - 2 * cross


def _feature_sets(gen) -> dict:
    """The check's pairs of feature sets (N, D), float64, each pair with as many rows in both sets."""
    mix_a, mix_b = torch.randn(2, 6, 6, generator=gen, dtype=torch.float64)
    weights = torch.randn(16, 32, generator=gen, dtype=torch.float64) / 4

    def relu_features(shift):  # like the classifier's: a ReLU layer, 4 units dead on every image
        f = torch.relu(torch.randn(120, 16, generator=gen, dtype=torch.float64) @ weights + shift)
        f[:, :4] = 0
        return f

    cloud = torch.randn(100, 8, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 2, 8)
    shift = torch.randn(8, generator=gen, dtype=torch.float64)
    return {
        "two correlated Gaussian clouds, 150 rows in 6D": (
            torch.randn(150, 6, generator=gen, dtype=torch.float64) @ mix_a + 0.5,
            torch.randn(150, 6, generator=gen, dtype=torch.float64) @ mix_b,
        ),
        "ReLU features with 4 dead units, 120 rows in 32D": (relu_features(0.0), relu_features(0.3)),
        "one cloud and its shifted copy, 100 rows in 8D": (cloud, cloud + shift),
    }


def _frechet_slips(a: torch.Tensor, b: torch.Tensor) -> dict:
    """What each common slip returns for the feature sets a (N, D) and b (N, D), 0-dim tensors."""
    mean_term = ((a.mean(0) - b.mean(0)) ** 2).sum()
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    traces = cov_a.trace() + cov_b.trace()
    return {
        "torch.cov(features) (each row a variable) where torch.cov(features.T) belongs": _fd(
            mean_term, torch.cov(a), torch.cov(b)
        ),
        "covariances divided by N, not N - 1": _fd(
            mean_term, torch.cov(a.T, correction=0), torch.cov(b.T, correction=0)
        ),
        "tr(S_a^(1/2) S_b^(1/2)) where tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)) belongs": mean_term
        + traces
        - 2 * (_root(cov_a) @ _root(cov_b)).trace(),
        "the mean term not squared": _fd(mean_term.sqrt(), cov_a, cov_b),
        "the cross term -2 tr(...) left out": mean_term + traces,
    }


def _check_feature_frechet_distance(answer) -> Feedback:
    cases, wrong = {}, {}
    for case, (a, b) in _feature_sets(_seeded(71)).items():
        got = answer(a.clone(), b.clone())
        cases[case] = (
            _tensor(got, (), "feature_frechet_distance"),
            torch.tensor(frechet_distance(a, b), dtype=torch.float64),
        )
        wrong[case] = _frechet_slips(a, b)
    hints = {
        "torch.cov(features) (each row a variable) where torch.cov(features.T) belongs": "torch.cov and np.cov read "
        "each row as one variable: pass features.T to get the (D, D) covariance of the D features.",
        "covariances divided by N, not N - 1": "fit each Gaussian with the unbiased covariance (divided by N - 1), "
        "as torch.cov and np.cov do by default and lessons.image_metrics.frechet_distance does.",
        "tr(S_a^(1/2) S_b^(1/2)) where tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)) belongs": "the two roots do not commute: "
        "take the square root of the product, tr (S_a^(1/2) S_b S_a^(1/2))^(1/2) = tr (S_a S_b)^(1/2), e.g. "
        "scipy.linalg.sqrtm(S_a @ S_b).real.",
        "the mean term not squared": "the distance between the means enters squared: |mu_a - mu_b|^2.",
        "the cross term -2 tr(...) left out": "two equal Gaussians must be at distance 0: subtract "
        "2 tr (S_a^(1/2) S_b S_a^(1/2))^(1/2).",
    }
    return _judge(
        "feature_frechet_distance",
        "On 3 pairs of feature sets (correlated clouds, ReLU features with dead units, a shifted copy), against "
        "lessons.image_metrics.frechet_distance",
        cases,
        1e-6,
        hints,
        wrong,
        "mu and the unbiased covariance of each set, then |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).",
    )


def _gaussian_density(mean: torch.Tensor, std: float):
    """log N(x; mean, std^2 I) of images x (B, 1, 28, 28), summed over the pixels, (B,): the check's 'model'."""

    def log_density(x):
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != (1, 28, 28):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"log_density takes images (B, 1, 28, 28) in [-1, 1], got {shape}.")
        z = (x.double() - mean) / std
        return (-0.5 * z**2 - 0.5 * math.log(2 * math.pi * std**2)).flatten(1).sum(1)

    return log_density


def _expected_bpd(levels, mean, std, low, width) -> tuple:
    """Exact mean and standard deviation (B,) of the bpd of the points y = low + width (k + u), u ~ U[0, 1) per pixel,
    under N(mean, std^2): with c = low + width k - mean, E(c + width u)^2 = c^2 + c width + width^2 / 3."""
    c = (low + width * levels - mean).flatten(1)  # (B, D)
    square = c**2 + c * width + width**2 / 3  # E (y - mean)^2
    spread = c**2 * width**2 / 3 + c * width**3 / 3 + 4 * width**4 / 45  # Var (y - mean)^2
    dims = c.shape[1]
    log_p = (-square / (2 * std**2) - 0.5 * math.log(2 * math.pi * std**2)).sum(1)
    to_bits = dims * math.log(2)
    return -(log_p + dims * math.log(2 / 256)) / to_bits, (spread / (4 * std**4)).sum(1).sqrt() / to_bits


def _bpd_slips(levels, mean, std, want, sd) -> dict:
    """slip -> (the mean, the standard deviation) over the dequantization noise of what it returns, (B,) each;
    want and sd are those of the right answer."""
    at_levels = -(_gaussian_density(mean, std)(2 * levels / 255 - 1) + 784 * math.log(2 / 256))
    return {
        "the bin width 1/256 where 2/256 belongs": (want + 1, sd),
        "the bin term D log(2/256) left out": (want - 7, sd),
        "nats, not bits (no division by log 2)": (want * math.log(2), sd * math.log(2)),
        "no dequantization (the density at the levels k / 255 themselves)": (
            at_levels / (784 * math.log(2)),
            sd,
        ),
        "the dequantized pixels left in [0, 1], not mapped to [-1, 1]": _expected_bpd(
            levels, mean, std, 0.0, 1 / 256
        ),
    }


def _worst_z(got, mean, sd) -> float:
    """The largest |got - mean| / sd over the images; NaN counts as infinitely far."""
    z = ((got - mean).abs() / sd).max().item()
    return math.inf if math.isnan(z) else z


def _check_dequantized_bits_per_dim(answer) -> Feedback:
    gen = _seeded(72)
    levels = torch.randint(0, 256, (12, 1, 28, 28), generator=gen)  # digits-like: most pixels background
    levels = torch.where(torch.rand(levels.shape, generator=gen) < 0.3, levels, 0).double()
    pattern = 0.8 * torch.tanh(torch.randn(1, 28, 28, generator=gen, dtype=torch.float64))
    background = torch.full((1, 28, 28), -0.9, dtype=torch.float64)
    worst, slip_z = 0.0, {}
    for mean, std in ((pattern, 0.5), (background, 0.2)):  # N(mean, std^2) per pixel, on [-1, 1]
        torch.manual_seed(73)  # the learner's dequantization noise (review runs checks inside fork_rng)
        got = answer(_gaussian_density(mean, std), (levels / 255).float())  # pixels k / 255, as float32
        got = _tensor(got, (12,), "dequantized_bits_per_dim")
        want, sd = _expected_bpd(levels, mean, std, -1.0, 2 / 256)
        worst = max(worst, _worst_z(got, want, sd))
        for slip, (mean_slip, sd_slip) in _bpd_slips(levels, mean, std, want, sd).items():
            slip_z[slip] = max(slip_z.get(slip, 0.0), _worst_z(got, mean_slip, sd_slip))
    hints = {
        "the bin width 1/256 where 2/256 belongs": "the model lives on [-1, 1]: each of the 256 levels fills a bin "
        "2 / 256 wide there, so add D log(2 / 256) (with 1 / 256 you are 1 bit/dim off).",
        "the bin term D log(2/256) left out": "a density is not a probability: log P(levels) >= log p + D log(bin "
        "width); add D log(2 / 256) before converting.",
        "nats, not bits (no division by log 2)": "log is in nats: divide by D log 2 for bits per dimension.",
        "no dequantization (the density at the levels k / 255 themselves)": "add uniform noise inside each level "
        "first: x = 2 dequantize(pixels) - 1, (k + u) / 256 mapped to [-1, 1].",
        "the dequantized pixels left in [0, 1], not mapped to [-1, 1]": "dequantize gives (k + u) / 256 in [0, 1]; "
        "the density reads the models' coordinates: x = 2 dequantize(pixels) - 1.",
    }
    return _z_judge(
        "dequantized_bits_per_dim",
        "On 12 digit-like images under 2 Gaussian densities, against the exact mean over the dequantization noise "
        "(in closed form), on the worst of the 24 values",
        worst,
        4.5,
        hints,
        slip_z,
        "x = 2 dequantize(pixels) - 1; bpd = -(log_density(x) + D log(2 / 256)) / (D log 2), D = 784.",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "clipped_ddim_step": _check_clipped_ddim_step,
    "feature_frechet_distance": _check_feature_frechet_distance,
    "dequantized_bits_per_dim": _check_dequantized_bits_per_dim,
}
