# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From diffusion to flow matching: the lecture app
#
# Three explorers over the course library, with models pretrained by `scripts/train_2d_checkpoints.py`
# (they load in a second; nothing trains here). Serve it for a lecture with
# `.venv/bin/voila notebooks/app.ipynb --Voila.ip=127.0.0.1 --port=8866 --no-browser`.

# %%
import torch
from IPython.display import display

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
