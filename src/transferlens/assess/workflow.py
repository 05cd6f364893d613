"""``assess``: from candidate models and a small labelled dataset to a recommendation and an HTML report.

Stages (each one's record in ``<out>/stages/``, reused when its inputs did not change):

1. ``data``: load the train / test / OOD sets; an OOD set whose classes differ from the ID classes is
   set aside with its error, the others go on.
2. ``models``: resolve every candidate (no loading); a failure is recorded, the others go on.
3. ``rank``: transferability scores and the combined mean-rank recommendation (:func:`rank_models`).
4. ``probe:<model>``: layer-wise ID/OOD ridge probes and the tunnel for the ``top_k`` best-ranked models.
5. ``geometry:<model>``: NC, ranks, GC and few-shot accuracy per layer, and few-shot accuracy vs shots.
5b. ``field`` (with ``field=DATA``): every scored candidate's accuracy on the unlabelled field data, estimated
   (ATC, DoC, agreement-on-the-line, ID accuracy; :mod:`.field`).
6. ``finetune:<method>`` (with ``finetune=True``): a short fine-tune of the winner, FTP vs plain.

Then the decision (:mod:`.decision`), ``assess.json`` and ``report.html``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from ..data import load_data
from ..errors import InputError, TransferLensError, UsageError
from ..io import write_record
from ..report.naming import data_label
from .analysis import fewshot_curve, score_agreement
from .config import AssessConfig, make_config
from .decision import decide
from .stages import Event, StageOutcome, StageRunner, StageSkipped, StageUnavailable, inputs_hash, stage_filename

_VERSIONED = ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "matplotlib", "timm", "transformers")


def _describe(uri: str) -> dict:
    ds = load_data(uri)
    return {"uri": uri, "canonical": ds.uri, "n": len(ds), "n_classes": ds.n_classes, "class_names": list(ds.class_names),
            "kind": ds.kind, "fingerprint": ds.fingerprint, "skipped": ds.info.get("skipped")}


def _class_problem(name: str, d: dict, train: dict) -> str | None:
    if d["kind"] != train["kind"]:
        return f"{name} {d['uri']} holds {d['kind']} data but the ID data is {train['kind']}."
    extra = [c for c in d["class_names"] if c not in train["class_names"]]
    missing = [c for c in train["class_names"] if c not in d["class_names"]]
    if extra:
        return (f"{name} {d['uri']} has classes the ID data lacks ({', '.join(extra[:8])}{'...' if len(extra) > 8 else ''}); "
                "the ID probe cannot predict them: select the shared classes with ?classes=...")
    if missing:
        return (f"{name} {d['uri']} lacks ID classes ({', '.join(missing[:8])}{'...' if len(missing) > 8 else ''}); "
                "evaluate on a set with every ID class, or select the shared classes of the ID data with ?classes=...")
    return None


def describe_data(cfg: AssessConfig) -> dict:
    """The ``data`` stage: sizes, classes and fingerprints; unusable test / OOD sets are recorded, not fatal."""
    train = _describe(cfg.train)
    if train["n_classes"] < 2:
        raise InputError(f"the ID data {cfg.train} has {train['n_classes']} class; a transfer assessment needs >= 2.")
    test, test_error = None, None
    if cfg.test:
        try:
            test = _describe(cfg.test)
            test_error = _class_problem("the ID test set", test, train)
        except TransferLensError as exc:
            test_error = str(exc)
        if test_error:
            test = None
    ood = []
    for uri in cfg.ood:
        entry: dict[str, Any] = {"uri": uri, "label": data_label(uri), "error": None}
        try:
            d = _describe(uri)
            entry.update(d)
            entry["error"] = _class_problem("OOD set", d, train)
        except TransferLensError as exc:
            entry["error"] = str(exc)
        ood.append(entry)
    return {"train": train, "test": test, "test_error": test_error, "ood": ood}


def resolve_models(models: list[str]) -> dict:
    """The ``models`` stage: each candidate's canonical URI, kind and cache identity (nothing is loaded)."""
    from ..models import resolve_model

    out = []
    for m in models:
        try:
            ref = resolve_model(m)
            out.append({"model": m, "uri": ref.uri, "kind": ref.kind, "identity": ref.identity, "error": None})
        except TransferLensError as exc:
            out.append({"model": m, "uri": None, "kind": None, "identity": None, "error": str(exc)})
    return {"models": out}


def provenance() -> dict:
    from importlib import metadata

    import torch

    from .. import __version__

    versions = {"transferlens": __version__, "python": platform.python_version()}
    for pkg in _VERSIONED:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"versions": versions, "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "command": " ".join(["transferlens", *sys.argv[1:]])
            if Path(sys.argv[0]).name == "transferlens" else None}


def _load_finetune() -> Callable[..., dict]:
    try:
        from ..finetune.loop import run_finetune
    except ImportError as exc:
        raise StageUnavailable(f"the fine-tuning loop (transferlens.finetune.loop) is not available in this version ({exc}).") from None
    return run_finetune


def _finetune_summary(rec: dict, method: str, ood: list[str]) -> dict:
    """The fields the report needs from a fine-tune record: ID test accuracy and per-OOD accuracies.

    Reads ``accuracy.test`` / ``accuracy.ood`` (``transferlens.finetune/1``) or top-level ``test_accuracy`` /
    ``ood_accuracy``; the per-tensor trace is left in the loop's own ``record.json``.
    """
    acc = rec.get("accuracy") if isinstance(rec.get("accuracy"), dict) else {}
    test_acc = rec.get("test_accuracy", acc.get("test"))
    raw = rec.get("ood_accuracy") or acc.get("ood") or {}
    per_ood = {str(k): float(v) for k, v in raw.items() if v is not None} if isinstance(raw, dict) else {}
    mean = sum(per_ood.values()) / len(per_ood) if per_ood else None
    kept = {k: v for k, v in rec.items() if k != "trace"}
    return {"method": method, "test_accuracy": None if test_acc is None else float(test_acc),
            "val_accuracy": acc.get("val"), "ood_accuracy": per_ood, "ood_mean_accuracy": mean, "ood_data": ood, "record": kept}


def _identity(models_res: dict, m: str) -> str:
    row = next((r for r in models_res["models"] if r["model"] == m), None)
    return (row or {}).get("identity") or f"error:{(row or {}).get('error')}"


def _data_id(d: dict | None) -> dict | None:
    return None if d is None else {k: d.get(k) for k in ("uri", "canonical", "n", "fingerprint")}


def assess(models: list[str] | None = None, data: str | None = None, out: str | Path = "transferlens-out", *,
           test: str | None = None, ood: list[str] | None = None, target: str | None = None, scores: list[str] | None = None,
           top_k: int | None = None, pool: str | None = None, seed: int = 0, finetune: bool = False, finetune_epochs: int = 10,
           gc_samples: int | None = None, reuse: bool = True, report: bool = True, progress: bool = False,
           on_event: Event | None = None, threads: int | None = None, field: str | None = None, budget: float | None = None,
           budget_top: int = 4) -> dict:
    """Run the workflow into ``out`` and return the loaded run (see :func:`transferlens.report.run.load_run`).

    With no ``models`` and no ``data``: the built-in ``photos`` target (``defaults.DEFAULT_TARGET``) against the real
    ImageNet backbones installed here, their random-init twins and three zoo models (``config.default_models``).
    ``threads``: torch and BLAS threads during the run (restored after; None leaves them as they are).
    ``field``: unlabelled deployment data (labels ignored if present): estimated field accuracy per candidate.
    ``budget``: minutes of brief fine-tuning of the scores' ``budget_top`` candidates by successive halving
    (:mod:`transferlens.budget`); the measured winner joins the probed shortlist and the decision says what it measured.

    Example (writes ``OUT/stages/*.json`` and ``OUT/report.html``; ``transferlens.assess(...)`` is the same call)::

        >>> import tempfile
        >>> run = assess(["zoo:mlp-g50-s16", "zoo:vgg-g50"], "builtin:digits-uci?n_per_class=10", tempfile.mkdtemp(),
        ...              top_k=1, gc_samples=0, scores=["logme"])
        >>> run["assess"]["decision"]["model"]
        'zoo:mlp-g50-s16'
    """
    if threads is not None and threads < 1:
        raise UsageError(f"threads must be >= 1 (or None to leave the thread settings alone), got {threads}.")
    with _thread_limit(threads):
        return _assess(models, data, out, test=test, ood=ood, target=target, scores=scores, top_k=top_k, pool=pool, seed=seed,
                       finetune=finetune, finetune_epochs=finetune_epochs, gc_samples=gc_samples, reuse=reuse, report=report,
                       progress=progress, on_event=on_event, field=field, budget=budget, budget_top=budget_top)


@contextlib.contextmanager
def _thread_limit(threads: int | None) -> Iterator[None]:
    """Cap torch intra-op and BLAS threads. The zoo's models are tiny: on a shared 2-core machine two OpenMP
    threads spin against other jobs (the default run took 6 min with 2 threads and 40 s with 1 under load)."""
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def _assess(models: list[str] | None, data: str | None, out: str | Path, *, test: str | None, ood: list[str] | None,
            target: str | None, scores: list[str] | None, top_k: int | None, pool: str | None, seed: int, finetune: bool,
            finetune_epochs: int, gc_samples: int, reuse: bool, report: bool, progress: bool, on_event: Event | None,
            field: str | None = None, budget: float | None = None, budget_top: int = 4) -> dict:
    from ..defaults import DEFAULT_TOP_K
    from ..report.run import load_run

    modality = None
    if data is not None and not models:
        try:
            modality = load_data(data).kind
        except TransferLensError:
            pass  # the data stage reports it

    cfg = make_config(models, data, test=test, ood=ood, target=target, scores=scores,
                      top_k=DEFAULT_TOP_K if top_k is None else top_k, pool=pool, seed=seed, finetune=finetune,
                      finetune_epochs=finetune_epochs, gc_samples=gc_samples, modality=modality, field=field,
                      budget=budget, budget_top=budget_top)
    run_dir = Path(out)
    started = _dt.datetime.now(_dt.timezone.utc)
    t_start = time.perf_counter()
    runner = StageRunner(run_dir, on_event, reuse=reuse)
    records: dict[str, Any] = {"probes": {}, "geometry": {}, "finetune": {}}

    def rel(o: StageOutcome) -> str:
        return f"stages/{o.path.name}"

    data_o = runner.run("data", {"config": cfg.to_dict()}, lambda: describe_data(cfg), cache=False)
    records["data"] = rel(data_o)
    models_o = runner.run("models", {"models": cfg.models}, lambda: resolve_models(cfg.models), cache=False)
    records["models"] = rel(models_o)
    dres, mres = data_o.result if data_o.ok else None, models_o.result or {"models": []}
    valid_ood = [e["uri"] for e in (dres or {}).get("ood", []) if not e.get("error")]
    test_uri = cfg.test if dres and dres.get("test") else None
    train_id = _data_id(dres["train"]) if dres else None
    test_id = _data_id(dres.get("test")) if dres else None
    ood_ids = [_data_id(e) for e in (dres or {}).get("ood", []) if not e.get("error")]

    def need_data() -> None:
        if dres is None:
            raise StageSkipped(f"the data stage failed: {data_o.error}")

    def do_rank() -> dict:
        from ..ranking import rank_models

        need_data()
        rec = rank_models(cfg.models, cfg.train, scores=cfg.scores, seed=cfg.seed, progress=progress)
        rec["agreement"] = score_agreement(rec)
        return rec

    from .. import ranking  # the combination rule is an input: a record made under another default is stale

    rank_o = runner.run("rank", {"models": [_identity(mres, m) for m in cfg.models], "train": train_id, "scores": cfg.scores,
                                 "seed": cfg.seed, "combined": [ranking.COMBINED_AGGREGATOR, list(ranking.COMBINED_SCORES)]},
                        do_rank)
    records["rank"] = rel(rank_o)
    rank = rank_o.result if rank_o.ok else None
    shortlist = list((rank or {}).get("ranking") or [])[: cfg.top_k]
    halving = _budget_stage(runner, records, cfg, mres, rank, train_id, rel) if cfg.budget else None
    if halving and halving.get("recommended") and halving["recommended"] not in shortlist:
        shortlist.append(halving["recommended"])  # the measured winner gets the layer-wise picture too
    rank_layer = {r["model"]: r.get("layer") for r in (rank or {}).get("models", [])}

    probes: dict[str, dict] = {}
    for m in shortlist:
        def do_probe(m: str = m) -> dict:
            from ..probe.analysis import probe_layers

            return probe_layers(m, cfg.train, valid_ood, "all", id_test=test_uri, pool=cfg.pool, probe=cfg.probe,
                                seed=cfg.seed, progress=progress).to_dict()

        o = runner.run(f"probe:{m}", {"model": _identity(mres, m), "train": train_id, "test": test_id, "ood": ood_ids,
                                       "pool": cfg.pool, "probe": cfg.probe, "seed": cfg.seed}, do_probe)
        records["probes"][m] = rel(o)
        if o.ok:
            probes[m] = o.result

    for m in shortlist:
        layers = [x for x in ((probes.get(m) or {}).get("recommendation", {}).get("layer"), rank_layer.get(m)) if x]
        layers = list(dict.fromkeys(layers))

        def do_geometry(m: str = m, layers: list[str] = layers) -> dict:
            from ..features import extract
            from ..geometry.report import geometry_report

            # GC (the costly part: backward passes) on the layers the recommendation uses; NC, ranks, few-shot on all
            g = geometry_report(m, cfg.train, "all", pool=cfg.pool, seed=cfg.seed, gc_samples=cfg.gc_samples, progress=progress,
                                gc_layers=layers)
            fs = extract(m, cfg.train, "all", pool=cfg.pool)
            g["fewshot_curves"] = {name: fewshot_curve(fs[name], fs.labels, cfg.shots, seed=cfg.seed)
                                   for name in layers if name in fs.features}
            return g

        o = runner.run(f"geometry:{m}", {"model": _identity(mres, m), "train": train_id, "pool": cfg.pool, "seed": cfg.seed,
                                          "gc_samples": cfg.gc_samples, "shots": list(cfg.shots), "fewshot_layers": layers},
                       do_geometry)
        records["geometry"][m] = rel(o)

    if cfg.field:
        _field_stage(runner, records, cfg, mres, rank, train_id, test_id, test_uri, rel)

    problems = _problems(runner.outcomes, dres, rank) + list(cfg.notes)
    decision = decide(cfg.to_dict(), dres, rank, probes, {}, problems, budget=halving)
    winner = decision.get("model")
    finetunes: dict[str, dict] = {}
    if cfg.finetune:
        for method in cfg.finetune_methods:
            name = f"finetune:{method}"
            inputs = {"model": winner and _identity(mres, winner), "train": train_id, "test": test_id, "ood": ood_ids,
                      "method": method, "epochs": cfg.finetune_epochs, "seed": cfg.seed}
            # the loop's checkpoint directory is keyed by the inputs: an interrupted run resumes, a changed one starts anew
            ft_dir = run_dir / "finetune" / f"{method}-{inputs_hash(name, inputs)[:12]}"

            def do_finetune(method: str = method, ft_dir: Path = ft_dir) -> dict:
                if winner is None:
                    raise StageSkipped("no model was recommended, so there is nothing to fine-tune.")
                run_finetune = _load_finetune()
                rec = run_finetune(winner, cfg.train, method, test=test_uri, ood=tuple(valid_ood), epochs=cfg.finetune_epochs,
                                   seed=cfg.seed, out_dir=ft_dir, resume=reuse, progress=progress)
                return _finetune_summary(rec, method, valid_ood)

            o = runner.run(name, inputs, do_finetune)
            records["finetune"][method] = rel(o)
            if o.ok:
                finetunes[method] = o.result
        problems = _problems(runner.outcomes, dres, rank) + list(cfg.notes)
        decision = decide(cfg.to_dict(), dres, rank, probes, finetunes, problems, budget=halving)

    finished = _dt.datetime.now(_dt.timezone.utc)
    record = {
        "config": cfg.to_dict(), "shortlist": shortlist, "decision": decision, "records": records,
        "stages": [o.summary() for o in runner.outcomes], "provenance": provenance(),
        "started": started.isoformat(timespec="seconds"), "finished": finished.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    write_record(run_dir / "assess.json", "assess", record)
    run = load_run(run_dir)
    if report:
        from ..report.html import render_report

        t0 = time.perf_counter()
        if on_event:
            on_event("report", "start", "")
        try:
            path = render_report(run_dir, run=run)
            run["report"] = str(path)
            if on_event:
                on_event("report", "ok", f"{time.perf_counter() - t0:.1f} s")
        except TransferLensError as exc:
            run["report_error"] = str(exc)
            if on_event:
                on_event("report", "failed", str(exc))
    return run


def _field_stage(runner: StageRunner, records: dict, cfg: AssessConfig, mres: dict, rank: dict | None, train_id: dict | None,
                 test_id: dict | None, test_uri: str | None, rel: Callable[[StageOutcome], str]) -> None:
    """The ``field`` stage: estimated field accuracy of every candidate the rank stage scored (:mod:`.field`)."""
    from .field import assess_field, describe_field

    scored = [r["model"] for r in (rank or {}).get("models", []) if not r.get("error")]
    try:
        field_id = _data_id(describe_field(cfg.field))
    except TransferLensError as exc:
        field_id = {"uri": cfg.field, "error": str(exc)}

    def do_field() -> dict:
        if train_id is None or rank is None:
            raise StageSkipped("the data or rank stage failed, so there are no candidates to estimate.")
        if field_id.get("error"):
            raise InputError(f"the --field data {cfg.field} cannot be read: {field_id['error']}")
        return assess_field(scored, cfg.train, cfg.field, test=test_uri, seed=cfg.seed)

    o = runner.run("field", {"models": [_identity(mres, m) for m in scored], "train": train_id, "test": test_id,
                             "field": field_id, "seed": cfg.seed}, do_field)
    records["field"] = rel(o)


def _budget_stage(runner: StageRunner, records: dict, cfg: AssessConfig, mres: dict, rank: dict | None, train_id: dict | None,
                  rel: Callable[[StageOutcome], str]) -> dict | None:
    """The ``budget`` stage: successive halving of the scores' ``budget_top`` candidates within ``budget`` minutes
    (:func:`transferlens.budget.successive_halving`, validation accuracy on a stratified 20 % of the ID data).
    Returns its result, or None when it failed or was skipped (the decision then rests on scores and probes)."""
    shortlist = [m for m in (rank or {}).get("ranking") or [] if m][: cfg.budget_top]

    def do_budget() -> dict:
        from ..budget import successive_halving, torch_trainers

        if train_id is None or rank is None:
            raise StageSkipped("the data or rank stage failed, so there is no shortlist to fine-tune.")
        if len(shortlist) < 2:
            raise StageSkipped(f"only {len(shortlist)} candidate was scored; the budget stage chooses between >= 2.")
        try:
            make = torch_trainers(cfg.train, seed=cfg.seed)
        except UsageError as exc:  # text data: the budget stage fine-tunes image networks only
            raise StageSkipped(str(exc)) from exc
        result = successive_halving(shortlist, make, make.n_train, cfg.budget)  # type: ignore[attr-defined]
        result["shortlist"] = shortlist
        result["minutes"] = cfg.budget
        return result

    o = runner.run("budget", {"models": [_identity(mres, m) for m in shortlist], "train": train_id, "minutes": cfg.budget,
                              "seed": cfg.seed}, do_budget)
    records["budget"] = rel(o)
    return o.result if o.ok else None


def _problems(outcomes: list[StageOutcome], dres: dict | None, rank: dict | None) -> list[str]:
    """Plain sentences for every failed stage, rejected data set and unloadable model."""
    out = []
    for o in outcomes:
        if o.status in ("failed", "skipped"):
            out.append(f"Stage {o.name} {o.status}: {o.error}")
    if dres:
        for d in [dres.get("train"), dres.get("test"), *dres.get("ood", [])]:  # unreadable files: a data caveat, not a model failure
            if d and (d.get("skipped") or {}).get("count"):
                sk = d["skipped"]
                out.append(f"{sk['count']} of {sk['total']} files or rows of {d['uri']} were skipped as unreadable or empty "
                           f"(e.g. {'; '.join(sk['examples'][:3])}); rerun with --on-bad-file error to stop on them instead.")
        if dres.get("test_error"):
            out.append(f"The ID test set was not used (the ID data was split instead): {dres['test_error']}")
        for e in dres.get("ood", []):
            if e.get("error"):
                out.append(f"OOD set {e['label']} was left out: {e['error']}")
    for r in (rank or {}).get("models", []):
        if r.get("error"):
            out.append(f"Model {r['model']} could not be scored: {r['error']}")
    return out


__all__ = ["assess", "describe_data", "resolve_models", "stage_filename"]
