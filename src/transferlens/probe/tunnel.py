"""The tunnel effect from layer-wise probe accuracies: the three metrics of Harun et al. and the tunnel.

Curves are probe accuracies in [0, 1] over the probed layers l = 0..n (n = the last probed layer, the
"penultimate" layer of the paper). For one OOD set with accuracies a_OOD and the ID curve a_ID
(Harun, Lee, Gallardo, Krishnan & Kanan, "What Variables Affect Out-of-Distribution Generalization in
Pretrained Models?", NeurIPS 2024, §3.1 and App. A.8; code github.com/yousuf907/Tunnel):

    % OOD performance retained   r = 100 · a_OOD(n) / max_l a_OOD(l)          (100: no tunnel)
    Pearson correlation          ρ = pearson(a_ID(0..n), a_OOD(0..n))
    ID/OOD alignment             A = (α_ID − 1/K_ID) · (α_OOD − 1/K_OOD)
    tunnel                       l_m = argmax_l a_OOD(l); it starts at l_m iff l_m < n and a_OOD(l_m) > a_OOD(n),
                                 and has length n − l_m (0 and start = None otherwise)

Deliberate differences from the paper: α_ID is the ID *probe* accuracy at the last probed layer (the paper
uses the backbone's own ID top-1, which a user's pretrained model on other classes does not have);
layer indices are 0-based. Ties of the maximum take the first layer (``np.argmax``), so a flat top that
reaches the last layer is "no tunnel". Also reported: the Masarczyk et al. (NeurIPS 2023, "The Tunnel
Effect") onset, the first layer whose ID accuracy reaches 95 % of the last layer's, and the strength bin
of r (negligible ≥ 95, weak ≥ 90, medium ≥ 80, strong < 80; H24 §4).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError

STRENGTH_BINS = ((95.0, "negligible"), (90.0, "weak"), (80.0, "medium"), (0.0, "strong"))


def as_curve(values: Any, name: str = "accuracy curve", min_len: int = 1) -> np.ndarray:
    """A finite 1-D float64 curve of accuracies in [0, 1] with at least ``min_len`` layers."""
    arr = np.asarray(values, dtype=np.float64) if not hasattr(values, "detach") else values.detach().cpu().numpy().astype(np.float64)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D sequence (one accuracy per layer), got shape {arr.shape}.")
    if arr.size < min_len:
        raise InputError(f"{name} needs at least {min_len} layer(s), got {arr.size}.")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or Inf; every layer needs an accuracy.")
    if arr.min() < 0 or arr.max() > 1:
        raise InputError(f"{name} must hold accuracies in [0, 1] (fractions, not percent); got range [{arr.min():.4g}, {arr.max():.4g}].")
    return arr


def _pair(id_curve: Any, ood_curve: Any) -> tuple[np.ndarray, np.ndarray]:
    a = as_curve(id_curve, "ID curve")
    b = as_curve(ood_curve, "OOD curve")
    if a.shape != b.shape:
        raise InputError(f"ID and OOD curves must cover the same layers, got {a.size} and {b.size} values.")
    return a, b


def pct_ood_retained(ood_curve: Any) -> float:
    """r = 100 · a(n) / max_l a(l): the share of the best OOD accuracy still there at the last layer."""
    a = as_curve(ood_curve, "OOD curve")
    peak = float(a.max())
    if peak <= 0:
        raise InputError("the OOD accuracy is 0 at every layer; % retained is undefined.")
    if a[-1] == peak:
        return 100.0  # exact, not 100·a/a rounded
    return 100.0 * float(a[-1]) / peak


def pearson_id_ood(id_curve: Any, ood_curve: Any) -> float:
    """Pearson correlation of the ID and OOD curves over the layers; NaN (with a warning) if one is constant."""
    a, b = _pair(id_curve, ood_curve)
    if a.size < 2:
        raise InputError("a Pearson correlation needs at least 2 layers.")
    da, db = a - a.mean(), b - b.mean()
    na, nb = np.sqrt(da @ da), np.sqrt(db @ db)
    if na <= 1e-15 * max(1.0, abs(a).max()) or nb <= 1e-15 * max(1.0, abs(b).max()):
        warnings.warn("an accuracy curve is constant over the layers; the Pearson correlation is undefined (NaN).", stacklevel=2)
        return float("nan")
    return float(np.clip(da @ db / (na * nb), -1.0, 1.0))


def id_ood_alignment(id_accuracy: float, ood_accuracy: float, n_classes_id: int, n_classes_ood: int | None = None) -> float:
    """A = (α_ID − 1/K_ID)(α_OOD − 1/K_OOD), accuracies as fractions (H24 App. A.8)."""
    for name, v in (("id_accuracy", id_accuracy), ("ood_accuracy", ood_accuracy)):
        if not (np.isfinite(v) and 0 <= v <= 1):
            raise InputError(f"{name} must be a fraction in [0, 1], got {v}.")
    k_ood = n_classes_id if n_classes_ood is None else n_classes_ood
    if int(n_classes_id) < 2 or int(k_ood) < 2:
        raise InputError(f"the number of classes must be >= 2, got {n_classes_id} and {k_ood}.")
    return float((id_accuracy - 1.0 / n_classes_id) * (ood_accuracy - 1.0 / k_ood))


def tunnel_start(ood_curve: Any) -> tuple[int | None, int]:
    """(start, length): start = l_m = argmax a if l_m < n and a(l_m) > a(n), length = n − l_m; else (None, 0)."""
    a = as_curve(ood_curve, "OOD curve")
    n = a.size - 1
    lm = int(np.argmax(a))
    if lm < n and a[lm] > a[n]:
        return lm, n - lm
    return None, 0


def m23_onset(id_curve: Any, fraction: float = 0.95) -> int | None:
    """Masarczyk et al. (2023) onset: first layer with a_ID(l) ≥ fraction · a_ID(n) (None if a_ID(n) = 0)."""
    if not 0 < fraction <= 1:
        raise InputError(f"fraction must be in (0, 1], got {fraction}.")
    a = as_curve(id_curve, "ID curve")
    if a[-1] <= 0:
        return None
    return int(np.flatnonzero(a >= fraction * a[-1])[0])


def tunnel_strength(pct_retained: float) -> str:
    """H24's bins of % OOD retained: negligible [95, 100], weak [90, 95), medium [80, 90), strong [0, 80)."""
    if not np.isfinite(pct_retained):
        return "unknown"
    for lo, label in STRENGTH_BINS:
        if pct_retained >= lo:
            return label
    return "strong"


@dataclass
class TunnelMetrics:
    """The metrics of one OOD curve against the ID curve (layer indices 0-based)."""

    pct_retained: float
    pearson: float
    alignment: float
    peak_layer: int
    peak_accuracy: float
    last_accuracy: float
    start: int | None
    length: int
    strength: str
    m23_onset: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def tunnel_metrics(id_curve: Any, ood_curve: Any, n_classes: int, n_classes_ood: int | None = None) -> TunnelMetrics:
    """All metrics of one (ID curve, OOD curve) pair; ``n_classes`` gives the chance rate 1/K of A."""
    a, b = _pair(id_curve, ood_curve)
    start, length = tunnel_start(b)
    pct = pct_ood_retained(b)
    rho = pearson_id_ood(a, b) if a.size >= 2 else float("nan")
    return TunnelMetrics(
        pct_retained=pct,
        pearson=rho,
        alignment=id_ood_alignment(float(a[-1]), float(b[-1]), n_classes, n_classes_ood),
        peak_layer=int(np.argmax(b)),
        peak_accuracy=float(b.max()),
        last_accuracy=float(b[-1]),
        start=start,
        length=length,
        strength=tunnel_strength(pct),
        m23_onset=m23_onset(a),
    )


@dataclass
class TunnelAnalysis:
    """Per-OOD-set metrics, the metrics of the mean OOD curve (the paper's ⭐ start), and the per-set averages."""

    per_set: dict[str, TunnelMetrics]
    mean_curve: np.ndarray | None
    mean: TunnelMetrics | None
    average_of_sets: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "per_set": {k: v.to_dict() for k, v in self.per_set.items()},
            "mean_curve": None if self.mean_curve is None else self.mean_curve.tolist(),
            "mean": None if self.mean is None else self.mean.to_dict(),
            "average_of_sets": self.average_of_sets,
        }


def analyse_tunnel(id_curve: Any, ood_curves: Mapping[str, Any], n_classes: int) -> TunnelAnalysis:
    """Metrics for every OOD curve and for their mean curve (same classes as ID, so one chance rate)."""
    a = as_curve(id_curve, "ID curve")
    per = {name: tunnel_metrics(a, c, n_classes) for name, c in ood_curves.items()}
    if not per:
        return TunnelAnalysis({}, None, None, {})
    mean_curve = np.mean([as_curve(c) for c in ood_curves.values()], axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant curves were already reported per set
        mean = tunnel_metrics(a, mean_curve, n_classes)
    avg = {
        key: float(np.mean([getattr(m, key) for m in per.values()]))
        for key in ("pct_retained", "pearson", "alignment", "length")
    }
    avg["strength"] = tunnel_strength(avg["pct_retained"])  # type: ignore[assignment]
    return TunnelAnalysis(per, mean_curve, mean, avg)


@dataclass
class Recommendation:
    layer: str
    index: int
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def recommend_layer(layers: Sequence[str], id_curve: Any, ood_curves: Mapping[str, Any] | None = None) -> Recommendation:
    """The layer with the best mean OOD accuracy, ties broken by ID accuracy (then the earlier layer).

    Without OOD curves: the best ID accuracy (ties: the earlier, cheaper layer).
    """
    a = as_curve(id_curve, "ID curve")
    names = list(layers)
    if len(names) != a.size:
        raise InputError(f"{len(names)} layer names for {a.size} accuracies.")
    last = a.size - 1
    if not ood_curves:
        best = int(np.lexsort((np.arange(a.size), -a))[0])
        reason = (f"no OOD data given: {names[best]} has the best ID probe accuracy ({a[best]:.3f}"
                  + (f" vs {a[last]:.3f} at the last layer {names[last]})" if best != last else ", and it is the last layer)"))
        return Recommendation(names[best], best, reason)
    curves = [as_curve(c, f"OOD curve {k!r}") for k, c in ood_curves.items()]
    if any(c.size != a.size for c in curves):
        raise InputError("every OOD curve must have one accuracy per layer, like the ID curve.")
    m = np.mean(curves, axis=0)
    best = int(np.lexsort((np.arange(a.size), -a, -m))[0])
    tied = np.flatnonzero(m == m[best])
    k = len(curves)
    reason = f"{names[best]} has the best mean OOD probe accuracy ({m[best]:.3f} over {k} OOD set{'s' * (k > 1)}"
    if tied.size > 1:
        reason += f"; tied with {tied.size - 1} other layer(s), broken by ID accuracy {a[best]:.3f}"
    if best == last:
        reason += "); it is the last probed layer, so there is no OOD tunnel to avoid."
    else:
        pct = 100.0 * m[last] / m[best] if m[best] > 0 else float("nan")
        reason += (f"); the last layer {names[last]} keeps only {pct:.1f}% of it ({m[last]:.3f}), "
                   f"while its ID accuracy is {a[best]:.3f} vs {a[last]:.3f} at the last layer.")
    return Recommendation(names[best], best, reason)
