"""The course's library against the libraries people use, on identical inputs.

diffusers (DDPMScheduler, DDIMScheduler), Meta's flow_matching (affine paths, schedulers and their SNR
inverses) and TorchCFM (conditional flow matcher, exact OT plan). `make setup` installs them with
`pip install --no-deps` so that none can pull another torch.
"""

import math

import torch

try:
    from diffusers import DDIMScheduler, DDPMScheduler
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler, CosineScheduler, VPScheduler
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
    from torchcfm.optimal_transport import OTPlanSampler
except ImportError as err:  # a clear word instead of a bare ImportError
    raise ImportError(
        f"the reference libraries are missing ({err}); run `make setup`, which installs diffusers, "
        "flow-matching and torchcfm with --no-deps"
    ) from None

from model_helpers import gaussian_model, two_clouds

from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.optimal_transport import ot_assignment
from lessons.paths import GaussianPath
from lessons.schedules import CosineSchedule, LinearSchedule, VPSchedule

F64 = torch.float64


def _eps_model():
    """The ideal eps-prediction of a 2D Gaussian target on DDPM's discrete schedule (no training noise)."""
    ddpm = DDPM()
    return ddpm, gaussian_model(DiscreteVPSchedule(ddpm), torch.tensor([1.0, -0.5]), 0.4)


def test_ddpm_alpha_bars_match_diffusers():
    ours = DDPM().alpha_bars[1:]  # our k = 1..T is diffusers' timestep k - 1
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02).alphas_cumprod
    assert torch.allclose(ours.float(), theirs, rtol=1e-5, atol=1e-7)


def test_ddpm_ancestral_sampler_matches_diffusers_step_by_step():
    """Same noise and the same generator draws: DDPM.sample ('posterior' variance) vs DDPMScheduler('fixed_small')."""
    ddpm, model = _eps_model()
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ours = ddpm.sample(model, noise, generator=torch.Generator().manual_seed(1), keep_path=False).final
    sched = DDPMScheduler(beta_schedule="linear", variance_type="fixed_small", clip_sample=False)
    sched.set_timesteps(1000)
    x, g = noise.clone(), torch.Generator().manual_seed(1)
    for step in sched.timesteps:  # 999 ... 0
        eps = model(x=x, t=ddpm.t_of(int(step) + 1, F64).expand(64))
        x = sched.step(eps, int(step), x, generator=g).prev_sample.to(F64)
    assert torch.allclose(ours, x, atol=2e-4), (ours - x).abs().max()  # diffusers keeps float32 alpha-bars


def test_deterministic_ddim_matches_diffusers_on_the_same_grid():
    """DDIM eta = 0 over 50 of DDPM's steps; diffusers' 'trailing' spacing is the course's ddim_times grid."""
    ddpm, model = _eps_model()
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    ours = ddim(model, noise, DiscreteVPSchedule(ddpm), ddim_times(ddpm, 50, F64), eta=0.0).final
    sched = DDIMScheduler(clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")
    sched.set_timesteps(50)
    x = noise.clone()
    for step in sched.timesteps:  # 999, 979, ..., 19
        eps = model(x=x, t=ddpm.t_of(int(step) + 1, F64).expand(64))
        x = sched.step(eps, int(step), x, eta=0.0).prev_sample.to(F64)
    assert torch.allclose(ours, x, atol=1e-4), (ours - x).abs().max()


def test_gaussian_paths_match_flow_matching_affine_paths():
    noise, data = two_clouds(200)
    t = torch.rand(200, generator=torch.Generator().manual_seed(3)) * 0.98 + 0.01
    pairs = (
        (LinearSchedule(), CondOTScheduler()),
        (CosineSchedule(), CosineScheduler()),
        (VPSchedule(), VPScheduler()),
    )
    for ours, theirs in pairs:
        mine = GaussianPath(ours).sample(noise, data, t)
        ref = AffineProbPath(theirs).sample(x_0=noise, x_1=data, t=t)
        assert torch.allclose(mine.x_t, ref.x_t, atol=1e-5), type(ours).__name__
        assert torch.allclose(mine.velocity, ref.dx_t, atol=1e-4), type(ours).__name__


def test_closed_form_log_snr_inverse_matches_flow_matching_snr_inverse():
    t = torch.linspace(0.05, 0.95, 19, dtype=F64)
    for ours, theirs in ((CosineSchedule(), CosineScheduler()), (VPSchedule(), VPScheduler())):
        snr = theirs(t).alpha_t / theirs(t).sigma_t  # flow_matching's SNR is alpha / sigma
        assert torch.allclose(ours.time_at_log_snr(2 * torch.log(snr)), theirs.snr_inverse(snr), atol=1e-10)
        assert torch.allclose(ours.time_at_log_snr(ours.log_snr(t)), t, atol=1e-12)


def test_cfm_targets_match_torchcfm_with_sigma_zero():
    noise, data = two_clouds(100)
    t = torch.rand(100, generator=torch.Generator().manual_seed(4))
    _, x_t, u_t = ConditionalFlowMatcher(sigma=0.0).sample_location_and_conditional_flow(noise, data, t)
    mine = GaussianPath(LinearSchedule()).sample(noise, data, t)
    assert torch.allclose(mine.x_t, x_t, atol=1e-6) and torch.allclose(mine.velocity, u_t, atol=1e-6)


def test_exact_ot_pairing_costs_what_torchcfm_exact_plan_costs():
    noise, data = two_clouds(128, seed=5)
    plan = torch.as_tensor(OTPlanSampler(method="exact").get_map(noise, data))  # (B, B), a permutation / B
    cost = torch.cdist(noise.double(), data.double()) ** 2
    theirs = float((plan * cost).sum())
    ours = float(cost[torch.arange(128), ot_assignment(noise, data)].mean())
    assert math.isclose(ours, theirs, rel_tol=1e-9)
