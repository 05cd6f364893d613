r"""LEEP and NCE: scores from the source head's predictions on the target samples.

LEEP -- Nguyen, Hassner, Seeger, Archambeau. "LEEP: A New Measure to Evaluate Transferability of Learned
Representations", ICML 2020. Reference code: github.com/thuml/LogME ``LEEP.py`` (also TLlib
``tllib/ranking/leep.py``). With theta(x_i) in the simplex over the C_s source classes:

    P(y, z) = 1/N sum_i theta_z(x_i) 1[y_i = y],   P(y | z) = P(y, z) / sum_y' P(y', z)
    LEEP    = 1/N sum_i log sum_z P(y_i | z) theta_z(x_i)        (<= 0, higher is better)

Later repositories (TencentARC/SFDA, mgholamikn/ETran, BUserName/NCTI) recompute theta from the
checkpoint's fc layer and *drop the log* (mean probability "for stability"); that variant is available
with ``log=False`` but is not the LEEP of the paper. The LogME paper's LEEP/NCE numbers used swapped
(source, target) arguments (thuml/LogME issue #14); here the shapes are checked.

NCE -- Tran, Nguyen, Hassner. "Transferability and Hardness of Supervised Classification Tasks", ICCV 2019.
Reference: thuml/LogME ``NCE.py``. With the hard source label z_i = argmax theta(x_i):

    NCE = -H(Y | Z) = sum_{y,z} P(y, z) log P(y | z)                  (<= 0, higher is better)

using empirical frequencies; source classes that never occur are skipped (0 log 0 = 0), instead of
the 1e-20 added inside the log by some copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import class_indicator, prepare_labelled, prepare_source_probs


def leep_from_probs(probs: np.ndarray, y: np.ndarray, n_classes: int, *, log: bool = True) -> float:
    """LEEP for validated inputs (probs row-stochastic (N, C_s), y int in 0..K-1). Shared with NLEEP."""
    n = probs.shape[0]
    joint = np.asarray(class_indicator(y, n_classes) @ probs) / n  # (K, C_s): P(y, z)
    pz = joint.sum(axis=0)
    cond = np.divide(joint, pz[None, :], out=np.zeros_like(joint), where=pz[None, :] > 0)  # P(y | z)
    eep = np.einsum("nz,nz->n", probs, cond[y])  # sum_z P(y_i | z) theta_z(x_i)
    if not log:
        return float(eep.mean())
    return float(np.mean(np.log(eep)))


def leep(source_probs: Any, labels: Any, *, log: bool = True) -> float:
    """LEEP of the source head's probabilities ``source_probs`` (N, C_s) on target ``labels`` (N,).

    ``log=False`` gives the log-free variant of later repositories (mean expected probability).
    Swapped arguments are refused (labels must be 1-D ints, probabilities a 2-D row-stochastic matrix).
    """
    p, y, k = _probs_and_labels(source_probs, labels)
    return leep_from_probs(p, y, k, log=log)


def nce(source_probs: Any, labels: Any) -> float:
    """NCE = -H(Y | Z) with Z the argmax of ``source_probs`` (N, C_s); higher is better."""
    p, y, k = _probs_and_labels(source_probs, labels)
    z = p.argmax(axis=1)
    n = y.shape[0]
    joint = np.zeros((k, p.shape[1]))
    np.add.at(joint, (y, z), 1.0 / n)
    pz = joint.sum(axis=0)
    used = pz > 0
    joint, pz = joint[:, used], pz[used]
    nz = joint > 0
    cond = joint[nz] / np.broadcast_to(pz, joint.shape)[nz]
    return float(np.sum(joint[nz] * np.log(cond)))


def _probs_and_labels(source_probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate labels (as for every labelled score) and the row-stochastic source probabilities."""
    n = np.shape(labels)[0] if np.ndim(labels) >= 1 and np.shape(labels)[0] > 0 else 1
    _, y, k = prepare_labelled(np.zeros((n, 1)), labels)
    p = prepare_source_probs(source_probs, n_samples=y.shape[0])
    return p, y, k
