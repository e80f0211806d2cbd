"""Solutions of lesson 08's checked exercises, one function per exercise (lessons.exercises checks them)."""

import math

import torch


def guided_velocity(model, x, t, cond, w):
    """(1 + w) v(x, t, c) - w v(x, t, null), (B, D), from one batched call of the network on (x, x)."""
    null = torch.full_like(cond, model.num_classes)  # the 'no class' token is the extra label num_classes
    both = model(x=torch.cat([x, x]), t=torch.cat([t, t]), cond=torch.cat([cond, null]))
    v_cond, v_uncond = both.chunk(2)
    return (1 + w) * v_cond - w * v_uncond


def noised_class_posterior(x, t, class_laws, priors):
    """p_t(c | x), (B, C): Bayes' rule with the noised likelihoods p_t(x | c) of x_t = t data + (1 - t) noise."""
    log_joint = torch.stack(
        [math.log(p) + law.log_prob(x, alpha=t, sigma=1 - t) for law, p in zip(class_laws, priors)], dim=1
    )  # log p(c) + log p_t(x | c), (B, C)
    return torch.softmax(log_joint, dim=1)


def tilted_confidence(conditional, marginal, class_prior, w, n):
    """The mean of p(c | x) under p(x) p(c | x)^(1+w), from n draws of p(x | c) weighted by p(c | x)^w; a float."""
    x = conditional.sample(n)
    p = torch.exp(math.log(class_prior) + conditional.log_prob(x) - marginal.log_prob(x))  # p(c | x), (n,)
    weights = p**w
    return ((weights * p).sum() / weights.sum()).item()
