"""Distances between point clouds and the shape of trajectories."""

import torch

from lessons.checks import check_finite, check_instance, check_number, check_points
from lessons.trajectory import Trajectory


def _check_samples(x, name: str = "x", min_rows: int = 1) -> torch.Tensor:
    """Check that x is a real tensor (B, ...) of finite values with at least min_rows samples; return it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor of shape (B, ...), got {type(x).__name__}.")
    if x.ndim == 0 or x.is_complex():
        raise ValueError(
            f"{name} must be a real tensor of shape (B, ...), got shape {tuple(x.shape)} of {x.dtype}."
        )
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} sample{'s' * (min_rows > 1)}, got {x.shape[0]}.")
    if x[0].numel() == 0:
        raise ValueError(f"{name} has no coordinates per sample (shape {tuple(x.shape)}).")
    return check_finite(x, name)


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance between distinct rows of x (B, ...): sum_{i != j} |x_i - x_j| / (B (B - 1))."""
    _check_samples(x, "x", min_rows=2)
    flat = x.reshape(x.shape[0], -1).double()
    return float(torch.cdist(flat, flat).sum() / (flat.shape[0] * (flat.shape[0] - 1)))


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Energy distance 2 E|A - B| - E|A - A'| - E|B - B'| (Szekely), >= 0, zero iff same law.

    The within-set means exclude the zero diagonal (U-statistics), so the estimate is unbiased.
    """
    check_points(a, "a")
    check_points(b, "b", a.shape[1])
    if min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(
            f"the energy distance needs at least 2 points in each set (it averages over pairs), "
            f"got {a.shape[0]} and {b.shape[0]}."
        )
    _check_samples(a, "a")
    _check_samples(b, "b")
    a, b = a.double().cpu(), b.double().cpu()
    return float(2 * torch.cdist(a, b).mean() - mean_pairwise_distance(a) - mean_pairwise_distance(b))


def straightness(traj: Trajectory) -> float:
    """Liu et al.'s straightness: mean over samples of int_0^1 ||(x_1 - x_0) - dx/dt||^2 dt.

    Zero exactly when every path is a straight line run at constant speed. Computed from the
    recorded states, with dx/dt taken constant on each recorded step.
    """
    return float(straightness_per_sample(traj).mean())


def _check_trajectory(traj) -> Trajectory:
    """Check that traj is a Trajectory with increasing finite times ts (S+1,) and finite states xs (S+1, B, ...)."""
    check_instance(traj, Trajectory, "traj", "the result of solve_ode")
    ts, xs = traj.ts, traj.xs
    if not isinstance(ts, torch.Tensor) or ts.ndim != 1 or len(ts) < 2:
        got = tuple(ts.shape) if isinstance(ts, torch.Tensor) else type(ts).__name__
        raise ValueError(f"traj.ts must be a tensor of at least two times, shape (S+1,), got {got}.")
    check_finite(ts, "traj.ts")
    if not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError("traj.ts must increase strictly (noise at ts[0], data at ts[-1]).")
    if not isinstance(xs, torch.Tensor) or xs.ndim < 2 or xs.shape[0] != len(ts):
        got = tuple(xs.shape) if isinstance(xs, torch.Tensor) else type(xs).__name__
        raise ValueError(
            f"traj.xs must have shape ({len(ts)}, B, ...), one state per time in traj.ts, got {got}."
        )
    _check_samples(xs[0], "traj.xs[0]")
    check_finite(xs, "traj.xs")
    return traj


def straightness_per_sample(traj: Trajectory) -> torch.Tensor:
    """int_0^1 ||(x_1 - x_0) - dx/dt||^2 dt for each path, (B,); its mean is ``straightness``."""
    _check_trajectory(traj)
    xs = traj.xs.reshape(traj.xs.shape[0], traj.xs.shape[1], -1)  # (S+1, B, D)
    dt = (traj.ts[1:] - traj.ts[:-1]).to(xs.dtype)[:, None, None]  # (S, 1, 1)
    chord = (xs[-1] - xs[0])[None] / (traj.ts[-1] - traj.ts[0])  # (1, B, D)
    gap = (xs[1:] - xs[:-1]) - dt * chord  # (S, B, D)
    return ((gap**2).sum(-1) / dt[..., 0]).sum(0)


def path_energy(traj: Trajectory) -> float:
    """Kinetic energy of the paths: mean over samples of int_0^1 ||dx/dt||^2 dt.

    From the recorded states, with dx/dt constant on each step: sum_k ||x_{k+1} - x_k||^2 / dt_k.
    """
    _check_trajectory(traj)
    xs = traj.xs.reshape(traj.xs.shape[0], traj.xs.shape[1], -1).double()  # (S+1, B, D)
    dt = (traj.ts[1:] - traj.ts[:-1]).double()[:, None]  # (S, 1)
    return float((((xs[1:] - xs[:-1]) ** 2).sum(-1) / dt).sum(0).mean())


def normalized_path_energy(traj: Trajectory, w2_squared: float) -> float:
    """Tong et al.'s NPE = |PE - W2^2(source, target)| / W2^2(source, target), PE = path_energy(traj).

    The dynamic (Benamou-Brenier) form of OT says PE >= W2^2 for any flow between the two laws,
    with equality only for the OT flow, so NPE = 0 means the flow moves mass as cheaply as possible.
    """
    w2_squared = check_number(
        w2_squared, "w2_squared (the squared W2 between source and target)", low=0, low_open=True
    )
    return abs(path_energy(traj) - w2_squared) / w2_squared
