"""Pure metrics of (features, labels[, logits]): collapse, ranks, few-shot, transferability scores.

Numpy in, floats out; nothing here imports torch or a model. Every name below is importable from here
(``from transferlens.metrics import nc1, logme, compute_score``) and is loaded on first use.

- neural collapse (:mod:`.collapse`, Papyan, Han & Donoho, PNAS 2020): ``nc1`` = Tr(Σ_W Σ_B⁺)/K, ``nc2``
  (equinorm, equiangularity, distance to a simplex ETF), ``nc3`` / ``nc4`` (classifier duality, NCC
  agreement), ``cdnv`` (class-distance normalised variance, Galanti et al. 2022), ``neural_collapse`` (all);
- ranks (:mod:`.rank`): ``numerical_rank``, ``effective_rank`` (Roy & Vetterli 2007), ``rankme`` (Garrido et
  al. 2023), ``rank_report``;
- few-shot (:mod:`.fewshot`): ``few_shot_eval`` (n-way k-shot nearest-class-centre episodes, mean ± 95% CI);
- streaming statistics (:mod:`.stats`): ``ClassStats`` (update / merge / compute in float64);
- transferability scores (:mod:`.scores`): ``compute_score(name, features, labels)`` for every score in
  ``list_scores()``, and the score functions themselves (``logme``, ``leep``, ``h_score``, ...).

Example::

    >>> import numpy as np
    >>> from transferlens.metrics import nc1
    >>> x = np.repeat([[0., 0.], [4., 0.]], 5, axis=0); y = np.repeat([0, 1], 5)
    >>> nc1(x, y)    # every sample sits on its class mean: full collapse
    0.0
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "nc1": ".collapse",
    "nc2": ".collapse",
    "nc3": ".collapse",
    "nc3_wh": ".collapse",
    "nc4": ".collapse",
    "NCCAgreement": ".collapse",
    "cdnv": ".collapse",
    "cdnv_matrix": ".collapse",
    "geometric_collapse": ".collapse",
    "equinorm": ".collapse",
    "equiangularity": ".collapse",
    "max_angle": ".collapse",
    "etf_distance": ".collapse",
    "neural_collapse": ".collapse",
    "numerical_rank": ".rank",
    "effective_rank": ".rank",
    "rankme": ".rank",
    "rank_report": ".rank",
    "singular_values": ".rank",
    "few_shot_eval": ".fewshot",
    "FewShotResult": ".fewshot",
    "ClassStats": ".stats",
    "ClassSummary": ".stats",
    "SCORES": ".scores",
    "ScoreInfo": ".scores",
    "ScoreResult": ".scores",
    "UnreliableScoreWarning": ".scores",
    "compute_score": ".scores",
    "get_score": ".scores",
    "list_scores": ".scores",
    "zoo_normalise": ".scores",
    "logme": ".scores",
    "leep": ".scores",
    "nce": ".scores",
    "nleep": ".scores",
    "h_score": ".scores",
    "shrinkage_h_score": ".scores",
    "gbc": ".scores",
    "transrate": ".scores",
    "sfda": ".scores",
    "ncti_zoo": ".scores",
    "etran_zoo": ".scores",
    "etran_energy": ".scores",
    "pactran_gaussian": ".scores",
    "knn_accuracy": ".scores",
    "task_relatedness": ".relatedness",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
