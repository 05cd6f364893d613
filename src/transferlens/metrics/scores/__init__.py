"""Established transferability scores: pure functions plus a registry with a uniform call.

Each score lives in its own module with its formula, paper and reference implementation in the
docstring. The registry (:mod:`.registry`) gives their metadata and ``compute_score``::

    from transferlens.metrics.scores import compute_score, zoo_normalise, SCORES
    r = compute_score("logme", features, labels)            # ScoreResult(value, warnings, seconds, ...)
    rs = [compute_score("ncti", f, labels) for f in zoo]     # zoo-relative: combine across models
    ncti_values = zoo_normalise("ncti", rs)

Scores: logme, leep, nce, nleep, h_score, shrinkage_h_score, gbc, transrate, sfda, ncti, etran,
etran_energy (label-free), pactran_gaussian (lower is better), knn_accuracy.
"""

from ._common import UnreliableScoreWarning
from .etran import etran_components, etran_energy, etran_lda, etran_zoo
from .gbc import gbc
from .hscore import h_score, h_score_stats, ledoit_wolf_shrinkage, shrinkage_h_score
from .knn import knn_accuracy
from .leep import leep, nce
from .logme import LogMEFit, logme, logme_fit
from .ncti import ncti_components, ncti_zoo
from .nleep import nleep
from .pactran import pactran_gaussian
from .registry import SCORES, ScoreInfo, ScoreResult, compute_score, get_score, list_scores, zoo_normalise
from .sfda import sfda
from .transrate import coding_rate, transrate

__all__ = [
    "SCORES", "LogMEFit", "ScoreInfo", "ScoreResult", "UnreliableScoreWarning", "coding_rate", "compute_score",
    "etran_components", "etran_energy", "etran_lda", "etran_zoo", "gbc", "get_score", "h_score", "h_score_stats", "knn_accuracy",
    "ledoit_wolf_shrinkage", "leep", "list_scores", "logme", "logme_fit", "nce", "ncti_components", "ncti_zoo",
    "nleep", "pactran_gaussian", "sfda", "shrinkage_h_score", "transrate", "zoo_normalise",
]
