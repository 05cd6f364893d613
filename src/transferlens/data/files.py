"""User data sources: ``imagefolder:PATH`` (one folder per class), ``csv:PATH`` (text and label columns),
``npz:PATH`` (precomputed ``features`` and ``labels``).

Bad files and rows. An image that cannot be decoded, a file in a class folder that is not an image, a CSV
row with an empty label or empty text: under the policy ``skip`` (the default; CLI ``--on-bad-file``) they
are left out of the source *before* any split or subsample, logged once as a warning, and counted in
``Dataset.info["skipped"]`` = ``{"count", "total", "examples"}`` (the first :data:`SKIP_EXAMPLES`), which
the commands copy into their records; under ``error`` the first load fails with a :class:`DataError` that
lists them. The skipped set is part of the source's fingerprint, so cache keys and splits follow it.
Hidden files and folders (``.DS_Store``, ``._x.jpg``, ``.ipynb_checkpoints``) are ignored.

Layouts of ``imagefolder:DIR``: ``DIR/<class>/<image>`` (flat; ``split=train|test`` draws a stratified
split), or ``DIR/{train,val,test}/<class>/<image>`` (split folders, as torchvision users lay data out):
``split=train`` reads ``DIR/train``, ``split=test`` ``DIR/test``, ``split=val`` ``DIR/val``; every split
folder must hold the same classes, and without ``split=`` the source is refused with the URIs to use.
A class folder holding sub-folders with images is an error, never a class.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError, InputError, UsageError
from ..uri import URI
from ..validation import as_float_matrix
from .base import Dataset, fingerprint_files

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
SPLIT_FOLDERS = ("train", "val", "test")  # DIR/<split>/<class>/<image>
BAD_FILE_POLICIES = ("skip", "error")
SKIP_EXAMPLES = 5  # skipped files / rows named in the record and the warning

log = logging.getLogger("transferlens")
_policy = "skip"
_warned: set[tuple[str, str]] = set()  # (source, fingerprint) already warned about in this process
_image_checks: dict[tuple[str, int, int], str | None] = {}  # (path, size, mtime_ns) -> problem or None


# ---------------------------------------------------------------------------- bad-file policy
def check_bad_file_policy(policy: str) -> str:
    if policy not in BAD_FILE_POLICIES:
        raise UsageError(f"--on-bad-file must be {' or '.join(BAD_FILE_POLICIES)}, got {policy!r}.")
    return policy


@contextlib.contextmanager
def on_bad_file(policy: str) -> Iterator[None]:
    """Within the block, data sources ``skip`` (default) or ``error`` on unreadable files and empty rows."""
    global _policy
    previous, _policy = _policy, check_bad_file_policy(policy)
    try:
        yield
    finally:
        _policy = previous


def bad_file_policy() -> str:
    return _policy


def _settle_skipped(source: str, total: int, skipped: list[str], fingerprint: str, what: str) -> dict:
    """Apply the policy to the ``skipped`` items (``"name: reason"``) of ``source``; the record's summary."""
    summary = {"count": len(skipped), "total": total, "examples": skipped[:SKIP_EXAMPLES]}
    if not skipped:
        return summary
    listed = "; ".join(skipped[:SKIP_EXAMPLES]) + (f"; ... ({len(skipped) - SKIP_EXAMPLES} more)" if len(skipped) > SKIP_EXAMPLES else "")
    if _policy == "error":
        raise DataError(f"{source}: {len(skipped)} bad {what} of {total} ({listed}); fix or remove them, "
                        "or leave them out with --on-bad-file skip.")
    if (source, fingerprint) not in _warned:
        _warned.add((source, fingerprint))
        log.warning("%s: skipped %d of %d %s (%s); they are left out of every split (--on-bad-file error stops instead).",
                    source, len(skipped), total, what, listed)
    return summary


def skipped_summary(dataset: Dataset) -> dict | None:
    """``{"count", "total", "examples"}`` of the files / rows its source skipped; None for sources that never skip."""
    return dataset.info.get("skipped")


# ---------------------------------------------------------------------------- imagefolder
def _existing(path: str, uri: URI, is_dir: bool) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{uri.scheme}:{path}: no such {'folder' if is_dir else 'file'}.")
    if is_dir != p.is_dir():
        raise DataError(f"{uri.scheme}:{path}: expected a {'folder' if is_dir else 'file'}.")
    return p


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _has_images(folder: Path) -> bool:
    """Whether ``folder`` or a visible folder below it holds an image file (stops at the first)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(_is_image_name(Path(f)) for f in filenames):
            return True
    return False


def _class_folders(folder: Path) -> list[str]:
    return [d.name for d in _visible(folder) if d.is_dir() and _has_images(d)]


def _split_folders(root: Path) -> dict[str, Path]:
    """``DIR/{train,val,test}`` folders whose sub-folders hold images: the split layout."""
    return {d.name: d for d in _visible(root) if d.is_dir() and d.name in SPLIT_FOLDERS and _class_folders(d)}


def image_problem(path: str) -> str | None:
    """Why ``path`` cannot be used as an image (fully decoded with Pillow), or None; memoised by (path, size, mtime)."""
    from PIL import Image, UnidentifiedImageError

    try:
        st = os.stat(path)
    except OSError as exc:
        return f"unreadable file ({exc.strerror})"
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _image_checks:
        problem = None
        if st.st_size == 0:
            problem = "unreadable image (empty file)"
        else:
            try:
                with Image.open(path) as im:
                    im.load()
            except UnidentifiedImageError:
                problem = "unreadable image (not a format Pillow can identify)"
            except Exception as exc:  # a decoder may raise anything on a damaged file
                problem = f"unreadable image ({str(exc).replace(path, '').strip()[:120] or type(exc).__name__})"
        _image_checks[key] = problem
    return _image_checks[key]


def _split_refusal(uri: URI, root: Path, splits: dict[str, Path]) -> str:
    names = [s for s in SPLIT_FOLDERS if s in splits]
    kept = {k: v for k, v in uri.params.items() if k not in ("split", "test_fraction", "split_seed")}
    uris = {s: URI(uri.scheme, uri.path, {**kept, "split": s}).canonical() for s in names}
    example = f"--data '{uris['train']}'" if "train" in uris else ""
    if "train" in uris and ("test" in uris or "val" in uris):
        example += f" --test '{uris['test' if 'test' in uris else 'val']}'"
    return (f"imagefolder:{uri.path} holds split folders ({', '.join(n + '/' for n in names)}) with one folder per class "
            f"inside; name the split: {', '.join(uris.values())}" + (f" (e.g. assess {example})." if example else "."))


def _resolve_layout(root: Path, uri: URI) -> tuple[Path, str | None]:
    """The folder whose sub-folders are the classes, and the split folder used (None: flat layout)."""
    splits = _split_folders(root)
    if not splits:
        return root, None
    others = [d.name for d in _visible(root) if d.is_dir() and d.name not in splits and _has_images(d)]
    if others:
        raise DataError(f"imagefolder:{uri.path} mixes split folders ({', '.join(sorted(splits))}) with other folders holding "
                        f"images ({', '.join(others[:5])}); keep only {'/, '.join(SPLIT_FOLDERS)}/ at the top, one folder per class in each.")
    split = uri.params.get("split", "all")
    if split == "all":
        raise UsageError(_split_refusal(uri, root, splits))
    if "test_fraction" in uri.params or "split_seed" in uri.params:
        raise UsageError(f"imagefolder:{uri.path} already has split folders ({', '.join(sorted(splits))}); test_fraction and "
                         f"split_seed apply to a flat folder: drop them, {_split_refusal(uri, root, splits).split('; ', 1)[1]}")
    if split not in splits:
        raise UsageError(f"imagefolder:{uri.path} has no {split}/ split folder; its splits are {', '.join(s for s in SPLIT_FOLDERS if s in splits)}.")
    classes = {s: set(_class_folders(d)) for s, d in splits.items()}
    union = set().union(*classes.values())
    lacking = [(s, sorted(union - classes[s])) for s in SPLIT_FOLDERS if s in classes and union - classes[s]]
    if lacking:
        desc = "; ".join(f"{s}/ lacks {', '.join(c[:8])}{' ...' if len(c) > 8 else ''}" for s, c in lacking)
        raise DataError(f"imagefolder:{uri.path}: the split folders hold different classes ({desc}); every split needs the "
                        "same class folders.")
    return splits[split], split


def build_imagefolder(uri: URI) -> Dataset:
    root = _existing(uri.path, uri, is_dir=True)
    class_root, split = _resolve_layout(root, uri)
    classes = [d.name for d in _visible(class_root) if d.is_dir()]
    source = f"imagefolder:{uri.path}" + (f" ({split}/)" if split else "")
    candidates: list[str] = []
    files: list[str] = []
    labels: list[int] = []
    skipped: list[str] = []
    for c, name in enumerate(classes):
        folder = class_root / name
        entries = _visible(folder)
        nested = [e.name for e in entries if e.is_dir() and _has_images(e)]
        if nested:
            shown = os.path.relpath(folder, root)
            hint = (f"imagefolder:{folder}?split={'train' if 'train' in nested else nested[0]}" if set(nested) <= set(SPLIT_FOLDERS)
                    else "the folder whose sub-folders are the classes")
            raise DataError(
                f"imagefolder:{uri.path}: class folder {shown}/ holds sub-folders with images ({', '.join(nested[:5])}); "
                f"a class folder holds its images directly: point the URI at {hint}, or move the images of {shown}/ up into it."
            )
        for f in entries:
            if not f.is_file():
                continue
            path = str(f)
            candidates.append(path)
            problem = image_problem(path) if _is_image_name(f) else f"not an image file (suffix {f.suffix or 'none'!r})"
            if problem:
                skipped.append(f"{os.path.relpath(f, root)}: {problem}")
                continue
            files.append(path)
            labels.append(c)
    if not classes or not candidates:
        raise DataError(
            f"imagefolder:{uri.path}: no images found; expected one sub-folder per class holding "
            f"image files ({', '.join(sorted(IMAGE_SUFFIXES))})."
        )
    fingerprint = _skip_fingerprint(fingerprint_files(candidates), skipped)
    summary = _settle_skipped(source, len(candidates), skipped, fingerprint, "files")
    used = set(labels)
    if len(used) < len(classes):
        empty = [classes[c] for c in range(len(classes)) if c not in used]
        note = f" ({summary['count']} file(s) were skipped as unreadable or not images)" if skipped else ""
        raise DataError(f"imagefolder:{uri.path}: class folder(s) {', '.join(empty[:5])} hold no readable images{note}; "
                        "add images or remove the folder(s).")

    def load(ids: np.ndarray) -> list[np.ndarray]:
        from PIL import Image, UnidentifiedImageError

        out = []
        for i in ids:
            path = files[int(i)]
            try:
                with Image.open(path) as im:
                    im = im.convert("L") if im.mode in ("1", "L", "I;16", "I", "F") else im.convert("RGB")
                    out.append(np.asarray(im, dtype=np.uint8))
            except (OSError, UnidentifiedImageError, ValueError) as exc:  # changed since the source was listed
                raise DataError(f"unreadable image {path}: {exc}; fix or remove the file.") from None
        return out

    info = {"files": len(files), "skipped": summary, "lazy_files": True}  # decoded per batch: DataLoader workers may read it
    if split:
        info["split_folder"] = split
    return Dataset(
        uri=str(uri), kind="image", ids=np.arange(len(files)), labels=np.asarray(labels, dtype=np.int64),
        class_names=classes, loader=load, fingerprint=fingerprint, info=info,
    )


def _skip_fingerprint(base: str, skipped: list[str]) -> str:
    """The source's identity: its files' fingerprint and, when any, the skipped items."""
    if not skipped:
        return base
    return hashlib.sha256((base + "\n" + "\n".join(skipped)).encode()).hexdigest()[:16]


def build_csv(uri: URI) -> Dataset:
    path = _existing(uri.path, uri, is_dir=False)
    text_col = uri.params.get("text_col", "text")
    label_col = uri.params.get("label_col", "label")
    rows: list[tuple[str, str]] = []
    skipped: list[str] = []
    total = 0
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter=uri.params.get("delimiter", ","))
            if reader.fieldnames is None or text_col not in reader.fieldnames or label_col not in reader.fieldnames:
                raise DataError(
                    f"csv:{uri.path}: needs columns {text_col!r} and {label_col!r} (found {reader.fieldnames}); "
                    "name them with ?text_col=...&label_col=..."
                )
            for r in reader:
                total += 1
                text, label = r[text_col], r[label_col]
                if text is None or label is None:
                    skipped.append(f"line {reader.line_num}: missing fields")
                elif label.strip() == "":
                    skipped.append(f"line {reader.line_num}: empty label")
                elif text.strip() == "":
                    skipped.append(f"line {reader.line_num}: empty text")
                else:
                    rows.append((text, label))
    except UnicodeDecodeError as exc:
        raise DataError(f"csv:{uri.path}: not UTF-8 text ({exc}).") from None
    except csv.Error as exc:
        raise DataError(f"csv:{uri.path}: malformed CSV ({exc}).") from None
    fingerprint = _skip_fingerprint(fingerprint_files([str(path)]), skipped)
    summary = _settle_skipped(f"csv:{uri.path}", total, skipped, fingerprint, "rows")
    if not rows:
        raise DataError(f"csv:{uri.path}: no labelled rows" + (f" ({len(skipped)} skipped: empty label or text)." if skipped else "."))
    texts = [t for t, _ in rows]
    classes = sorted({lab.strip() for _, lab in rows})
    lookup = {c: i for i, c in enumerate(classes)}
    labels = np.asarray([lookup[lab.strip()] for _, lab in rows], dtype=np.int64)
    return Dataset(
        uri=str(uri), kind="text", ids=np.arange(len(texts)), labels=labels, class_names=classes,
        loader=lambda ids: [texts[i] for i in ids], fingerprint=fingerprint, info={"rows": len(rows), "skipped": summary},
    )


def build_npz(uri: URI) -> Dataset:
    path = _existing(uri.path, uri, is_dir=False)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "features" not in data or "labels" not in data:
                raise DataError(f"npz:{uri.path}: needs arrays 'features' (N, D) and 'labels' (N,), found {list(data.keys())}.")
            feats = np.asarray(data["features"])
            raw_labels = np.asarray(data["labels"])
            names = [str(n) for n in data["class_names"]] if "class_names" in data else None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"npz:{uri.path}: cannot read ({exc}); is it a NumPy .npz file?") from None
    try:  # numeric, 2-D, at least one sample and one feature, no NaN/Inf
        feats = as_float_matrix(feats, name=f"npz:{uri.path}: features", dtype=np.float32)
    except InputError as exc:
        raise DataError(str(exc)) from None
    if raw_labels.ndim != 1 or feats.shape[0] != raw_labels.shape[0]:
        raise DataError(f"npz:{uri.path}: features {feats.shape} and labels {raw_labels.shape} do not match (N, D) and (N,).")
    classes_found, labels = np.unique(raw_labels, return_inverse=True)
    if names is None or len(names) != classes_found.size:
        names = [str(c) for c in classes_found]
    return Dataset(
        uri=str(uri), kind="features", ids=np.arange(feats.shape[0]), labels=labels.astype(np.int64),
        class_names=names, loader=lambda ids: feats[ids], fingerprint=fingerprint_files([str(path)]),
    )


def check_path_param(uri: URI) -> None:
    if not uri.path:
        raise UsageError(f"{uri.scheme}: needs a path, e.g. {uri.scheme}:{os.path.join('data', 'mine')}")
