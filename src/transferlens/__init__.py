"""TransferLens: which pretrained model (and which layer) transfers to your small dataset.

The library is organised as a one-directional pipeline (see docs/ARCHITECTURE.md)::

    data source -> model source -> layer taps -> FeatureSet (cached) -> metrics/probes -> records -> report

Python API (every name is importable from ``transferlens`` and loaded on first use, so ``import transferlens``
itself imports neither torch nor numpy). Data and models are named by URI strings, as on the command line:

- ``extract(model, data, layers)`` -> :class:`FeatureSet`: pooled features of several layers, one forward pass
  per batch, cached (``fs[layer]`` is an (N, D) float32 array, ``fs.labels`` int64 in 0..K-1);
- ``rank_models(models, data)``: every transferability score per candidate and the combined ranking
  (``transferlens rank``); ``compute_score(name, features, labels)`` / ``list_scores()``: one score on
  features you already have; the score functions ``logme``, ``leep``, ``nce``, ``h_score``, ``gbc``,
  ``transrate``, ``sfda``, ``knn_accuracy``, ...;
- ``probe_layers(model, id_data, ood_data)``: a linear probe per layer on ID and OOD data, % OOD retained,
  the tunnel and a recommended layer (``transferlens probe``);
- ``assess(models, data, out)``: the whole workflow and its HTML report (``transferlens assess``; the
  ``transferlens.assess`` package is itself callable);
- neural collapse ``nc1`` (Tr(Σ_W Σ_B⁺)/K), ``nc2``, ``cdnv``, ``neural_collapse``; ranks ``rankme``,
  ``effective_rank``; ``few_shot_eval``; geometric complexity ``geometric_complexity`` / ``gc_exact``
  (E_x ‖∂f(x)/∂x‖²_F) and ``GCRegularizer``;
- robust fine-tuning: ``FTPAdamW`` / ``FTPAdam`` / ``FTPSGD`` / ``TPGM`` (``torch.optim`` optimizers), ``L2SP``,
  ``SimplexETFHead``, ``run_finetune(model, train, method)`` (``transferlens finetune``);
- ``load_data(uri)`` / ``list_sources()``, ``resolve_model(uri)`` / ``list_model_sources()``; errors
  ``TransferLensError`` and its kinds ``UsageError``, ``InputError``, ``DataError``, ``ModelError``.

Example (tiny, offline; see the README's "Python API" section for more)::

    >>> import transferlens as tl
    >>> fs = tl.extract("zoo:mlp-g50-s16", "builtin:digits-uci?n_per_class=10", "penultimate")
    >>> X, y = fs[fs.layers[0]], fs.labels       # NumPy: (n_samples, n_features) float32, labels 0..K-1
    >>> X.shape, y.shape
    ((100, 128), (100,))
    >>> tl.compute_score("logme", X, y).higher_is_better
    True
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # the pipeline
    "extract": ".features", "FeatureSet": ".features",
    "load_data": ".data", "list_sources": ".data", "Dataset": ".data",
    "resolve_model": ".models", "list_model_sources": ".models",
    # the commands' library calls
    "rank_models": ".ranking", "probe_layers": ".probe", "probe_features": ".probe", "assess": ".assess",
    "geometry_report": ".geometry", "run_finetune": ".finetune",
    # metrics
    **{name: ".metrics" for name in (
        "compute_score", "list_scores", "SCORES", "ScoreResult", "zoo_normalise", "logme", "leep", "nce", "nleep",
        "h_score", "shrinkage_h_score", "gbc", "transrate", "sfda", "ncti_zoo", "etran_zoo", "pactran_gaussian",
        "knn_accuracy", "nc1", "nc2", "nc3", "nc4", "cdnv", "neural_collapse", "rankme", "effective_rank",
        "numerical_rank", "few_shot_eval", "ClassStats")},
    # geometry, fine-tuning
    "geometric_complexity": ".geometry", "gc_exact": ".geometry", "gc_stochastic": ".geometry",
    "GCRegularizer": ".geometry", "hessian_trace": ".geometry",
    **{name: ".finetune" for name in ("FTPAdamW", "FTPAdam", "FTPSGD", "TPGM", "L2SP", "SimplexETFHead")},
    # errors
    **{name: ".errors" for name in ("TransferLensError", "UsageError", "InputError", "DataError", "ModelError")},
}
__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
