"""Robust fine-tuning: FTP / TPGM optimizers, L2-SP, LP-FT, WiSE-FT, ETF heads, training loop (torch; loaded
on first use).

- ``FTPAdamW`` / ``FTPAdam`` / ``FTPSGD`` (Tian et al., NeurIPS 2023): drop-in ``torch.optim`` optimizers that,
  after each base step, shrink every row of a pretrained tensor back towards its anchor w₀,
  w ← w₀ + clamp(γ/‖c‖₁, 0, 1) · c with c = w − w₀ per row, the radius γ learned by a hyper-gradient (Adam on γ);
- ``TPGM`` (Tian et al., CVPR 2023): projection radii learned on validation data; ``L2SP`` (Li et al., ICML
  2018): the penalty α/2 ‖θ − θ₀‖²; ``make_optimizer``, ``fit_linear_probe_head`` (LP-FT), ``wise_ft_sweep`` /
  ``interpolate_state_dicts`` (WiSE-FT: θ = (1 − α) θ₀ + α θ_ft); ``SimplexETFHead`` (a fixed simplex-ETF head);
- ``run_finetune(model, train, method)``: what ``transferlens finetune`` runs (resumable, ID + OOD accuracy).

Example::

    >>> import torch
    >>> from transferlens.finetune import FTPAdamW
    >>> net = torch.nn.Linear(4, 2)
    >>> opt = FTPAdamW(net, lr=1e-3)          # anchors: the weights at construction
    >>> net(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "FTPAdamW": ".optim",
    "FTPAdam": ".optim",
    "FTPSGD": ".optim",
    "TPGM": ".optim",
    "L2SP": ".regularizers",
    "make_optimizer": ".recipes",
    "freeze_all_but": ".recipes",
    "fit_linear_probe_head": ".recipes",
    "interpolate_state_dicts": ".recipes",
    "wise_ft_sweep": ".recipes",
    "SimplexETFHead": ".heads",
    "simplex_etf_weight": ".heads",
    "attach_etf_head": ".heads",
    "METHODS": ".methods",
    "run_finetune": ".loop",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
