# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From diffusion to flow matching: the lecture app
#
# Five explorers over the course library, with models pretrained by the course's own scripts: they load in
# a second and nothing trains here. Each explorer fits one screen; scroll to the next.

# %%
# Serve the app with `make app` (Voila, on this machine only, with the course's template: no request
# leaves the machine). Voila hides this cell's code, so the audience sees no command line.
import torch
from IPython.display import display

from lessons.checkpoints import checkpoint_path
from lessons.image_metrics import load_classifier
from lessons.image_training import load_image_model
from widgets.few_steps_explorer import FewStepsExplorer
from widgets.guidance import guidance_explorer
from widgets.models2d import PretrainedModels
from widgets.sampler_explorer import SamplerExplorer
from widgets.schedule_explorer import ScheduleExplorer
from widgets.trajectory_explorer import TrajectoryExplorer

torch.set_num_threads(1)  # tiny networks: one thread answers fastest
models = PretrainedModels()

# %% [markdown]
# ## 1. Noise schedules
# A schedule says how much data, alpha(t), and how much noise, sigma(t), make up x_t.

# %%
schedules = ScheduleExplorer()
display(schedules)

# %% [markdown]
# ## 2. Straight vs curved
# Diffusion samplers and flows trained with independent couplings follow curved paths; minibatch OT
# couplings and reflow straighten them, so a few Euler steps suffice.

# %%
trajectories = TrajectoryExplorer(models=models, left="DDIM", right="OT-CFM")
display(trajectories)

# %% [markdown]
# ## 3. Samplers
# One dial runs from DDIM to DDPM; a rescaling of (alpha, sigma) shows that DDIM depends only on the
# signal-to-noise ratio, while the flow Euler sampler depends on the scale too.

# %%
samplers = SamplerExplorer(models=models)
display(samplers)

# %% [markdown]
# ## 4. Few steps
# The same budget of network calls, two samplers side by side: DDIM against DPM-Solver++(2M) and EDM's Heun
# sampler on one diffusion network, Euler steps of a flow and of its rectified flow, and MeanFlow's one-step jumps
# (lesson 10).

# %%
few_steps = FewStepsExplorer(models=models)
display(few_steps)

# %% [markdown]
# ## 5. Guidance
# Classifier-free guidance of the MNIST flow of lesson 08: asking harder for a digit makes samples the
# classifier recognises more surely, and that look more alike. The first scale is ready at once; the
# others are made in the background (a few seconds each) and join the slider.

# %%
cfm_model, _ = load_image_model(checkpoint_path("mnist", "cfm_small.pt"))
guidance = guidance_explorer(
    cfm_model, [0.0, 0.5, 1.0, 2.0, 4.0], load_classifier(), per_class=8, nfe=8, zoom=5
)
display(guidance)
