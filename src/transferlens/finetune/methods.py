"""The six fine-tuning methods of :func:`~transferlens.finetune.loop.run_finetune`: options and per-step hooks.

Every method trains all weights with AdamW (cosine schedule) from the pretrained backbone and a new head;
they differ in what acts on top of that:

=========  =====================================================================================================
plain      nothing (AdamW fine-tuning)
l2sp       ``∇ += α(w − w⁰)`` on the backbone, ``β w`` on the head (Li et al., ICML 2018; :mod:`.regularizers`)
lpft       the head is first fitted in closed form on frozen features (Kumar et al., ICLR 2022)
wiseft     LP-FT training, then ``θ_α = (1 − α)θ₀ + αθ_ft`` swept over α, α chosen on validation
           (Wortsman et al., CVPR 2022); θ₀ = pretrained backbone + LP head
tpgm       per-tensor radii fitted on validation batches after every ``proj_freq`` steps, weights projected
           (Tian et al., CVPR 2023; :mod:`.optim.tpgm`)
ftp        FTP-AdamW, the new head excluded (Tian et al., NeurIPS 2023; :mod:`.optim.ftp`)
=========  =====================================================================================================

FTP's ``gamma_lr`` defaults to ``"auto"`` = ``min(0.1, max(1e-2, 3 / total_steps))`` (:func:`ftp_gamma_lr`).
γ is a row-L1 radius that moves by about ``gamma_lr`` per step (its Adam step is normalised), so over S
steps it can open by at most about ``S · gamma_lr``; the reference's 1e-2 lets it reach ~3 only after 300
steps, and in a 30-step run it pinned the backbone (-26 ID points against plain fine-tuning on ``digits``;
``docs/finetune_experiment.md``, "Short runs"). ``auto`` keeps the reference value from 300 steps on and
gives shorter runs the same budget of 3; the cap 0.1 stops a single positive hyper-gradient from closing a
tensor's radius at once (seen at 0.375). Whenever ``S · gamma_lr < 3`` (fewer than 30 steps under
``auto``) a warning says the constraint cannot open.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InputError, UsageError
from .optim.ftp import normalize_param_name
from .recipes import METHODS, make_optimizer

__all__ = ["METHODS", "OPTIONS", "DEFAULT_LR", "method_options", "parse_option", "ftp_gamma_lr", "Regime"]

FTP_REFERENCE_GAMMA_LR = 1e-2  # the official code's (hard-coded) γ learning rate
FTP_GAMMA_BUDGET = 3.0  # S · gamma_lr: how far (row-L1 units) γ can open over a run; 300 reference steps
FTP_MAX_AUTO_GAMMA_LR = 0.1  # larger steps let one positive hyper-gradient close a radius to its floor

OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "l2sp": {"alpha": 0.01, "beta": 0.01},
    "lpft": {"lp_C": 1.0},
    "wiseft": {"lp_C": 1.0, "alphas": tuple(i / 10 for i in range(11))},
    "tpgm": {"norm": "mars", "proj_lr": 1e-2, "max_iters": 1, "proj_freq": 1},
    "ftp": {"k": 1.0, "gamma_lr": "auto", "gamma_init": 1e-8},
}
# AdamW learning rate per method when none is given; LP-FT's second stage uses a smaller one (Kumar et al.).
DEFAULT_LR: dict[str, float] = {"plain": 1e-3, "l2sp": 1e-3, "lpft": 3e-4, "wiseft": 1e-3, "tpgm": 1e-3, "ftp": 1e-3}


def check_method(method: str) -> None:
    if method not in METHODS:
        raise UsageError(f"unknown fine-tuning method {method!r}; choose one of {', '.join(METHODS)}.")


def method_options(method: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The method's options: defaults overridden by ``given``; unknown names are a UsageError."""
    check_method(method)
    defaults = OPTIONS[method]
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(defaults) or "none"
        raise UsageError(f"method {method!r} takes no option {', '.join(map(repr, unknown))} (its options: {known}).")
    opts = {**defaults, **given}
    if method == "wiseft":
        alphas = tuple(float(a) for a in opts["alphas"])
        if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
            raise UsageError(f"wiseft alphas must be a non-empty list of numbers in [0, 1], got {opts['alphas']!r}.")
        opts["alphas"] = alphas
    if method == "ftp" and opts["gamma_lr"] != "auto":
        try:
            opts["gamma_lr"] = float(opts["gamma_lr"])
        except (TypeError, ValueError):
            raise UsageError(f"ftp gamma_lr must be 'auto' or a number > 0, got {opts['gamma_lr']!r}.") from None
        if not (opts["gamma_lr"] > 0 and math.isfinite(opts["gamma_lr"])):
            raise UsageError(f"ftp gamma_lr must be 'auto' or a number > 0, got {opts['gamma_lr']!r}.")
    if method == "tpgm":
        for key in ("max_iters", "proj_freq"):
            if int(opts[key]) < 1:
                raise UsageError(f"tpgm {key} must be >= 1, got {opts[key]}.")
            opts[key] = int(opts[key])
    return opts


def parse_option(method: str, text: str) -> tuple[str, Any]:
    """``"key=value"`` → ``(key, value)`` typed like the option's default (lists: comma-separated)."""
    check_method(method)
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"method options are written key=value, got {text!r}.")
    if key not in OPTIONS[method]:
        known = ", ".join(OPTIONS[method]) or "none"
        raise UsageError(f"method {method!r} takes no option {key!r} (its options: {known}).")
    default = OPTIONS[method][key]
    try:
        if isinstance(default, tuple):
            return key, tuple(float(v) for v in value.split(",") if v.strip())
        if isinstance(default, (int, float)):
            return key, type(default)(value)
    except ValueError:
        raise UsageError(f"option {key}={value!r} is not a {type(default).__name__}.") from None
    return key, value.strip()


def ftp_gamma_lr(gamma_lr: float | str, total_steps: int | None) -> tuple[float, str | None]:
    """FTP's γ learning rate for a run of ``total_steps`` optimizer steps, and a warning (or None).

    ``"auto"``: ``min(0.1, max(1e-2, 3 / total_steps))`` (the reference 1e-2 when the number of steps is
    unknown); a number is used as given. Warns when ``total_steps · gamma_lr < 3``: γ, which moves by about
    ``gamma_lr`` per step, cannot open to the radius a 300-step reference run reaches.
    """
    if gamma_lr == "auto":
        if not total_steps:
            return FTP_REFERENCE_GAMMA_LR, None
        value = min(FTP_MAX_AUTO_GAMMA_LR, max(FTP_REFERENCE_GAMMA_LR, FTP_GAMMA_BUDGET / total_steps))
    else:
        value = float(gamma_lr)
    if total_steps and total_steps * value < FTP_GAMMA_BUDGET * (1 - 1e-9):
        hint = "raise gamma_lr (or leave it at auto), " if gamma_lr != "auto" else ""
        return value, (f"FTP with gamma_lr={value:g} over {total_steps} steps: its constraint radius grows by about "
                       f"gamma_lr per step and stays below ~{total_steps * value:.2g} (row-L1), which keeps the backbone "
                       f"near its pretrained weights; {hint}train at least {math.ceil(FTP_GAMMA_BUDGET / value)} steps, "
                       "or use lpft for very short runs.")
    return value, None


class Regime:
    """The optimizer and the method's hooks around one training step.

    ``after_backward()`` (L2-SP gradient), ``after_step(step)`` (TPGM radius fit and projection),
    ``gammas()`` (FTP γ / TPGM radii by parameter name), and ``state_dict`` / ``load_state_dict``
    for exact resumption.
    """

    def __init__(
        self,
        method: str,
        opts: Mapping[str, Any],
        model: nn.Module,
        head: Sequence[str],
        *,
        lr: float,
        weight_decay: float,
        val_batches: Sequence[tuple[Tensor, Tensor]] = (),
        total_steps: int | None = None,
    ) -> None:
        """``total_steps``: optimizer steps of the whole run (resolves FTP's ``gamma_lr="auto"``)."""
        self.method, self.opts = method, dict(opts)
        self.notes: list[str] = []
        ftp = {k: opts[k] for k in ("k", "gamma_lr", "gamma_init")} if method == "ftp" else {}
        if ftp:
            ftp["gamma_lr"], warning = ftp_gamma_lr(opts["gamma_lr"], total_steps)
            self.opts["gamma_lr"] = ftp["gamma_lr"]
            if warning is not None:
                warnings.warn(warning, stacklevel=2)
                self.notes.append(warning)
            elif opts["gamma_lr"] == "auto":
                self.notes.append(f"FTP gamma_lr=auto: {ftp['gamma_lr']:.3g} for {total_steps} steps (min(0.1, max(1e-2, 3 / steps)))")
        self.optimizer = make_optimizer(model, "ftp" if method == "ftp" else "plain", lr=lr, head=head,
                                        weight_decay=weight_decay, **ftp)
        self.l2sp = self.tpgm = None
        if method == "l2sp":
            from .regularizers import L2SP

            self.l2sp = L2SP(model, alpha=opts["alpha"], beta=opts["beta"], head=head)
        if method == "tpgm":
            from .optim.tpgm import TPGM

            if not val_batches:
                raise InputError("TPGM fits its projection radii on validation data, and there is none.")
            self.tpgm = TPGM(model, exclude=head, norm=opts["norm"], lr=opts["proj_lr"])
        self.val_batches = list(val_batches)
        self.tpgm_calls = 0

    def after_backward(self) -> None:
        if self.l2sp is not None:
            self.l2sp.add_grad_()

    def after_step(self, step: int) -> None:
        """``step`` counts optimizer steps from 0. TPGM fits every ``proj_freq`` steps, projects every step."""
        if self.tpgm is None:
            return
        if step % self.opts["proj_freq"] == 0:
            n, it = len(self.val_batches), int(self.opts["max_iters"])
            order = (self.val_batches[(self.tpgm_calls * it + i) % n] for i in range(it))
            self.tpgm.step(order, max_iters=it)
            self.tpgm_calls += 1
        else:
            self.tpgm.project_()

    def gammas(self) -> dict[str, float]:
        """FTP's γ or TPGM's radius per constrained tensor (normalised names); empty for other methods."""
        if self.tpgm is not None:
            return {normalize_param_name(n): v for n, v in self.tpgm.radii_by_name().items()}
        gammas = getattr(self.optimizer, "gammas", None)
        return {n: float(g) for n, g in gammas().items()} if callable(gammas) else {}

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "tpgm": None if self.tpgm is None else self.tpgm.state_dict(),
                "tpgm_calls": self.tpgm_calls}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.tpgm is not None:
            self.tpgm.load_state_dict(state["tpgm"])
        self.tpgm_calls = int(state["tpgm_calls"])


@torch.no_grad()
def fit_lp_head(model: nn.Module, head_path: str, x: Tensor, y: Tensor, C: float) -> float:
    """LP stage of LP-FT / WiSE-FT: the new linear head fitted on frozen penultimate features
    (L2-regularised multinomial logistic regression, :func:`~.recipes.fit_linear_probe_head`)."""
    from .prepare import head_inputs
    from .recipes import fit_linear_probe_head

    head = model.get_submodule(head_path)
    if not isinstance(head, nn.Linear):
        raise UsageError("LP-FT and WiSE-FT fit a linear head in closed form; use head='linear'.")
    return fit_linear_probe_head(head, head_inputs(model, head_path, x).double().numpy(), y.numpy(), C=C)
