"""The pretrained 2D models of the app, and one call that samples any method with any solver.

Checkpoints come from scripts/train_2d_checkpoints.py (checkpoints/2d/<name>.pt). DDPM, DDIM and
the probability-flow ODE share the eps-prediction network; I-CFM, OT-CFM and reflow are velocity
networks on the straight path; meanflow is an average-velocity network u(x, s, t) distilled from I-CFM
(sampled by lessons.mean_flow.mean_flow_sample). Everything here only calls the library.
"""

from pathlib import Path

import torch

from lessons.checkpoints import checkpoint_path, load_model
from lessons.checks import (
    check_finite,
    check_instance,
    check_matches_model,
    check_number,
    check_points,
    check_positive_int,
    check_seed,
    check_tensor,
    choose,
)
from lessons.ddim import churn_sampler, ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.mean_flow import AverageVelocityMLP
from lessons.models import MLP
from lessons.sde import probability_flow
from lessons.solvers import ODE_METHODS, solve_ode
from lessons.trajectory import Trajectory
from widgets.checks import check_text

CHECKPOINT_DIR = checkpoint_path("2d")  # made by scripts/train_2d_checkpoints.py
# method shown in the app -> checkpoint it needs
METHOD_CHECKPOINTS = {
    "DDPM": "ddpm",
    "DDIM": "ddpm",
    "PF-ODE": "ddpm",
    "I-CFM": "icfm",
    "OT-CFM": "otcfm",
    "reflow": "reflow",
}
SAMPLERS = ("DDPM", "DDIM")  # the samplers that ignore the ODE solver
PF_ODE_END = 0.999  # the score -eps / sigma is undefined at t = 1 (sigma = 0), stop one DDPM step short
REMAKE = "python scripts/train_2d_checkpoints.py"
# a checkpoint's settings["architecture"] -> the network it holds; without that key, the course MLP
ARCHITECTURES = {"mlp": MLP, "average_velocity": AverageVelocityMLP}


def build_network(settings: dict):
    """The untrained network a 2D checkpoint's settings describe: ARCHITECTURES[architecture](**settings['model'])."""
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a checkpoint's settings (a dict), got {type(settings).__name__}.")
    if not isinstance(settings.get("model"), dict):
        raise ValueError(
            "settings must hold the network's keyword arguments under 'model', such as "
            f"{{'model': {{'dim': 2, 'hidden': 96}}}}; got keys {sorted(map(str, settings))[:8]}."
        )
    architecture = settings.get("architecture", "mlp")
    check_text(architecture, "the settings' architecture")
    choose(architecture, ARCHITECTURES, "network architecture")
    return ARCHITECTURES[architecture](**settings["model"])


class PretrainedModels:
    """Loads checkpoints on first use and keeps them: ``models.get('icfm') -> (model, settings)``.

    Each network is built from its settings by build_network (the MLP, or AverageVelocityMLP for meanflow).
    """

    def __init__(self, directory: Path | str = CHECKPOINT_DIR):
        if not isinstance(directory, (str, Path)):
            raise TypeError(
                f"directory must be a folder path (a str or a Path), got {type(directory).__name__}."
            )
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ValueError(
                f"the checkpoint folder {self.directory} does not exist; make the 2D checkpoints with {REMAKE}."
            )
        self._loaded = {}

    def get(self, name: str):
        check_text(name, "the checkpoint name")
        if name not in self._loaded:
            names = {path.stem for path in self.directory.glob("*.pt")}
            if not names:
                raise ValueError(f"{self.directory} holds no checkpoints (*.pt); make them with {REMAKE}.")
            choose(name, names, f"checkpoint in {self.directory}")
            path = self.directory / f"{name}.pt"
            self._loaded[name] = load_model(path, build_network)
        return self._loaded[name]

    def ddpm_schedule(self) -> DiscreteVPSchedule:
        """The discrete VP schedule the eps network was trained on."""
        settings = self.get("ddpm")[1]
        return DiscreteVPSchedule(DDPM(settings["ddpm_steps"], settings["beta_start"], settings["beta_end"]))


@torch.inference_mode()
def sample_method(
    models: PretrainedModels,
    method: str,
    noise: torch.Tensor,
    steps: int,
    solver: str = "euler",
    seed: int = 0,
    stochasticity: float | None = None,
    use_churn: bool = False,
) -> Trajectory:
    """Trajectory (steps+1, B, 2) of one method from noise (B, 2): DDPM/DDIM by their samplers, the rest by solve_ode.

    stochasticity overrides eta for DDIM (eta = 1 is DDPM); with use_churn it is the churn of churn_sampler.
    """
    check_instance(models, PretrainedModels, "models", "PretrainedModels()")
    check_text(method, "method")
    choose(method, METHOD_CHECKPOINTS, "method")
    check_text(solver, "solver")
    choose(solver, ODE_METHODS, "ODE solver")
    check_positive_int(steps, "the number of steps")
    seed = check_seed(seed)
    check_tensor(noise, "noise")
    check_points(noise, "noise", dim=2)
    check_finite(noise, "noise")
    if not isinstance(use_churn, bool):
        raise TypeError(f"use_churn must be True or False, got {type(use_churn).__name__} {use_churn!r}.")
    if stochasticity is not None:
        check_number(stochasticity, "stochasticity (eta, or churn with use_churn)", low=0)
    if method not in SAMPLERS and (stochasticity is not None or use_churn):
        raise ValueError(
            f"stochasticity and use_churn set the noise of the DDPM and DDIM samplers; {method} is sampled "
            "by a deterministic ODE solver, so leave them out (or choose method 'DDIM')."
        )
    model, _ = models.get(METHOD_CHECKPOINTS[method])
    check_matches_model(noise, model, "noise")
    generator = torch.Generator().manual_seed(seed)
    if method in SAMPLERS:
        schedule, ts = models.ddpm_schedule(), torch.linspace(0, 1, steps + 1)
        amount = (1.0 if method == "DDPM" else 0.0) if stochasticity is None else stochasticity
        if use_churn:
            return churn_sampler(model, noise, schedule, ts, churn=amount, generator=generator)
        return ddim(model, noise, schedule, ts, eta=amount, generator=generator)
    if method == "PF-ODE":
        field = probability_flow(model, models.ddpm_schedule())
        return solve_ode(field, noise, steps=steps, method=solver, t_end=PF_ODE_END, rtol=1e-4, atol=1e-4)
    return solve_ode(model, noise, steps=steps, method=solver, rtol=1e-4, atol=1e-4)
