"""Linear probes (closed-form, streaming) and tunnel analysis (loaded on first use).

- ``probe_layers(model, id_data, ood_data)``: what ``transferlens probe`` runs: extract every layer, fit one
  probe per layer on ID train, evaluate on ID test and each OOD set, tunnel metrics and a recommended layer
  (:mod:`.analysis`); ``probe_features`` does the same on precomputed :class:`~transferlens.FeatureSet` s;
- probes: ``fit_ridge`` / ``fit_ridge_probe`` (closed form from streamed class statistics, one-vs-rest
  targets, α chosen on a validation split), ``fit_lda_probe`` (shrinkage LDA), ``fit_logistic_probe``
  (L-BFGS), ``fit_adamw_probe`` (the AdamW reference recipe of Harun et al. 2024);
- tunnel (:mod:`.tunnel`, Masarczyk et al., NeurIPS 2023): ``pct_ood_retained`` = 100 · OOD accuracy of the
  last layer / best OOD accuracy over layers, ``tunnel_metrics``, ``analyse_tunnel``, ``recommend_layer``.

Example::

    >>> from transferlens.probe import pct_ood_retained
    >>> pct_ood_retained([0.5, 0.8, 0.4])   # the last layer keeps half of the best layer's OOD accuracy
    50.0
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "probe_layers": ".analysis",
    "probe_features": ".analysis",
    "ProbeResult": ".analysis",
    "plot_curves": ".analysis",
    "RidgeProbe": ".ridge",
    "fit_ridge": ".ridge",
    "fit_ridge_stats": ".ridge",
    "fit_ridge_probe": ".ridge",
    "select_alpha": ".ridge",
    "LDAProbe": ".lda",
    "fit_lda_probe": ".lda",
    "LogisticProbe": ".logistic",
    "fit_logistic_probe": ".logistic",
    "AdamWProbe": ".adamw",
    "fit_adamw_probe": ".adamw",
    "pct_ood_retained": ".tunnel",
    "tunnel_metrics": ".tunnel",
    "TunnelMetrics": ".tunnel",
    "analyse_tunnel": ".tunnel",
    "TunnelAnalysis": ".tunnel",
    "recommend_layer": ".tunnel",
    "Recommendation": ".tunnel",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
