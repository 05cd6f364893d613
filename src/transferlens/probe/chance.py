"""When is a measured accuracy "at chance", and when has a classifier "collapsed" onto one class?

**Chance level.** The accuracy a classifier reaches without looking at the input, by always predicting the
most frequent class of the evaluated labels: ``chance = max_c n_c / n`` (= 1/K on balanced labels). Without
the labels (old records, fine-tuning summaries) the fallback is 1/K.

**At chance.** With ``n`` evaluated samples and accuracy ``acc`` (``k = round(acc · n)`` correct), the
accuracy is *at chance* when a one-sided exact binomial test cannot reject ``p = chance`` in favour of
``p > chance`` at level ``ALPHA = 0.05``:

    p-value = P(X >= k),  X ~ Binomial(n, chance);    at chance  <=>  p-value > ALPHA

An accuracy below chance is therefore at chance too (it is no evidence of signal). With n = 50 and 10
classes, 10 % and 16 % are at chance and 20 % is not (P(X >= 10) = 0.025); with n = 1000, 11.5 % is at
chance and 12.5 % is not. The mean of several OOD curves is tested the same way with n = the sum of the
sets' sizes and chance = the mean of their chance levels (exact when the sets are equally large).

**Collapsed.** One predicted class takes at least ``COLLAPSE_SHARE = 0.8`` of the predictions on ``K >= 3``
classes, and more than that class's own share of the labels would explain: the threshold is
``max(COLLAPSE_SHARE, (1 + s) / 2)`` with ``s`` the class's share of the labels (so a correct probe on a set
that is 85 % one class is not called collapsed). On ``K = 2`` one class per sample is the only way to be
wrong, and a 80/20 split of predictions is common on skewed data, so binary probes are never flagged.

A tunnel or "% OOD retained" computed from a curve whose peak is at chance measures noise, so the tunnel code
(:mod:`.tunnel`) returns None with a reason for such curves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError

#: level of the one-sided binomial test of "accuracy > chance"
ALPHA = 0.05
#: share of the predictions taken by one class from which a probe on K >= 3 classes counts as collapsed
COLLAPSE_SHARE = 0.8


def chance_level(labels: Any, n_classes: int) -> float:
    """max_c n_c / n over the evaluated labels (1/K on balanced labels); 1/K when ``labels`` is empty."""
    if int(n_classes) < 1:
        raise InputError(f"n_classes must be >= 1, got {n_classes}.")
    y = np.asarray(labels, dtype=np.int64).ravel()
    if y.size == 0:
        return 1.0 / int(n_classes)
    return float(np.bincount(y, minlength=int(n_classes)).max() / y.size)


def binomial_p_value(accuracy: float, n: int, chance: float) -> float:
    """P(X >= round(accuracy · n)) for X ~ Binomial(n, chance): the one-sided p-value of 'better than chance'."""
    from scipy.stats import binom

    if int(n) < 1:
        raise InputError(f"n must be >= 1 evaluated samples, got {n}.")
    if not (0.0 <= float(accuracy) <= 1.0 and 0.0 <= float(chance) <= 1.0):
        raise InputError(f"accuracy and chance must be fractions in [0, 1], got {accuracy} and {chance}.")
    k = int(round(float(accuracy) * int(n)))
    return float(binom.sf(k - 1, int(n), float(chance)))


def is_at_chance(accuracy: float | None, n: int | None, chance: float | None, alpha: float = ALPHA) -> bool | None:
    """True when the binomial test cannot tell ``accuracy`` on ``n`` samples from ``chance`` (see module doc).

    None when it cannot be decided (a missing accuracy, n or chance level).
    """
    if accuracy is None or n is None or chance is None or int(n) < 1:
        return None
    if not np.isfinite(accuracy):
        return None
    return binomial_p_value(float(accuracy), int(n), float(chance)) > alpha


def majority_share(predictions: Any, n_classes: int) -> tuple[int, float]:
    """(most predicted class, its share of the predictions); (-1, 0.0) for no predictions."""
    p = np.asarray(predictions, dtype=np.int64).ravel()
    if p.size == 0:
        return -1, 0.0
    counts = np.bincount(p, minlength=int(n_classes))
    c = int(np.argmax(counts))
    return c, float(counts[c] / p.size)


def is_collapsed(predictions: Any, labels: Any, n_classes: int, share: float = COLLAPSE_SHARE) -> bool:
    """True when one class takes >= max(share, (1 + its label share) / 2) of the predictions, on K >= 3 classes."""
    if int(n_classes) < 3:
        return False
    c, top = majority_share(predictions, n_classes)
    if c < 0:
        return False
    y = np.asarray(labels, dtype=np.int64).ravel()
    label_share = float(np.mean(y == c)) if y.size else 1.0 / int(n_classes)
    return top >= max(float(share), (1.0 + label_share) / 2.0)


@dataclass
class ChanceCheck:
    """One evaluation: accuracy on n samples against its chance level, and the share of the top prediction."""

    accuracy: float
    n: int
    chance: float
    p_value: float
    at_chance: bool
    majority_class: int
    majority_share: float
    collapsed: bool

    def to_dict(self) -> dict:
        return asdict(self)


def check_predictions(predictions: Any, labels: Any, n_classes: int) -> ChanceCheck:
    """Accuracy, chance level, binomial test and collapse of one set of predictions against its labels."""
    p = np.asarray(predictions, dtype=np.int64).ravel()
    y = np.asarray(labels, dtype=np.int64).ravel()
    if p.shape != y.shape or p.size == 0:
        raise InputError(f"predictions and labels must be non-empty and of equal length, got {p.size} and {y.size}.")
    acc = float(np.mean(p == y))
    ch = chance_level(y, n_classes)
    pv = binomial_p_value(acc, y.size, ch)
    c, top = majority_share(p, n_classes)
    return ChanceCheck(accuracy=acc, n=int(y.size), chance=ch, p_value=pv, at_chance=pv > ALPHA, majority_class=c,
                       majority_share=top, collapsed=is_collapsed(p, y, n_classes))


def mean_at_chance(accuracies: Sequence[float], sizes: Sequence[int], chances: Sequence[float],
                   alpha: float = ALPHA) -> bool | None:
    """Is the mean of several sets' accuracies at chance? Binomial test with n = Σ n_s, chance = mean of chances."""
    if not accuracies or len(accuracies) != len(sizes) or len(sizes) != len(chances):
        return None
    if any(a is None for a in accuracies) or any(s is None or s < 1 for s in sizes) or any(c is None for c in chances):
        return None
    return is_at_chance(float(np.mean(accuracies)), int(sum(sizes)), float(np.mean(chances)), alpha)


# ------------------------------------------------------------------------------------------ probe records
def layer_flags(record: Mapping[str, Any]) -> list[dict]:
    """Per layer of a probe record (``ProbeResult.to_dict()``): ``{"id": bool|None, "ood": {uri: bool|None},
    "ood_mean": bool|None, "id_collapsed": bool|None, "ood_collapsed": {uri: bool|None}}``.

    Uses the record's own ``at_chance`` / ``collapsed`` fields; for older records without them it tests the
    stored accuracies with the stored sizes and 1/K (None where a size is missing: undecided).
    """
    k = record.get("n_classes") or len(record.get("class_names") or []) or None
    uniform = None if not k else 1.0 / k
    chance = record.get("chance") or {}
    id_chance = chance.get("id", uniform)
    ood_chance = chance.get("ood") or {}
    n_ood = record.get("n_ood") or {}
    uris = list(record.get("ood_data") or [])
    out = []
    for row in record.get("layers", []):
        if "at_chance" in row:
            ac = row["at_chance"]
            col = row.get("collapsed") or {}
            out.append({"id": ac.get("id"), "ood": dict(ac.get("ood") or {}), "ood_mean": ac.get("ood_mean"),
                        "id_collapsed": col.get("id"), "ood_collapsed": dict(col.get("ood") or {})})
            continue
        ood = {u: is_at_chance((row.get("ood_accuracy") or {}).get(u), n_ood.get(u), ood_chance.get(u, uniform)) for u in uris}
        mean = None
        if uris:
            mean = mean_at_chance([(row.get("ood_accuracy") or {}).get(u) for u in uris], [n_ood.get(u) for u in uris],
                                  [ood_chance.get(u, uniform) for u in uris])
        out.append({"id": is_at_chance(row.get("id_accuracy"), record.get("n_test"), id_chance), "ood": ood, "ood_mean": mean,
                    "id_collapsed": None, "ood_collapsed": {u: None for u in uris}})
    return out


def evidence(record: Mapping[str, Any]) -> dict:
    """What a probe record can tell: ``id_at_chance`` / ``ood_at_chance`` (True: at chance at *every* layer,
    False: some layer above chance, None: undecided), ``ood_sets_at_chance`` (the OOD sets at chance at every
    layer), ``collapsed_layers_id`` / ``collapsed_ood`` (layer names, {uri: layer names})."""
    flags = layer_flags(record)
    names = [r["layer"] for r in record.get("layers", [])]

    def every(values: list[bool | None]) -> bool | None:
        if not values or any(v is None for v in values):
            return None
        return all(values)

    uris = list(record.get("ood_data") or [])
    return {
        "id_at_chance": every([f["id"] for f in flags]),
        "ood_at_chance": every([f["ood_mean"] for f in flags]) if uris else None,
        "ood_sets_at_chance": [u for u in uris if every([f["ood"].get(u) for f in flags])],
        "collapsed_layers_id": [n for n, f in zip(names, flags) if f["id_collapsed"]],
        "collapsed_ood": {u: [n for n, f in zip(names, flags) if f["ood_collapsed"].get(u)] for u in uris
                          if any(f["ood_collapsed"].get(u) for f in flags)},
    }


def finetune_at_chance(rec: dict) -> dict:
    """Is a fine-tune summary's ID test / each OOD / mean OOD accuracy at chance? ``{"id": bool|None, "ood": {uri:
    bool|None}, "ood_mean": bool|None, "chance": 1/K or None}``, tested against 1/K (the summary has no label
    counts) with the sizes in its ``record.data``; None where they are missing.

    The summary is what ``assess`` keeps of a fine-tune: ``test_accuracy``, ``ood_accuracy`` {uri: accuracy},
    ``ood_mean_accuracy`` and ``record`` (the loop's record without its trace)."""
    data = ((rec or {}).get("record") or {}).get("data") or {}
    k = data.get("n_classes")
    chance = 1.0 / k if k else None
    n_ood = data.get("n_ood") or {}
    sizes = [n_ood.get(u) for u in (rec.get("ood_accuracy") or {})]
    n_sum = sum(sizes) if sizes and all(isinstance(v, int) for v in sizes) else None
    return {"id": is_at_chance(rec.get("test_accuracy"), data.get("n_test"), chance),
            "ood": {u: is_at_chance(v, n_ood.get(u), chance) for u, v in (rec.get("ood_accuracy") or {}).items()},
            "ood_mean": is_at_chance(rec.get("ood_mean_accuracy"), n_sum, chance), "chance": chance}
