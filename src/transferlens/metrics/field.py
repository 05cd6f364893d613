r"""Label-free estimates of a classifier's accuracy on unlabelled field (deployment) data.

Inputs are class probabilities (softmax outputs) of one classifier -- in TransferLens a linear probe fitted
on labelled ID features -- on a labelled held-out ID validation set and on unlabelled field samples. Pure
functions of arrays; nothing here imports models or probes. Every estimate is an accuracy in [0, 1].

* **ID accuracy** (the naive estimate): ``acc_val = mean(argmax p_i == y_i)`` over the ID validation set;
  it assumes the field is like the ID data.
* **ATC**, average thresholded confidence (Garg, Balakrishnan, Lipton, Neyshabur, Sedghi, "Leveraging
  unlabeled data to predict out-of-distribution performance", ICLR 2022). A confidence score s(x)
  (``maxconf``: max_k p_k; ``entropy``: the negative entropy sum_k p_k log p_k) and a threshold t learnt
  on ID validation data such that the fraction of validation scores above t equals the validation
  accuracy; the estimate is the fraction of field scores above t. Exactly: with c correct validation
  samples, t = s_(c), the c-th largest validation score, and a sample scoring exactly t counts with
  weight w = (c - #{val s > t}) / #{val s = t}, so that ``mean_val g(s) = acc_val`` holds exactly even
  with ties (g(s) = 1[s > t] + w 1[s = t]); the estimate is ``mean_field g(s)``. Without ties this is the
  rule "s >= s_(c)"; the reference code (saurabhgarg1996/ATC_code) takes the other end of the same gap,
  s >= s_(c+1). c = 0 gives 0; c = N gives t = min val score, so field samples less confident than every
  validation sample count as errors.
* **DoC**, difference of confidences (Guillory, Shankar, Ebrahimi, Darrell, Schmidt, "Predicting with
  confidence on unseen distributions", ICCV 2021): ``acc_val - (mean_val max_k p_k - mean_field max_k p_k)``,
  clipped to [0, 1].
* **Agreement-on-the-line** (Baek, Jiang, Raghunathan, Kolter, "Agreement-on-the-line: predicting the
  performance of neural networks under distribution shift", NeurIPS 2022), the ALine-S estimator: for
  M >= 3 classifiers evaluated on the same ID validation and field samples, the pairwise agreement rates
  (fraction of samples on which two classifiers predict the same class, no labels needed) lie on a line
  in probit space, probit(agr_field) = a probit(agr_ID) + b, fitted by least squares over the M(M-1)/2
  pairs. **Assumption** (the paper's empirical finding, which holds for many natural shifts but not all):
  when agreement is on a line, accuracy is on the *same* line, so each classifier's field accuracy is
  estimated as Phi(a probit(acc_val) + b). Rates are clipped to [1/(2n), 1 - 1/(2n)] before the probit.
  With fewer than 3 members (or no spread of ID agreement) there is no line to fit: the result is
  ``None`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.special import ndtr, ndtri

from ..errors import InputError, UsageError
from ..validation import as_labels, check_probabilities

ATC_SCORES = ("maxconf", "entropy")
#: estimator names in the order the report shows them
ESTIMATORS = ("id_accuracy", "atc_maxconf", "atc_entropy", "doc", "aol")


def _probs(p: Any, name: str) -> np.ndarray:
    arr = check_probabilities(p, name=name)
    if arr.shape[0] < 1:
        raise InputError(f"{name} has no rows; pass at least one sample's class probabilities.")
    return arr


def confidence(probs: Any, score: str = "maxconf") -> np.ndarray:
    """Per-sample confidence: ``maxconf`` = max_k p_k, ``entropy`` = sum_k p_k log p_k (minus the entropy)."""
    p = _probs(probs, "probs")
    if score == "maxconf":
        return p.max(axis=1)
    if score == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        return plogp.sum(axis=1)
    raise UsageError(f"ATC score must be one of {', '.join(ATC_SCORES)}, got {score!r}.")


def _val(val_probs: Any, val_labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _probs(val_probs, "val_probs")
    y = as_labels(val_labels, n_samples=p.shape[0], name="val_labels")
    if y.max() >= p.shape[1]:
        raise InputError(f"val_labels go up to {int(y.max())} but val_probs has {p.shape[1]} classes.")
    return p, y


def id_accuracy(val_probs: Any, val_labels: Any) -> float:
    """The naive estimate: top-1 accuracy on the labelled ID validation set."""
    p, y = _val(val_probs, val_labels)
    return float(np.mean(p.argmax(axis=1) == y))


@dataclass(frozen=True)
class AtcThreshold:
    """ATC's threshold t on the confidence score and the weight w of a score exactly equal to t."""

    score: str
    threshold: float
    tie_weight: float

    def fraction_above(self, scores: np.ndarray) -> float:
        """``mean(1[s > t] + w 1[s = t])``: the ATC accuracy estimate on samples with these scores."""
        s = np.asarray(scores, dtype=np.float64)
        return float(np.mean((s > self.threshold) + self.tie_weight * (s == self.threshold)))


def atc_threshold(val_probs: Any, val_labels: Any, *, score: str = "maxconf") -> AtcThreshold:
    """Fit ATC's threshold on labelled ID validation data (see module docstring: t = s_(c), tie weight w)."""
    p, y = _val(val_probs, val_labels)
    s = confidence(p, score)
    c = int(np.sum(p.argmax(axis=1) == y))
    if c == 0:
        return AtcThreshold(score, float("inf"), 0.0)
    t = float(np.sort(s)[::-1][c - 1])
    above = int(np.sum(s > t))
    equal = int(np.sum(s == t))
    return AtcThreshold(score, t, (c - above) / equal)


def atc(val_probs: Any, val_labels: Any, field_probs: Any, *, score: str = "maxconf") -> float:
    """ATC estimate of the field accuracy (Garg et al. 2022): fraction of field confidences above the ID threshold."""
    th = atc_threshold(val_probs, val_labels, score=score)
    f = _probs(field_probs, "field_probs")
    if f.shape[1] != np.shape(val_probs)[1]:
        raise InputError(f"field_probs has {f.shape[1]} classes but val_probs has {np.shape(val_probs)[1]}.")
    return th.fraction_above(confidence(f, score))


def doc(val_probs: Any, val_labels: Any, field_probs: Any) -> float:
    """DoC estimate (Guillory et al. 2021): acc_val - (mean max-conf on val - on field), clipped to [0, 1]."""
    p, y = _val(val_probs, val_labels)
    f = _probs(field_probs, "field_probs")
    if f.shape[1] != p.shape[1]:
        raise InputError(f"field_probs has {f.shape[1]} classes but val_probs has {p.shape[1]}.")
    acc = float(np.mean(p.argmax(axis=1) == y))
    return float(np.clip(acc - (p.max(axis=1).mean() - f.max(axis=1).mean()), 0.0, 1.0))


# ----------------------------------------------------------------------------------------------- AoL
@dataclass
class AolResult:
    """ALine-S result: ``estimates`` (one per member, input order) or ``None`` with ``reason``."""

    estimates: list[float] | None
    reason: str | None = None
    slope: float | None = None
    intercept: float | None = None
    n_pairs: int = 0
    id_agreement: list[float] = field(default_factory=list)
    field_agreement: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"estimates": self.estimates, "reason": self.reason, "slope": self.slope, "intercept": self.intercept,
                "n_pairs": self.n_pairs, "id_agreement": self.id_agreement, "field_agreement": self.field_agreement}


def probit(rate: Any, n: int | None = None) -> np.ndarray:
    """Phi^{-1}(rate), with rates clipped to [1/(2n), 1 - 1/(2n)] when ``n`` (the sample count) is given."""
    r = np.asarray(rate, dtype=np.float64)
    if n is not None:
        r = np.clip(r, 0.5 / n, 1.0 - 0.5 / n)
    return ndtri(r)


def aol_from_rates(id_agreement: Sequence[float], field_agreement: Sequence[float], id_accuracy: Sequence[float], *,
                   n_id: int | None = None, n_field: int | None = None) -> AolResult:
    """ALine-S from agreement rates of the member pairs and the members' ID accuracies.

    Fits probit(field_agreement) = a probit(id_agreement) + b (least squares over the pairs) and returns
    Phi(a probit(id_accuracy_j) + b) per member. ``None`` (with ``reason``) for < 2 pairs or no ID spread.
    """
    ia = np.asarray(id_agreement, dtype=np.float64).reshape(-1)
    fa = np.asarray(field_agreement, dtype=np.float64).reshape(-1)
    acc = np.asarray(id_accuracy, dtype=np.float64).reshape(-1)
    if ia.shape != fa.shape:
        raise InputError(f"id_agreement has {ia.size} pairs but field_agreement has {fa.size}.")
    if np.any((ia < 0) | (ia > 1)) or np.any((fa < 0) | (fa > 1)) or np.any((acc < 0) | (acc > 1)):
        raise InputError("agreement rates and accuracies must lie in [0, 1].")
    base = AolResult(None, n_pairs=int(ia.size), id_agreement=ia.tolist(), field_agreement=fa.tolist())
    if ia.size < 2:
        base.reason = f"agreement-on-the-line needs >= 3 models (>= 2 pairs) to fit a line; got {ia.size} pair(s)."
        return base
    x, z = probit(ia, n_id), probit(fa, n_field)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(z))):
        base.reason = "an agreement rate of exactly 0 or 1 has no probit; pass n_id / n_field to clip it."
        return base
    if np.ptp(x) <= 1e-12:
        base.reason = "every pair agrees equally often on the ID data, so no line can be fitted."
        return base
    a, b = np.polyfit(x, z, 1)
    est = ndtr(a * probit(acc, n_id) + b)
    base.estimates, base.slope, base.intercept = [float(v) for v in est], float(a), float(b)
    return base


def agreement(pred_a: Any, pred_b: Any) -> float:
    """Fraction of samples on which two classifiers predict the same class."""
    a, b = np.asarray(pred_a).reshape(-1), np.asarray(pred_b).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise InputError(f"predictions to compare must be non-empty and the same length, got {a.size} and {b.size}.")
    return float(np.mean(a == b))


def aol(val_preds: Sequence[Any], val_labels: Any, field_preds: Sequence[Any]) -> AolResult:
    """Agreement-on-the-line (ALine-S, Baek et al. 2022) for M members' predicted classes.

    ``val_preds[j]`` / ``field_preds[j]``: member j's predicted classes on the same ID validation and field
    samples. Returns each member's estimated field accuracy, or ``None`` with the reason when M < 3.
    """
    m = len(val_preds)
    if m != len(field_preds):
        raise InputError(f"{m} members have ID predictions but {len(field_preds)} have field predictions.")
    if m < 3:
        return AolResult(None, reason=f"agreement-on-the-line needs >= 3 models (an ensemble); got {m}.")
    y = as_labels(val_labels, name="val_labels")
    vp = [np.asarray(v).reshape(-1) for v in val_preds]
    fp = [np.asarray(f).reshape(-1) for f in field_preds]
    if any(v.size != y.size for v in vp):
        raise InputError("every member's ID predictions must cover the same validation samples as val_labels.")
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    ia = [agreement(vp[i], vp[j]) for i, j in pairs]
    fa = [agreement(fp[i], fp[j]) for i, j in pairs]
    acc = [float(np.mean(v == y)) for v in vp]
    return aol_from_rates(ia, fa, acc, n_id=int(y.size), n_field=int(fp[0].size))


def field_estimates(val_probs: Any, val_labels: Any, field_probs: Any) -> dict[str, float]:
    """Every single-model estimate: ``id_accuracy``, ``atc_maxconf``, ``atc_entropy``, ``doc`` (AoL needs several)."""
    return {"id_accuracy": id_accuracy(val_probs, val_labels),
            "atc_maxconf": atc(val_probs, val_labels, field_probs, score="maxconf"),
            "atc_entropy": atc(val_probs, val_labels, field_probs, score="entropy"),
            "doc": doc(val_probs, val_labels, field_probs)}
