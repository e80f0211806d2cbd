"""The checks of lesson 08's exercises: the guided field in one call, a noised class posterior, the tilted law."""

import functools
import math

import torch

from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor, _z_judge
from lessons.guidance import ClassifierFreeGuidance, sample_tilted
from lessons.mixture import GaussianMixture
from lessons.models import MLP

LESSON = "08_guidance"  # the lesson's file name, and that of its solutions file solutions/08_guidance.py

# the lesson's 2D classes (section 2): two overlapping components each, equal priors
LESSON_MEANS = ([[-1.0, 0.0], [0.5, 1.5]], [[1.0, 0.0], [-0.5, -1.5]])


def _lesson_laws() -> tuple:
    """(p(x | c = 0), p(x)): the lesson's class 0 and all its classes, as GaussianMixtures."""
    return GaussianMixture(LESSON_MEANS[0], 0.6), GaussianMixture(LESSON_MEANS[0] + LESSON_MEANS[1], 0.6)


class _CountingModel(torch.nn.Module):
    """A class-conditional network that counts its calls, so that a check can ask for one batched call."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.inner, self.num_classes, self.calls = model, model.num_classes, 0

    def forward(self, x, t, cond=None):
        self.calls += 1
        return self.inner(x=x, t=t, cond=cond)


def _check_guided_velocity(answer) -> Feedback:
    torch.manual_seed(8)  # the network's weights (review runs checks inside torch.random.fork_rng)
    net = MLP(dim=2, hidden=32, depth=2, num_classes=3).double()
    counted, gen, cases, wrong, calls = _CountingModel(net), _seeded(80), {}, {}, 0
    for w in (0.0, 0.5, 3.0):
        x = torch.randn(64, 2, generator=gen, dtype=torch.float64)
        t = torch.rand(64, generator=gen, dtype=torch.float64)
        cond = torch.randint(0, 3, (64,), generator=gen)
        counted.calls = 0
        with torch.no_grad():
            got = answer(counted, x.clone(), t.clone(), cond.clone(), w)
            calls = max(calls, counted.calls)
            case = f"w = {w:g}"
            cases[case] = (
                _tensor(got, x.shape, "guided_velocity"),
                ClassifierFreeGuidance(net, w)(x=x, t=t, cond=cond),
            )
            v = {label: net(x=x, t=t, cond=torch.full_like(cond, label)) for label in (0, 2, 3)}
            v_cond, v_null = net(x=x, t=t, cond=cond), v[3]
        wrong[case] = {
            "(1 + w) v_uncond - w v_cond, the two swapped": (1 + w) * v_null - w * v_cond,
            "(1 - w) v_cond + w v_uncond, the sign of w flipped": (1 - w) * v_cond + w * v_null,
            "w (v_cond - v_uncond), the plain conditional term left out": w * (v_cond - v_null),
            "num_classes - 1 as the 'no class' label": (1 + w) * v_cond - w * v[2],
            "class 0 as the 'no class' label": (1 + w) * v_cond - w * v[0],
        }
    hints = {
        "(1 + w) v_uncond - w v_cond, the two swapped": "the conditional prediction gets the weight 1 + w: guidance "
        "moves from the unconditional field towards the conditional one, and beyond it.",
        "(1 - w) v_cond + w v_uncond, the sign of w flipped": "that is a mix towards the unconditional model; "
        "guidance extrapolates away from it: v_cond + w (v_cond - v_uncond).",
        "w (v_cond - v_uncond), the plain conditional term left out": "w = 0 must give the plain conditional model: "
        "(1 + w) v_cond - w v_uncond = v_cond + w (v_cond - v_uncond).",
        "num_classes - 1 as the 'no class' label": "labels 0..num_classes - 1 are real classes; the 'no class' "
        "token is the extra index num_classes (torch.full_like(cond, model.num_classes)).",
        "class 0 as the 'no class' label": "0 is a real class; the 'no class' token is the extra index "
        "model.num_classes, the label that label dropout put in during training.",
    }
    feedback = _judge(
        "guided_velocity",
        "At w = 0, 0.5 and 3 with a fixed 3-class network, against lessons.guidance.ClassifierFreeGuidance",
        cases,
        1e-8,
        hints,
        wrong,
        "run the network once on (x, x) with the labels (cond, null), split with .chunk(2), "
        "return (1 + w) v_cond - w v_uncond.",
    )
    if feedback.passed and calls > 1:  # right numbers, but twice the network calls guidance needs
        return Feedback(
            "guided_velocity",
            "not right yet",
            f"guided_velocity: not right yet. Its values are right, but it calls the network {calls} times for "
            "one guided velocity. Hint: make it one batched call: torch.cat the batch with itself, the labels "
            "with the null labels (and t with t), run the network once, and split its output with .chunk(2).",
        )
    return feedback


def _class_cases() -> dict:
    """case -> (class laws, priors): the lesson's two classes, and three classes with unequal priors."""
    three = (
        GaussianMixture([[-1.5, 1.0], [0.0, 2.0]], [0.5, 0.8], [0.3, 0.7]),
        GaussianMixture([[1.0, -0.5]], 0.7),
        GaussianMixture([[0.5, 1.0], [-1.0, -1.5], [2.0, 1.5]], 0.4),
    )
    return {
        "the lesson's two classes": (tuple(GaussianMixture(m, 0.6) for m in LESSON_MEANS), (0.5, 0.5)),
        "three classes, priors 0.2, 0.5, 0.3": (three, (0.2, 0.5, 0.3)),
    }


def _check_noised_class_posterior(answer) -> Feedback:
    gen, cases, wrong = _seeded(81), {}, {}
    for case, (laws, priors) in _class_cases().items():
        # all the classes as one mixture of their components, weighted by p(c) p(component | c)
        everything = GaussianMixture(
            torch.cat([law.means for law in laws]),
            torch.cat([law.stds for law in laws]),
            torch.cat([p * law.weights for law, p in zip(laws, priors)]),
        )
        owner = torch.cat([torch.full((len(law.weights),), c) for c, law in enumerate(laws)])  # (K,)
        one_hot = torch.nn.functional.one_hot(owner, len(laws)).double()  # (K, C)
        t = torch.rand(200, generator=gen, dtype=torch.float64)
        data = everything.sample(200, generator=gen).double()
        x = t[:, None] * data + (1 - t[:, None]) * torch.randn(200, 2, generator=gen, dtype=torch.float64)
        got = answer(x.clone(), t.clone(), laws, priors)
        want = everything.posterior_weights(x, t, 1 - t) @ one_hot  # p_t(c | x): its components' posteriors
        cases[case] = (_tensor(got, (200, len(laws)), "noised_class_posterior"), want)
        log_prior = torch.tensor(priors, dtype=torch.float64).log()

        # log p(x_t = x | c) for x_t = alpha data + sigma noise, (B, C)
        def log_lik(alpha, sigma, x=x, laws=laws):
            return torch.stack([law.log_prob(x, alpha, sigma) for law in laws], dim=1)

        wrong[case] = {
            "p(x | c) of the data at every t (alpha = 1, sigma = 0)": torch.softmax(
                log_prior + log_lik(1.0, 0.0), dim=1
            ),
            "alpha = 1 - t, sigma = t: t = 1 read as noise": torch.softmax(
                log_prior + log_lik(1 - t, t), dim=1
            ),
            "the priors p(c) left out": torch.softmax(log_lik(t, 1 - t), dim=1),
            "p(c) p_t(x | c), not divided by p_t(x)": (log_prior + log_lik(t, 1 - t)).exp(),
        }
    hints = {
        "p(x | c) of the data at every t (alpha = 1, sigma = 0)": "x is a noisy point x_t: its likelihood is that of "
        "t data + (1 - t) noise, law.log_prob(x, alpha=t, sigma=1 - t).",
        "alpha = 1 - t, sigma = t: t = 1 read as noise": "in this course t = 0 is noise and t = 1 is data: "
        "x_t = t data + (1 - t) noise, so alpha = t and sigma = 1 - t.",
        "the priors p(c) left out": "Bayes' rule weighs each class's likelihood by its prior: p(c) p_t(x | c).",
        "p(c) p_t(x | c), not divided by p_t(x)": "that is the joint density; divide by p_t(x) = sum over c of "
        "p(c) p_t(x | c), so that each row sums to 1 (a softmax over the classes of the log-joint).",
    }
    return _judge(
        "noised_class_posterior",
        "At 200 noisy points at random times on 2 class mixtures, against the posterior weights of all the "
        "components (lessons.mixture.GaussianMixture.posterior_weights) summed per class",
        cases,
        1e-6,
        hints,
        wrong,
        "log p_t(x | c) = law.log_prob(x, alpha=t, sigma=1 - t); add log p(c), then softmax over the classes.",
    )


N_TILTED, N_TILTED_REF, TILTED_SCALES = 10_000, 50_000, (1.0, 2.0)


@functools.cache  # the same seeded draws at every run: the rejection reference is computed once a session
def _tilted_references() -> dict:
    """w -> {slip: (value, per-draw std)}, each slip's value estimated from draws of p(x | c); under None: the
    exact tilted mean of p(c | x) (from sample_tilted), a right answer's per-draw std and the exact law's std."""
    conditional, marginal = _lesson_laws()

    def posterior(x):  # p(c = 0 | x), (B,)
        return torch.exp(math.log(0.5) + conditional.log_prob(x) - marginal.log_prob(x)).double()

    out = {}
    for i, w in enumerate(TILTED_SCALES):
        exact = posterior(sample_tilted(conditional, marginal, 0.5, w, N_TILTED_REF, _seeded(82 + i)))
        draws = conditional.sample(N_TILTED_REF, generator=_seeded(90 + i))  # of p(x | c), the proposal
        p = posterior(draws)  # (N_TILTED_REF,)

        def weighted(values, weights):  # a self-normalised estimate and its per-draw std (delta method)
            mean = (weights * values).sum() / weights.sum()
            return mean.item(), (weights * (values - mean) / weights.mean()).std().item()

        out[w] = {
            None: (exact.mean().item(), weighted(p, p**w)[1], exact.std().item()),
            "weights p(c | x)^(1 + w) on draws of p(x | c)": weighted(p, p ** (1 + w)),
            "no weights: the mean under p(x | c)": (p.mean().item(), p.std().item()),
            "weights not normalised: the mean of p(c | x)^w p(c | x)": (
                (p ** (1 + w)).mean().item(),
                (p ** (1 + w)).std().item(),
            ),
            "the prior p(c) left out of p(c | x)": weighted(p / 0.5, p**w),
        }
    return out


def _check_tilted_confidence(answer) -> Feedback:
    conditional, marginal = _lesson_laws()
    n, n_ref, worst, slip_z = N_TILTED, N_TILTED_REF, 0.0, {}
    for i, (w, table) in enumerate(_tilted_references().items()):
        torch.manual_seed(85 + i)  # the learner's draws
        got = float(_tensor(answer(conditional, marginal, 0.5, w, n), (), "tilted_confidence"))
        value, spread, ref_spread = table[None]  # the exact law's mean, from n_ref draws of its own
        worst = max(worst, abs(got - value) / (spread**2 / n + ref_spread**2 / n_ref) ** 0.5)
        for slip, (value, spread) in list(table.items())[1:]:  # the answer against each slip's value,
            z = abs(got - value) / (spread * (1 / n + 1 / n_ref) ** 0.5)  # in standard errors of both
            slip_z[slip] = max(slip_z.get(slip, 0.0), z)
    hints = {
        "weights p(c | x)^(1 + w) on draws of p(x | c)": "the draws of p(x | c) already carry one factor p(c | x), "
        "since p(x | c) is proportional to p(x) p(c | x): the weight is the rest, p(c | x)^w.",
        "no weights: the mean under p(x | c)": "that is the w = 0 law; the tilted law weighs each draw of p(x | c) "
        "by p(c | x)^w.",
        "weights not normalised: the mean of p(c | x)^w p(c | x)": "the tilted density is known only up to a "
        "constant: divide the weighted sum by the sum of the weights.",
        "the prior p(c) left out of p(c | x)": "p(c | x) = p(c) p(x | c) / p(x): without p(c) it is not a "
        "probability (here it reaches 2).",
    }
    return _z_judge(
        "tilted_confidence",
        f"At w = 1 and 2 with n = {n}, against the mean of p(c | x) over {n_ref} exact draws of the tilted law "
        "(lessons.guidance.sample_tilted, by rejection)",
        worst,
        4.5,
        hints,
        slip_z,
        "x = conditional.sample(n); p = exp(log p(c) + conditional.log_prob(x) - marginal.log_prob(x)); "
        "return sum(p^w p) / sum(p^w).",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {
    "guided_velocity": _check_guided_velocity,
    "noised_class_posterior": _check_noised_class_posterior,
    "tilted_confidence": _check_tilted_confidence,
}
