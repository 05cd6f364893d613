"""Layer-wise ID/OOD probing in one call: accuracies, tunnel metrics, ranks, NC1 and a recommended layer.

``probe_layers(model, id_data, ood_data=[...])`` extracts every requested layer of ``model`` on the ID data
and each OOD set (one forward pass per batch, cached; see :func:`transferlens.features.extract`), trains one
linear probe per layer **on ID train only**, and evaluates it on ID test and on every OOD set (which must
have the ID classes). This follows the protocol of Harun et al. (NeurIPS 2024, §3; github.com/yousuf907/Tunnel)
with two deliberate changes: the OOD sets share the ID classes (so the ID probe is evaluated on them,
instead of a new probe per OOD dataset), and probes are fast closed-form ridge probes by default
(``probe="lda" | "logistic" | "adamw"`` for the others; adamw is the paper's reference recipe).

Per layer it also reports, from the ID-train statistics streamed for the probe: the numerical rank of the
covariance (#λ > 1e-3 λ₁; Masarczyk et al. 2023), RankMe (Garrido et al. 2023) and NC1 = tr(Σ_W Σ_B⁺)/K
(Papyan et al. 2020), via :mod:`transferlens.metrics`.

Chance and collapse (:mod:`.chance`): every accuracy is tested against its set's chance level (the majority
label rate; one-sided binomial test, α = 0.05) and every set of predictions for collapse (one class takes
>= 80 % of them, K >= 3). The record carries per layer ``at_chance``, ``collapsed`` and
``majority_prediction_share``, and at the top ``chance`` (the levels and the test); a curve at chance at every
layer gets no % retained or tunnel, the recommendation falls back to ID accuracy when the mean OOD curve
is at chance everywhere, and each such case adds a line to ``warnings``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.base import stratified_split
from ..errors import InputError, UsageError
from ..features import FeatureSet, extract
from ..io import atomic_write
from ..metrics.collapse import nc1
from ..metrics.rank import numerical_rank, rankme
from ..metrics.stats import ClassStats
from .adamw import fit_adamw_probe
from .chance import ALPHA, COLLAPSE_SHARE, ChanceCheck, check_predictions, mean_at_chance
from .lda import fit_lda_probe
from .logistic import fit_logistic_probe
from .ridge import fit_ridge_probe
from .tunnel import Recommendation, TunnelAnalysis, analyse_tunnel, recommend_layer

PROBES = ("ridge", "lda", "logistic", "adamw")


@dataclass
class ProbeResult:
    """Everything ``transferlens probe`` reports; ``to_dict()`` is the JSON record's payload."""

    model: str | None
    id_data: str | None
    id_test: str | None
    ood_data: list[str]
    probe: str
    class_names: list[str]
    layers: list[str]
    dims: list[int]
    n_train: int
    n_test: int
    n_ood: dict[str, int]
    id_accuracy: list[float]
    ood_accuracy: dict[str, list[float]]
    numerical_rank: list[float]
    rankme: list[float]
    nc1: list[float]
    tunnel: TunnelAnalysis
    recommendation: Recommendation
    probe_info: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: per layer: {"id": ChanceCheck, "ood": {uri: ChanceCheck}, "ood_mean_at_chance": bool | None}
    checks: list[dict] = field(default_factory=list)
    #: {"id": ID chance level, "ood": {uri: level}, "ood_mean": mean of those, "test", "alpha", "collapse_share"}
    chance: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def ood_mean(self) -> list[float] | None:
        return None if self.tunnel.mean_curve is None else self.tunnel.mean_curve.tolist()

    def to_dict(self) -> dict:
        return {
            "model": self.model, "id_data": self.id_data, "id_test": self.id_test, "ood_data": self.ood_data,
            "probe": self.probe, "class_names": self.class_names, "n_classes": self.n_classes,
            "chance_accuracy": 1.0 / self.n_classes, "chance": self.chance,
            "n_train": self.n_train, "n_test": self.n_test, "n_ood": self.n_ood,
            "layers": [
                {"layer": name, "index": i, "dim": self.dims[i], "id_accuracy": self.id_accuracy[i],
                 "ood_accuracy": {k: v[i] for k, v in self.ood_accuracy.items()},
                 "ood_mean_accuracy": None if self.ood_mean is None else self.ood_mean[i],
                 "numerical_rank": self.numerical_rank[i], "rankme": self.rankme[i], "nc1": self.nc1[i],
                 "probe": self.probe_info[i] if i < len(self.probe_info) else {}, **self._chance_row(i)}
                for i, name in enumerate(self.layers)
            ],
            "tunnel": self.tunnel.to_dict(),
            "recommendation": self.recommendation.to_dict(),
            "timings": self.timings,
            "warnings": self.warnings,
        }

    def _chance_row(self, i: int) -> dict:
        if i >= len(self.checks):
            return {}
        c = self.checks[i]
        return {"at_chance": {"id": c["id"].at_chance, "ood": {u: v.at_chance for u, v in c["ood"].items()},
                              "ood_mean": c["ood_mean_at_chance"]},
                "collapsed": {"id": c["id"].collapsed, "ood": {u: v.collapsed for u, v in c["ood"].items()}},
                "majority_prediction_share": {"id": c["id"].majority_share,
                                              "ood": {u: v.majority_share for u, v in c["ood"].items()}}}

    def at_chance(self, which: str = "id") -> list[bool | None]:
        """Per layer: is the ``"id"``, ``"ood_mean"`` or an OOD URI's accuracy at chance? (None: not tested)."""
        out: list[bool | None] = []
        for c in self.checks:
            if which == "id":
                out.append(c["id"].at_chance)
            elif which == "ood_mean":
                out.append(c["ood_mean_at_chance"])
            else:
                out.append(c["ood"][which].at_chance if which in c["ood"] else None)
        return out

    def plot(self, path: str | Path) -> Path:
        """PNG of the absolute accuracy curves with the chance level dashed and the mean-OOD tunnel shaded."""
        return plot_curves(self, path)


# ----------------------------------------------------------------------------------------------- helpers
def _aligned_labels(reference: list[str], fs: FeatureSet, name: str) -> np.ndarray:
    """Labels of ``fs`` expressed in the class order of ``reference``; a different class set is an error."""
    if list(fs.class_names) == list(reference):
        return fs.labels
    if sorted(fs.class_names) != sorted(reference):
        missing = sorted(set(reference) - set(fs.class_names))[:5]
        extra = sorted(set(fs.class_names) - set(reference))[:5]
        raise InputError(
            f"OOD set {name} has classes {fs.class_names[:8]}{'...' if len(fs.class_names) > 8 else ''} but the ID data "
            f"has {reference[:8]}{'...' if len(reference) > 8 else ''} (missing {missing}, extra {extra}); the ID probe "
            "is evaluated on the OOD set, so both need the same classes (select them with ?classes=...)."
        )
    where = {c: i for i, c in enumerate(reference)}
    remap = np.array([where[c] for c in fs.class_names], dtype=np.int64)
    return remap[fs.labels]


def _split_featureset(fs: FeatureSet, test_fraction: float, seed: int) -> tuple[FeatureSet, FeatureSet]:
    counts = np.bincount(fs.labels, minlength=len(fs.class_names))
    if counts.min() < 2:
        raise InputError(f"every ID class needs >= 2 samples for a train/test split; counts are {counts.tolist()}.")
    tr, te = stratified_split(fs.labels, test_fraction, seed)

    def part(idx: np.ndarray, tag: str) -> FeatureSet:
        return FeatureSet({k: v[idx] for k, v in fs.features.items()}, fs.labels[idx], list(fs.class_names),
                          {**fs.provenance, "split": tag})

    return part(tr, "train"), part(te, "test")


def _fit_probe(kind: str, x: np.ndarray, y: np.ndarray, k: int, val_fraction: float, seed: int, options: dict):
    """Fit one probe; returns (probe, full-train ClassStats or None, info dict)."""
    if kind == "ridge":
        probe, stats = fit_ridge_probe(x, y, n_classes=k, val_fraction=val_fraction, seed=seed, **options)
        info = {"alpha": probe.alpha, "val_accuracy": probe.info["selection"]["val_accuracy_best"]}
        return probe, stats, info
    if kind == "lda":
        probe = fit_lda_probe(x, y, n_classes=k, **options)
        return probe, None, {"shrinkage": probe.info["shrinkage"]}
    if kind == "logistic":
        probe = fit_logistic_probe(x, y, n_classes=k, val_fraction=val_fraction, seed=seed, **options)
        return probe, None, {"C": probe.info["C"], "val_accuracy": max(probe.info["val_accuracy"])}
    if kind == "adamw":
        fit_idx, val_idx = stratified_split(y, val_fraction, seed)
        probe = fit_adamw_probe(x[fit_idx], y[fit_idx], x[val_idx], y[val_idx], n_classes=k, seed=seed, **options)
        return probe, None, {"best_epoch": probe.info["best_epoch"], "val_accuracy": max(probe.info["val_accuracy"])}
    raise UsageError(f"unknown probe {kind!r}; choose one of {', '.join(PROBES)}.")


def _geometry(stats: ClassStats, notes: list[str], layer: str) -> tuple[float, float, float]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = stats.compute()
        rank = float(numerical_rank(s))
        rme = float(rankme(s))
        try:
            c1 = float(nc1(s))
        except InputError as exc:
            notes.append(f"{layer}: NC1 not available ({exc})")
            c1 = float("nan")
    for w in caught:
        msg = f"{layer}: {w.message}"
        if msg not in notes:
            notes.append(msg)
    return rank, rme, c1


# ----------------------------------------------------------------------------------------------- core
def probe_features(
    train: FeatureSet,
    test: FeatureSet,
    ood: Mapping[str, FeatureSet] | None = None,
    *,
    layers: Sequence[str] | None = None,
    probe: str = "ridge",
    val_fraction: float = 0.1,
    seed: int = 0,
    geometry: bool = True,
    probe_options: dict | None = None,
    blas_threads: int | None = 1,
) -> ProbeResult:
    """Probe every layer of precomputed features: fit on ``train``, score on ``test`` and each ``ood`` set.

    ``blas_threads`` caps BLAS/LAPACK threads while probing (None: leave as is). The default 1 is deliberate:
    the D×D eigendecompositions gain little from threads and collapse under oversubscription (eigh of a
    1024² matrix took 1.7 s with 1 thread and 24 s with 2 on the loaded 2-core development machine).
    """
    from threadpoolctl import threadpool_limits

    if blas_threads is not None and blas_threads < 1:
        raise UsageError(f"blas_threads must be >= 1 or None, got {blas_threads}.")
    if blas_threads is None:
        return _probe_features(train, test, ood, layers, probe, val_fraction, seed, geometry, probe_options)
    with threadpool_limits(limits=int(blas_threads), user_api="blas"):
        return _probe_features(train, test, ood, layers, probe, val_fraction, seed, geometry, probe_options)


def _probe_features(train: FeatureSet, test: FeatureSet, ood: Mapping[str, FeatureSet] | None, layers: Sequence[str] | None,
                    probe: str, val_fraction: float, seed: int, geometry: bool, probe_options: dict | None) -> ProbeResult:
    if probe not in PROBES:
        raise UsageError(f"unknown probe {probe!r}; choose one of {', '.join(PROBES)}.")
    ood = dict(ood or {})
    names = list(layers) if layers is not None else train.layers
    if not names:
        raise InputError("no layers to probe.")
    for fs, what in [(test, "ID test")] + [(v, f"OOD {k}") for k, v in ood.items()]:
        missing = [n for n in names if n not in fs.features]
        if missing:
            raise InputError(f"the {what} features lack layer(s) {missing[:5]}; extract the same layers of the same model.")
    missing = [n for n in names if n not in train.features]
    if missing:
        raise InputError(f"the ID train features lack layer(s) {missing[:5]}; available: {train.layers[:10]}.")
    classes = list(train.class_names)
    k = len(classes)
    y_tr = train.labels
    counts = np.bincount(y_tr, minlength=k)
    if k < 2 or counts.min() < 2:
        raise InputError(f"probing needs >= 2 classes with >= 2 training samples each; ID train counts are {counts.tolist()}.")
    y_te = _aligned_labels(classes, test, "ID test")
    y_ood = {name: _aligned_labels(classes, fs, name) for name, fs in ood.items()}
    notes: list[str] = []
    id_acc, dims, infos = [], [], []
    ood_acc: dict[str, list[float]] = {name: [] for name in ood}
    ranks, rmes, nc1s = [], [], []
    t_probe = t_geom = 0.0
    per_layer = []
    checks: list[dict] = []
    for layer in names:
        x_tr = train.features[layer]
        dims.append(int(x_tr.shape[1]))
        if x_tr.shape[0] <= x_tr.shape[1]:
            notes.append(f"{layer}: {x_tr.shape[0]} training samples for {x_tr.shape[1]} dimensions; the probe relies on its regulariser.")
        t0 = time.perf_counter()
        fitted, stats, info = _fit_probe(probe, x_tr, y_tr, k, val_fraction, seed, dict(probe_options or {}))
        t1 = time.perf_counter()
        # accuracy = mean(predict == y), as every probe's .score(); the predictions also give the collapse check
        c_id = check_predictions(fitted.predict(test.features[layer]), y_te, k)
        id_acc.append(c_id.accuracy)
        c_ood: dict[str, ChanceCheck] = {}
        for name, fs in ood.items():
            c_ood[name] = check_predictions(fitted.predict(fs.features[layer]), y_ood[name], k)
            ood_acc[name].append(c_ood[name].accuracy)
        mean_flag = (mean_at_chance([c.accuracy for c in c_ood.values()], [c.n for c in c_ood.values()],
                                    [c.chance for c in c_ood.values()]) if c_ood else None)
        checks.append({"id": c_id, "ood": c_ood, "ood_mean_at_chance": mean_flag})
        t2 = time.perf_counter()
        if geometry:
            if stats is None:
                stats = ClassStats(k, x_tr.shape[1]).update(x_tr, y_tr)
            r, rm, c1 = _geometry(stats, notes, layer)
        else:
            r = rm = c1 = float("nan")
        t3 = time.perf_counter()
        ranks.append(r), rmes.append(rm), nc1s.append(c1)
        infos.append({**info, "seconds_fit": round(t1 - t0, 4), "seconds_eval": round(t2 - t1, 4)})
        per_layer.append(round(t1 - t0, 4))
        t_probe += t2 - t0
        t_geom += t3 - t2
    id_flags = [c["id"].at_chance for c in checks]
    ood_flags = {name: [c["ood"][name].at_chance for c in checks] for name in ood}
    mean_flags = [c["ood_mean_at_chance"] for c in checks]
    chance = {"id": checks[0]["id"].chance, "ood": {name: checks[0]["ood"][name].chance for name in ood},
              "ood_mean": float(np.mean([checks[0]["ood"][n].chance for n in ood])) if ood else None,
              "test": f"one-sided exact binomial test of accuracy > chance at alpha {ALPHA} (chance = majority label rate)",
              "alpha": ALPHA, "collapse_share": COLLAPSE_SHARE}
    notes[:0] = _chance_notes(names, checks, chance, k)  # first: the CLI shows the first few notes
    tunnel = analyse_tunnel(id_acc, ood_acc, k, id_at_chance=id_flags, ood_at_chance=ood_flags,
                            mean_at_chance=mean_flags if ood else None)
    rec = recommend_layer(names, id_acc, ood_acc, id_at_chance=id_flags, ood_mean_at_chance=mean_flags if ood else None,
                          chance=chance["id"], ood_chance=chance["ood_mean"])
    return ProbeResult(
        model=train.provenance.get("model"), id_data=train.provenance.get("data"), id_test=test.provenance.get("data"),
        ood_data=list(ood), probe=probe, class_names=classes, layers=names, dims=dims,
        n_train=train.n_samples, n_test=test.n_samples, n_ood={n: fs.n_samples for n, fs in ood.items()},
        id_accuracy=id_acc, ood_accuracy=ood_acc, numerical_rank=ranks, rankme=rmes, nc1=nc1s,
        tunnel=tunnel, recommendation=rec, probe_info=infos,
        timings={"probe_seconds": round(t_probe, 3), "geometry_seconds": round(t_geom, 3), "probe_fit_seconds_per_layer": per_layer},
        warnings=notes, checks=checks, chance=chance,
    )


def _chance_notes(names: list[str], checks: list[dict], chance: dict, k: int) -> list[str]:
    """Warnings for curves at chance at every layer and for collapsed predictions (see :mod:`.chance`)."""
    notes = []

    def pct(v: float) -> str:
        return f"{100 * v:.1f}%"

    ids = [c["id"] for c in checks]
    if all(c.at_chance for c in ids):
        best = max(c.accuracy for c in ids)
        notes.append(f"ID: the probe is at chance at every layer (best {pct(best)} vs chance {pct(chance['id'])} on "
                     f"{ids[0].n} test samples): these features do not separate the ID classes, so no layer can be recommended "
                     "on evidence.")
    for uri in chance["ood"]:
        cs = [c["ood"][uri] for c in checks]
        if all(c.at_chance for c in cs):
            notes.append(f"OOD {uri}: the probe is at chance at every layer (best {pct(max(c.accuracy for c in cs))} vs chance "
                         f"{pct(cs[0].chance)} on {cs[0].n} samples): the OOD evidence of this set is at chance, so its % retained "
                         "and tunnel are not computed; check the set (a shift that destroys the images? other labels?).")
    if chance["ood"] and len(chance["ood"]) > 1 and all(c["ood_mean_at_chance"] for c in checks):
        notes.append(f"OOD mean: at chance at every layer (chance {pct(chance['ood_mean'])}); the layer is chosen by ID accuracy.")
    for what, get in [("ID", lambda c: c["id"])] + [(f"OOD {u}", (lambda c, u=u: c["ood"][u])) for u in chance["ood"]]:
        bad = [n for n, c in zip(names, checks) if get(c).collapsed]
        if bad:
            top = max(get(c).majority_share for c in checks if get(c).collapsed)
            notes.append(f"{what}: the probe predicts one class for most samples (collapsed: up to {pct(top)} of the predictions "
                         f"on {k} classes) at {len(bad)} layer(s): {', '.join(bad[:6])}{' ...' if len(bad) > 6 else ''}.")
    return notes


def probe_layers(
    model: str,
    id_data: str,
    ood_data: Sequence[str] = (),
    layers: str | list[str] = "all",
    *,
    id_test: str | None = None,
    test_fraction: float = 0.25,
    pool: str = "avg2x2",
    size: int | None = None,
    probe: str = "ridge",
    val_fraction: float = 0.1,
    seed: int = 0,
    geometry: bool = True,
    probe_options: dict | None = None,
    blas_threads: int | None = 1,
    batch_size: int = 64,
    cache: bool = True,
    progress: bool = False,
) -> ProbeResult:
    """Extract, probe and analyse every layer of ``model`` on ID data and OOD sets (see module docstring).

    ``id_test``: a separate ID test URI; without it ``id_data`` is split stratified (``test_fraction``,
    ``seed``). ``ood_data``: URIs with the ID classes, e.g. ``shift:gaussian_noise:3:builtin:digits?split=test``.

    Example (per layer: ``id_accuracy``, ``ood_accuracy[uri]``; ``tunnel``; the ``recommendation``)::

        >>> res = probe_layers("zoo:mlp-g50-s16", "builtin:digits-uci?n_per_class=20",
        ...                    ["shift:blur:3:builtin:digits-uci?n_per_class=10"])
        >>> res.layers, res.recommendation.layer
        (['layers.0', 'layers.1', 'head'], 'layers.1')
    """
    if probe not in PROBES:
        raise UsageError(f"unknown probe {probe!r}; choose one of {', '.join(PROBES)}.")
    if len(set(ood_data)) != len(list(ood_data)):
        raise UsageError("the same OOD data URI is given twice; list each OOD set once.")
    timings: dict[str, Any] = {}
    t0 = time.perf_counter()
    fs = extract(model, id_data, layers, pool=pool, size=size, batch_size=batch_size, cache=cache, progress=progress)
    timings["extract_id_seconds"] = round(time.perf_counter() - t0, 3)
    if id_test is None:
        train, test = _split_featureset(fs, test_fraction, seed)
    else:
        train = fs
        t0 = time.perf_counter()
        test = extract(model, id_test, layers, pool=pool, size=size, batch_size=batch_size, cache=cache, progress=progress)
        timings["extract_id_test_seconds"] = round(time.perf_counter() - t0, 3)
    ood_sets: dict[str, FeatureSet] = {}
    for uri in ood_data:
        t0 = time.perf_counter()
        ood_sets[uri] = extract(model, uri, layers, pool=pool, size=size, batch_size=batch_size, cache=cache, progress=progress)
        timings.setdefault("extract_ood_seconds", {})[uri] = round(time.perf_counter() - t0, 3)
    result = probe_features(train, test, ood_sets, layers=train.layers, probe=probe, val_fraction=val_fraction, seed=seed,
                            geometry=geometry, probe_options=probe_options, blas_threads=blas_threads)
    result.model, result.id_data = model, id_data
    result.id_test = id_test if id_test is not None else f"{id_data} (stratified held-out {test_fraction:g}, seed {seed})"
    result.timings = {**timings, **result.timings, "cache": {"id": fs.provenance.get("cache")},
                      "blas_threads": blas_threads}
    return result


# ----------------------------------------------------------------------------------------------- plot
def plot_curves(result: ProbeResult, path: str | Path) -> Path:
    """Write :func:`curves_figure` as a PNG to ``path``."""
    fig = curves_figure(result)
    return atomic_write(path, lambda tmp: fig.savefig(str(tmp), format="png"))


def curves_figure(result: ProbeResult):  # -> matplotlib.figure.Figure (imported lazily)
    """Absolute ID accuracy, each OOD curve and their mean (⭐ at the recommended layer), chance dashed, tunnel grey.

    Absolute, not divided by each curve's maximum: a normalised curve at chance looks like any other. Curves at
    chance at every layer say so in the legend; layers whose accuracy is at chance are drawn as hollow markers.
    """
    from matplotlib.figure import Figure

    x = np.arange(len(result.layers))
    fig = Figure(figsize=(max(6.0, 0.45 * len(x) + 3) + 3.5, 4.2), dpi=120)  # + the legend on the right
    ax = fig.add_subplot(1, 1, 1)
    mean = result.tunnel.mean
    if mean is not None and mean.start is not None:
        ax.axvspan(mean.start, len(x) - 1, color="0.85", zorder=0, label=f"tunnel (mean OOD, length {mean.length})")

    def curve(values: Sequence[float], flags: list[bool | None], style: str, color: str, lw: float, label: str) -> None:
        v = np.asarray(values, dtype=np.float64)
        dead = bool(flags) and all(f is True for f in flags)
        ax.plot(x, v, style, color=color, lw=lw, ms=4, label=label + (" (at chance at every layer)" if dead else ""))
        hollow = [i for i, f in enumerate(flags) if f is True]
        if hollow:
            ax.plot(x[hollow], v[hollow], "o", ms=7, mfc="white", mec=color, ls="none", zorder=4)

    curve(result.id_accuracy, result.at_chance("id"), "-o", "C0", 2, "ID")
    for i, (name, c) in enumerate(result.ood_accuracy.items()):
        short = name if len(name) <= 48 else name[:45] + "..."
        curve(c, result.at_chance(name), "--", f"C{i + 2}", 1, f"OOD: {short}")
    if result.ood_mean is not None:
        curve(result.ood_mean, result.at_chance("ood_mean"), "-s", "C1", 2, "OOD mean")
    rec = result.recommendation
    y_rec = result.ood_mean[rec.index] if rec.criterion == "ood_mean" and result.ood_mean is not None else result.id_accuracy[rec.index]
    ax.plot([rec.index], [y_rec], marker="*", color="C3", ms=16, ls="none", zorder=5,
            label=f"recommended layer ({rec.criterion_text})")
    levels = {"ID": result.chance.get("id", 1.0 / result.n_classes)}
    if result.ood_data and result.chance.get("ood_mean") is not None:
        levels["OOD"] = result.chance["ood_mean"]
    if len({round(v, 6) for v in levels.values()}) == 1:
        ax.axhline(levels["ID"], color="0.4", lw=1, ls="--", label=f"chance ({100 * levels['ID']:.1f}%)")
    else:
        for (what, v), col in zip(levels.items(), ("0.4", "C1")):
            ax.axhline(v, color=col, lw=1, ls="--", alpha=0.8, label=f"{what} chance ({100 * v:.1f}%)")
    ax.set_xticks(x)
    ax.set_xticklabels(result.layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("probe accuracy (hollow: at chance)")
    title = f"{result.model or 'features'}: {result.probe} probes"
    if mean is not None:
        title += (f", mean OOD retained {mean.pct_retained:.1f}%" if mean.pct_retained is not None
                  else ", mean OOD at chance: no % retained")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), framealpha=0.9)
    fig.tight_layout()
    return fig
