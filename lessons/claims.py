"""The claims ledger: every claim of the course is proven by a number beside a negative control.

A lesson proves a claim with ``prove("C4", value, threshold)``, which asserts that the measured value passes
the threshold, and runs the same check on something deliberately wrong with ``control("C4", value, threshold)``,
which asserts that it fails. Both write a row to the ledger folder (``COURSE_LEDGER_DIR``, by default
``build/claims`` of the checkout), which ``scripts/claims_ledger.py`` collects into one table.
"""

import json
import math
import os
import re
from pathlib import Path

# The claims of the course map (shared/COURSE.md), by id: (lesson, statement). tests/test_claims.py keeps them in step.
CLAIMS = {
    "C1": (
        "01",
        "the closed-form marginal q(x_t given x_0) matches running the step-by-step forward chain (mean and variance)",
    ),
    "C2": (
        "01",
        "a variance-preserving schedule keeps alpha^2 + sigma^2 = 1 and unit data stay unit variance along the path",
    ),
    "C3": (
        "01",
        "an epsilon-prediction model trained with the DDPM loss, sampled by ancestral sampling, reproduces the 2D target (distance to target small)",
    ),
    "C4": (
        "02",
        "DDIM with eta = 0 is deterministic; eta = 1 reproduces DDPM's sampling distribution; fewer DDIM steps degrade gracefully",
    ),
    "C5": (
        "02",
        "the reverse SDE and the probability-flow ODE share the same marginals (same distribution of samples, different paths)",
    ),
    "C6": (
        "02",
        "a DDPM step equals a DDIM step to a further time followed by forward renoising (in distribution)",
    ),
    "C7": (
        "03",
        "instantaneous change of variables: the CNF log-density from the integrated divergence matches the exact density of a flow whose density is known (an affine flow)",
    ),
    "C8": (
        "03",
        "Hutchinson's estimator is unbiased for the divergence, and its variance is measured against the exact trace",
    ),
    "C9": (
        "03",
        "adjoint gradients equal backprop-through-solver gradients, at a different memory and time cost (measured)",
    ),
    "C10": (
        "04",
        "the marginal vector field equals the posterior-weighted average of conditional fields; the learned field approaches it",
    ),
    "C11": ("04", "the CFM loss and the FM loss have the same gradient (they differ by a constant)"),
    "C12": (
        "04",
        "for a Gaussian conditional path the target field u_t(x given x_1) is the time derivative of the flow map; VE, VP and OT paths are instances",
    ),
    "C13": (
        "04",
        "CFM trains a CNF without simulation, far faster than maximum likelihood (measured on the same target)",
    ),
    "C14": (
        "05",
        "OT conditional flows are straight with constant speed; marginal trajectories are not straight where paths would cross",
    ),
    "C15": (
        "05",
        "minibatch OT couplings make trajectories straighter and few-step samples better than independent couplings (measured)",
    ),
    "C16": ("05", "reflow straightens the flow so that one or two Euler steps give good samples"),
    "C17": (
        "05",
        "higher-order solvers reach a given sample quality with fewer function evaluations; the curve NFE vs quality is shown per path and solver",
    ),
    "C18": (
        "05",
        "which path needs fewer function evaluations for the same error depends on the target: shown both ways with exact fields (a target where the OT path wins, one where the VP path wins), consistent with the 2D benchmark",
    ),
    "C19": ("05", "flow matching works from a non-Gaussian source (one 2D distribution to another)"),
    "C20": (
        "06",
        "the DDIM sampler and the flow-matching Euler sampler give the same samples from the same network",
    ),
    "C21": (
        "06",
        "DDIM is invariant to a linear rescaling of (alpha_t, sigma_t); the flow Euler sampler is not",
    ),
    "C22": (
        "06",
        "eps, x, v and u predictions convert into one another exactly, and each loss is an eps-MSE with a weighting in log-SNR",
    ),
    "C23": ("06", "flow-matching weighting equals the v-MSE weighting under the cosine schedule"),
    "C24": (
        "06",
        "with the loss written as an integral over log-SNR, the training objective depends on the schedule only through its end points",
    ),
    "C25": (
        "06",
        "the SDE (f_t, g_t) and flow (alpha_t, sigma_t) descriptions convert into each other and give the same marginals",
    ),
    "C26": (
        "06",
        "logit-normal time sampling (as in Stable Diffusion 3) changes which times training concentrates on, measured on the loss per time",
    ),
    "C27": (
        "07",
        "on MNIST the flow-matching model reaches a given sample quality with fewer steps than the DDPM model, and the lesson separates why by changing one factor at a time (network output, schedule end points, sampler), over several seeds with intervals",
    ),
    "C28": (
        "08",
        "classifier-free guidance trades diversity for class accuracy as the guidance scale grows (measured)",
    ),
    "C29": (
        "08",
        "classifier-free guidance with w > 0 does not sample the tilted law p(x) p(c given x)^(1+w): on a class-labelled 2D Gaussian mixture with exact fields, guided samples differ from the exact tilted law beyond the data-vs-data band, and match the plain conditional law at w = 0",
    ),
    "C30": (
        "07",
        "on MNIST, reflow gives better one- and two-step samples than the flow it was trained from, with straighter trajectories; minibatch OT's effect at MNIST scale is measured",
    ),
    "C31": (
        "01",
        "the DDPM ELBO, computed on a 2D target with a known density, bounds the exact negative log-likelihood, and the simple epsilon loss is the ELBO with another weighting over log-SNR",
    ),
    "C32": (
        "02b",
        "the OU process reaches its stationary law N(0, sigma^2 / (2 theta)); Langevin dynamics with the exact score converges to the target with a bias that shrinks with the step size, and annealed Langevin reaches modes that plain Langevin does not",
    ),
    "C33": (
        "02b",
        "denoising score matching equals epsilon-prediction MSE up to a weighting and a constant, and Tweedie's formula gives the posterior mean (numerically)",
    ),
    "C34": (
        "02b",
        "an SDE built from a trained velocity model (its score recovered from the velocity) keeps the ODE's marginals for every noise level, and the noise level changes sample quality at a given NFE (measured)",
    ),
    "C35": (
        "09",
        "the autoencoder's KL term equals its closed form for diagonal Gaussians, and its reconstructions keep the digit (classifier accuracy measured)",
    ),
    "C36": (
        "09",
        "flow matching in the autoencoder's latent space reaches a given sample quality with less training compute than in pixel space (measured on the same classifier Frechet distance)",
    ),
    "C37": (
        "09",
        "a DiT block with adaLN-zero is the identity at initialisation, and a DiT trained with latent flow matching draws digits of the requested class (classifier accuracy measured; compared with the U-Net at equal parameters)",
    ),
    "C38": (
        "10",
        "a second-order multistep solver reaches DDIM's 50-step quality in at most half the steps on the same trained model",
    ),
    "C39": (
        "10",
        "a one-step distilled model beats its teacher's one-step Euler sample and is compared with reflow at 1 and 2 NFE on identical work",
    ),
}

# Claims of the course map whose proof is the work of an open issue, not written yet: the ledger lists them as
# pending, and the completeness checks skip them. Remove a claim from here in the change that proves it.
PENDING: dict[str, str] = {}

SENSES = ("<=", ">=")


def ledger_dir() -> Path | None:
    """Where rows are written: COURSE_LEDGER_DIR, else build/claims of the checkout; None outside a checkout."""
    if os.environ.get("COURSE_LEDGER_DIR"):
        return Path(os.environ["COURSE_LEDGER_DIR"])
    root = Path(__file__).resolve().parents[1]
    return root / "build" / "claims" if (root / "pyproject.toml").exists() else None


def _check_sense(sense) -> str:
    if not isinstance(sense, str) or sense not in SENSES:
        raise ValueError(
            f"sense must be '<=' (smaller is better) or '>=' (larger is better), got {sense!r}; "
            "strict '<' and '>' are not offered: a claim passes on its threshold."
        )
    return sense


def _real(value, name: str) -> float:
    """A Python float from a number, a numpy scalar or a one-element tensor; anything else is a TypeError."""
    if hasattr(value, "numel") and hasattr(value, "item"):  # a torch tensor
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be one number, got a tensor of shape {tuple(value.shape)}; reduce it first."
            )
        value = value.detach().item() if hasattr(value, "detach") else value.item()
    elif hasattr(value, "item") and getattr(value, "size", None) == 1:  # a numpy scalar or 0-d array
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}.")
    return float(value)


def _kind(x: float) -> str:
    return "NaN" if math.isnan(x) else f"infinite ({x})"


def passes(value: float, threshold: float, sense: str = "<=") -> bool:
    """value <= threshold (sense '<=') or value >= threshold (sense '>='); NaN never passes."""
    _check_sense(sense)
    value, threshold = _real(value, "value"), _real(threshold, "threshold")
    return bool(value <= threshold) if sense == "<=" else bool(value >= threshold)


def _record(kind: str, claim: str, what: str, value: float, threshold: float, sense: str, ok: bool) -> None:
    folder = ledger_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")[:60] or "check"
    row = {
        "claim": claim,
        "lesson": CLAIMS[claim][0],
        "kind": kind,
        "what": what,
        "value": value,
        "threshold": threshold,
        "sense": sense,
        "ok": ok,
    }
    (folder / f"{claim}.{kind}.{slug}.json").write_text(json.dumps(row))


def _check(claim: str, value, threshold, sense: str, what: str) -> tuple[float, float]:
    if not isinstance(claim, str) or claim not in CLAIMS:
        hint = (
            f" (did you mean {claim.upper()!r}?)"
            if isinstance(claim, str) and claim.upper() in CLAIMS
            else ""
        )
        raise ValueError(
            f"unknown claim {claim!r}{hint}; a claim id is the letter C and its number, as a string: "
            f"'C1' to 'C{len(CLAIMS)}' (see lessons.claims.CLAIMS)."
        )
    if not isinstance(what, str):
        raise TypeError(f"what must be a short sentence (a str) naming the check, got {type(what).__name__}.")
    _check_sense(sense)
    label = f"{claim} ({what})" if what else claim
    value, threshold = _real(value, f"the value of {label}"), _real(threshold, f"the threshold of {label}")
    if not math.isfinite(threshold):
        raise ValueError(
            f"the threshold of {label} is {_kind(threshold)}; compute a finite one from a band or a standard error."
        )
    if not math.isfinite(value):  # a NaN must never pass a proof, nor make a control look rejected
        raise ValueError(
            f"the value of {label} is {_kind(value)}: the measurement went wrong (a NaN or inf reached it), so it can "
            "neither prove nor control anything; find where the NaN or inf arises."
        )
    return value, threshold


def prove(claim: str, value, threshold, sense: str = "<=", what: str = "") -> float:
    """Assert that the measured value passes the threshold (the claim holds); record it; return the value."""
    value, threshold = _check(claim, value, threshold, sense, what)
    ok = passes(value, threshold, sense)
    _record("proof", claim, what, value, threshold, sense, ok)
    assert ok, f"{claim} fails: {what or 'the check'} measured {value:.4g}, needs {sense} {threshold:.4g}."
    return value


def control(claim: str, value, threshold, sense: str = "<=", what: str = "") -> float:
    """Assert that the same check REJECTS a deliberately wrong case (value does not pass); record it; return it."""
    value, threshold = _check(claim, value, threshold, sense, what)
    rejected = not passes(value, threshold, sense)
    _record("control", claim, what, value, threshold, sense, rejected)
    assert rejected, (
        f"the control for {claim} passed ({what or 'the check'}: {value:.4g} {sense} "
        f"{threshold:.4g}), so the check cannot tell right from wrong: strengthen it."
    )
    return value


def read_ledger(folder: Path | None = None) -> list[dict]:
    """Every row written so far, sorted by claim number, proofs first (none yet: an empty list)."""
    if folder is not None and (isinstance(folder, bool) or not isinstance(folder, (str, os.PathLike))):
        raise TypeError(
            "folder must be the ledger folder (a str or pathlib.Path), or None for the default one "
            f"(COURSE_LEDGER_DIR, else build/claims); got {type(folder).__name__} {folder!r}."
        )
    folder = ledger_dir() if folder is None else Path(folder)
    if folder is None or not folder.exists():
        return []
    if not folder.is_dir():
        raise ValueError(
            f"folder {folder} is a file, not a folder: give the ledger folder that holds the C*.json rows "
            "(COURSE_LEDGER_DIR, by default build/claims)."
        )
    rows = []
    for path in folder.glob("C*.json"):
        try:
            row = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(
                f"the ledger row {path} is not valid JSON; delete it and rerun its lesson."
            ) from None
        if not isinstance(row, dict) or not re.fullmatch(r"C\d+", str(row.get("claim"))) or "kind" not in row:
            raise ValueError(f"the ledger row {path} is not a claims row; delete it and rerun its lesson.")
        rows.append(row)
    return sorted(rows, key=lambda r: (int(r["claim"][1:]), r["kind"] != "proof", r.get("what", "")))
