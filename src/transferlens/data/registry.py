"""Turn a data URI into a :class:`~transferlens.data.base.Dataset`.

Common query parameters (any scheme), applied in this order:

- ``classes=a,b,3-5``: keep these classes (names or indices), renumbered in the given order;
- ``split=train|test|all`` with ``test_fraction`` (default 0.25) and ``split_seed`` (default 0): a
  deterministic stratified split (Fashion-MNIST uses its official 60k/10k split; an ``imagefolder:DIR``
  laid out as ``DIR/{train,val,test}/<class>/`` reads ``DIR/<split>``, ``split=val`` included);
- ``n_per_class=N`` with ``seed`` (default 0): a deterministic class-balanced subsample; a class with
  fewer than N samples is an error, never silently short.

``shift:NAME:SEVERITY:INNER_URI`` corrupts the images of INNER_URI (see :mod:`.shifts`).
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import UsageError
from ..uri import URI, parse_uri
from . import builtin, files
from .base import Dataset, balanced_subsample, parse_class_selection, stratified_split
from .shifts import CORRUPTIONS, make_shift

SCHEMES = {"builtin", "imagefolder", "csv", "npz", "shift"}
COMMON_PARAMS = {"classes", "split", "test_fraction", "split_seed", "n_per_class", "seed"}


def load_data(text: str) -> Dataset:
    """Load the data source named by ``text`` (see the module docstring for the URI grammar)."""
    text = text.strip()
    if text.lower().startswith("shift:"):
        return _load_shifted(text)
    uri = parse_uri(text, SCHEMES, what="data source")
    if uri.scheme == "builtin":
        if uri.path not in builtin.BUILTINS:
            raise UsageError(f"unknown built-in data {uri.path!r}; available: {', '.join(builtin.BUILTINS)} (see `transferlens data list`).")
        source = builtin.BUILTINS[uri.path]
        uri.check_params(COMMON_PARAMS | set(source.params))
        dataset = source.build(uri)
    else:
        files.check_path_param(uri)
        extra = {"csv": {"text_col", "label_col", "delimiter"}}.get(uri.scheme, set())
        uri.check_params(COMMON_PARAMS | extra)
        dataset = {"imagefolder": files.build_imagefolder, "csv": files.build_csv, "npz": files.build_npz}[uri.scheme](uri)
    return _select(dataset, uri)


def _load_shifted(text: str) -> Dataset:
    parts = text.split(":", 3)
    if len(parts) < 4:
        raise UsageError(
            f"{text!r}: a shift is written shift:NAME:SEVERITY:DATA, e.g. shift:blur:3:builtin:digits; "
            f"shifts: {', '.join(CORRUPTIONS)}."
        )
    _, name, severity_text, inner = parts
    try:
        severity = int(severity_text)
    except ValueError:
        raise UsageError(f"{text!r}: severity {severity_text!r} must be an integer 1-5.") from None
    fn = make_shift(name, severity)
    base = load_data(inner)
    if base.kind != "image":
        raise UsageError(f"{text!r}: shifts apply to images, but {inner} holds {base.kind}.")
    if base.shift is not None:
        previous = base.shift
        fn_inner = fn

        def fn(batch, ids):  # noqa: F811 - compose: inner shift first
            return fn_inner(previous(batch, ids), ids)

    return replace(base, uri=f"shift:{name}:{severity}:{base.uri}", shift=fn)


def _select(dataset: Dataset, uri: URI) -> Dataset:
    if "classes" in uri.params:
        dataset = dataset.relabel(parse_class_selection(uri.params["classes"], dataset.class_names, str(uri)))
    split = uri.params.get("split", "all")
    if dataset.info.get("split_folder"):  # imagefolder DIR/<split>/<class>/: the source already read that split's folder
        split = "all"
    if split not in ("train", "test", "all"):
        raise UsageError(f"{uri}: split must be train, test or all, got {split!r}.")
    if split != "all":
        official = dataset.info.get("official_train")
        if official is not None and "test_fraction" not in uri.params:
            mask = dataset.ids < official if split == "train" else dataset.ids >= official
            dataset = dataset.subset(mask.nonzero()[0])
        else:
            frac = uri.get_float("test_fraction", 0.25)
            train, test = stratified_split(dataset.labels, frac, uri.get_int("split_seed", 0))
            dataset = dataset.subset(train if split == "train" else test)
    n = uri.get_int("n_per_class", None, minimum=1)
    if n is not None:
        dataset = dataset.subset(balanced_subsample(dataset.labels, dataset.class_names, n, uri.get_int("seed", 0), str(uri)))
    return replace(dataset, uri=uri.canonical())


def list_sources() -> list[dict]:
    """One row per data source: name, kind, description, whether its files are present here."""
    rows = []
    for s in builtin.BUILTINS.values():
        try:
            s.build(URI("builtin", s.name, {"n_classes": "10"} if s.name == "glyphs" else {}))
            available, note = True, ""
        except Exception as exc:  # report, do not fail the listing
            available, note = False, str(exc)
        rows.append({"uri": f"builtin:{s.name}", "kind": s.kind, "description": s.description, "available": available, "note": note})
    rows += [
        {"uri": "imagefolder:PATH", "kind": "image", "description": "one sub-folder per class holding image files, or PATH/{train,val,test}/<class>/ read with ?split=", "available": True, "note": ""},
        {"uri": "csv:PATH", "kind": "text", "description": "a CSV with text and label columns (?text_col=&label_col=)", "available": True, "note": ""},
        {"uri": "npz:PATH", "kind": "features", "description": "precomputed 'features' (N, D) and 'labels' (N,) arrays", "available": True, "note": ""},
        {"uri": "shift:NAME:SEVERITY:DATA", "kind": "image", "description": f"corrupt DATA; NAME in {', '.join(CORRUPTIONS)}; severity 1-5", "available": True, "note": ""},
    ]
    return rows
