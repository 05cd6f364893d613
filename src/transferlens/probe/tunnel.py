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

Chance-level curves: given per-layer "at chance" flags (:mod:`.chance`, a one-sided binomial test), an OOD
curve that is at chance at every layer gets r, ρ, the tunnel start and its length as None, strength
``"at chance"`` and the reason in ``note``: a peak of noise is no tunnel. An ID curve at chance at every
layer gets ρ and the M23 onset as None.
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
    """The metrics of one OOD curve against the ID curve (layer indices 0-based).

    ``pct_retained``, ``pearson`` and ``length`` are None when the curve is at chance (``note`` says why).
    """

    pct_retained: float | None
    pearson: float | None
    alignment: float
    peak_layer: int
    peak_accuracy: float
    last_accuracy: float
    start: int | None
    length: int | None
    strength: str
    m23_onset: int | None
    note: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _all_true(flags: Sequence[bool | None] | None, size: int, name: str) -> bool:
    """True iff per-layer flags are given and every one is True (None entries: undecided, so False)."""
    if flags is None:
        return False
    f = list(flags)
    if len(f) != size:
        raise InputError(f"{name} needs one flag per layer: got {len(f)} for {size} layers.")
    return bool(f) and all(v is True for v in f)


def tunnel_metrics(id_curve: Any, ood_curve: Any, n_classes: int, n_classes_ood: int | None = None, *,
                   ood_at_chance: Sequence[bool | None] | None = None,
                   id_at_chance: Sequence[bool | None] | None = None) -> TunnelMetrics:
    """All metrics of one (ID curve, OOD curve) pair; ``n_classes`` gives the chance rate 1/K of A.

    ``ood_at_chance`` / ``id_at_chance``: per-layer flags (:func:`transferlens.probe.chance.is_at_chance`). An OOD
    curve at chance at every layer gets no % retained, Pearson, tunnel start or length (None, reason in
    ``note``); an ID curve at chance everywhere gets no Pearson and no M23 onset.
    """
    a, b = _pair(id_curve, ood_curve)
    ood_chance = _all_true(ood_at_chance, b.size, "ood_at_chance")
    id_chance = _all_true(id_at_chance, a.size, "id_at_chance")
    notes = []
    if ood_chance:
        start, length, pct, strength = None, None, None, "at chance"
        notes.append(f"the OOD accuracy is at chance at every layer (peak {100 * float(b.max()):.1f}%), so % retained, "
                     "Pearson and the tunnel are not computed")
    else:
        start, length = tunnel_start(b)
        pct = pct_ood_retained(b)
        strength = tunnel_strength(pct)
    if id_chance:
        notes.append("the ID accuracy is at chance at every layer, so Pearson and the M23 onset are not computed")
    rho = None if (ood_chance or id_chance) else (pearson_id_ood(a, b) if a.size >= 2 else float("nan"))
    return TunnelMetrics(
        pct_retained=pct,
        pearson=rho,
        alignment=id_ood_alignment(float(a[-1]), float(b[-1]), n_classes, n_classes_ood),
        peak_layer=int(np.argmax(b)),
        peak_accuracy=float(b.max()),
        last_accuracy=float(b[-1]),
        start=start,
        length=length,
        strength=strength,
        m23_onset=None if id_chance else m23_onset(a),
        note="; ".join(notes) or None,
    )


@dataclass
class TunnelAnalysis:
    """Per-OOD-set metrics, the metrics of the mean OOD curve (the paper's ⭐ start), and the per-set averages
    (over the sets that have a value: a set at chance has no % retained; None when no set has one)."""

    per_set: dict[str, TunnelMetrics]
    mean_curve: np.ndarray | None
    mean: TunnelMetrics | None
    average_of_sets: dict[str, Any]

    def to_dict(self) -> dict:
        return {
            "per_set": {k: v.to_dict() for k, v in self.per_set.items()},
            "mean_curve": None if self.mean_curve is None else self.mean_curve.tolist(),
            "mean": None if self.mean is None else self.mean.to_dict(),
            "average_of_sets": self.average_of_sets,
        }


def analyse_tunnel(id_curve: Any, ood_curves: Mapping[str, Any], n_classes: int, *,
                   id_at_chance: Sequence[bool | None] | None = None,
                   ood_at_chance: Mapping[str, Sequence[bool | None]] | None = None,
                   mean_at_chance: Sequence[bool | None] | None = None) -> TunnelAnalysis:
    """Metrics for every OOD curve and for their mean curve (same classes as ID, so one chance rate).

    The optional per-layer "at chance" flags (ID, each OOD set, the mean OOD curve) are passed on to
    :func:`tunnel_metrics`, which then leaves chance-level curves without % retained and tunnel.
    """
    a = as_curve(id_curve, "ID curve")
    flags = dict(ood_at_chance or {})
    per = {name: tunnel_metrics(a, c, n_classes, ood_at_chance=flags.get(name), id_at_chance=id_at_chance)
           for name, c in ood_curves.items()}
    if not per:
        return TunnelAnalysis({}, None, None, {})
    mean_curve = np.mean([as_curve(c) for c in ood_curves.values()], axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant curves were already reported per set
        mean = tunnel_metrics(a, mean_curve, n_classes, ood_at_chance=mean_at_chance, id_at_chance=id_at_chance)
    avg: dict[str, Any] = {}
    for key in ("pct_retained", "pearson", "alignment", "length"):
        vals = [getattr(m, key) for m in per.values() if getattr(m, key) is not None]
        avg[key] = float(np.mean(vals)) if vals else None
    avg["strength"] = "at chance" if avg["pct_retained"] is None else tunnel_strength(avg["pct_retained"])
    return TunnelAnalysis(per, mean_curve, mean, avg)


#: how each criterion of :func:`recommend_layer` is named wherever a recommended layer is shown
CRITERIA = {"ood_mean": "best mean OOD accuracy", "id": "best ID accuracy"}


def _pct(v: float) -> str:
    return f"{100.0 * float(v):.1f}%"


@dataclass
class Recommendation:
    """The recommended layer; ``criterion`` is ``"ood_mean"`` or ``"id"`` (named by :data:`CRITERIA`), ``reason``
    quotes accuracies as the tables show them (percent, one decimal), ``warning`` flags chance-level evidence."""

    layer: str
    index: int
    reason: str
    criterion: str = "ood_mean"
    warning: str | None = None

    @property
    def criterion_text(self) -> str:
        return CRITERIA.get(self.criterion, self.criterion)

    def to_dict(self) -> dict:
        return {**asdict(self), "criterion_text": self.criterion_text}


def recommend_layer(layers: Sequence[str], id_curve: Any, ood_curves: Mapping[str, Any] | None = None, *,
                    id_at_chance: Sequence[bool | None] | None = None,
                    ood_mean_at_chance: Sequence[bool | None] | None = None,
                    chance: float | None = None, ood_chance: float | None = None) -> Recommendation:
    """The layer with the best mean OOD accuracy, ties broken by ID accuracy (then the earlier layer).

    Without OOD curves, or when the mean OOD curve is at chance at every layer (``ood_mean_at_chance``): the
    best ID accuracy (ties: the earlier, cheaper layer), criterion ``"id"``. An ID curve at chance at every
    layer (``id_at_chance``) is said in ``warning``. ``chance`` / ``ood_chance``: the chance levels quoted.
    """
    a = as_curve(id_curve, "ID curve")
    names = list(layers)
    if len(names) != a.size:
        raise InputError(f"{len(names)} layer names for {a.size} accuracies.")
    last = a.size - 1
    id_dead = _all_true(id_at_chance, a.size, "id_at_chance")
    id_note = None
    if id_dead:
        id_note = ("the ID accuracy is at chance at every layer (best " + _pct(a.max())
                   + (f", chance {_pct(chance)}" if chance is not None else "") + "): no layer separates the classes")
    curves = [as_curve(c, f"OOD curve {k!r}") for k, c in (ood_curves or {}).items()]
    if any(c.size != a.size for c in curves):
        raise InputError("every OOD curve must have one accuracy per layer, like the ID curve.")
    m = np.mean(curves, axis=0) if curves else None
    ood_dead = m is not None and _all_true(ood_mean_at_chance, a.size, "ood_mean_at_chance")
    if m is None or ood_dead:
        best = int(np.lexsort((np.arange(a.size), -a))[0])
        if m is None:
            lead = "no OOD data given: "
        else:
            lead = (f"the mean OOD accuracy is at chance at every layer (best {_pct(m.max())}"
                    + (f", chance {_pct(ood_chance)}" if ood_chance is not None else "")
                    + "), so it cannot rank the layers: ")
        reason = (lead + f"{names[best]} has the best ID probe accuracy ({_pct(a[best])}"
                  + (f" vs {_pct(a[last])} at the last layer {names[last]})" if best != last else ", and it is the last layer)"))
        if id_note:
            reason += "; but " + id_note
        warning = "; ".join(x for x in ((lead.rstrip(": ") if ood_dead else None), id_note) if x) or None
        return Recommendation(names[best], best, reason, "id", warning)
    best = int(np.lexsort((np.arange(a.size), -a, -m))[0])
    tied = np.flatnonzero(m == m[best])
    k = len(curves)
    reason = f"{names[best]} has the best mean OOD probe accuracy ({_pct(m[best])} over {k} OOD set{'s' * (k > 1)}"
    if tied.size > 1:
        reason += f"; tied with {tied.size - 1} other layer(s), broken by ID accuracy {_pct(a[best])}"
    if best == last:
        reason += "); it is the last probed layer, so there is no OOD tunnel to avoid."
    elif m[last] == m[best]:
        reason += (f"); the last layer {names[last]} is as good out of distribution ({_pct(m[last])}), "
                   + (f"but its ID accuracy is lower ({_pct(a[last])} vs {_pct(a[best])})." if a[last] < a[best]
                      else f"and as good in distribution ({_pct(a[last])}): the earlier layer is taken."))
    else:
        pct = 100.0 * m[last] / m[best] if m[best] > 0 else float("nan")
        reason += (f"); the last layer {names[last]} keeps only {pct:.0f}% of it ({_pct(m[last])} vs {_pct(m[best])}), "
                   f"while its ID accuracy is {_pct(a[best])} vs {_pct(a[last])} at the last layer.")
    if id_note:
        reason += " But " + id_note + "."
    return Recommendation(names[best], best, reason, "ood_mean", id_note)
