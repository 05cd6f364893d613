"""``builtin:photo-crops``: recognise which of 10 real photographs a small crop comes from.

The ten photographs ship inside pip wheels and load offline: scikit-learn's ``china.jpg`` (a temple) and
``flower.jpg``, and eight colour photos of scikit-image's ``skimage/data`` folder (read with PIL from the
installed package, never through scikit-image's downloader). Each photo is one class:

==========  ============================  ==========
class       file                          package
==========  ============================  ==========
astronaut   astronaut.png (512x512)       skimage
cat         chelsea.png (451x300)         skimage
coffee      coffee.png (600x400)          skimage
rocket      rocket.jpg (640x427)          skimage
motorcycle  motorcycle_left.png (741x500) skimage
temple      china.jpg (640x427)           sklearn
flower      flower.jpg (640x427)          sklearn
retina      retina.jpg (1411x1411)        skimage
galaxies    hubble_deep_field.jpg         skimage
tissue      ihc.png (512x512)             skimage
==========  ============================  ==========

A sample is a square crop: side ``= u * min(W, H)`` with ``u ~ U(0.12, 0.35)`` (clipped to the region's
width), a uniform position, a horizontal flip with probability 1/2, resized with PIL's antialiased
bilinear filter to ``crop_size`` (default 64) RGB. Every crop is a pure function of
``(seed, split, class, index)``; crops are rendered on demand. A crop whose pixel standard deviation is
below 4/255 (e.g. the black corners around the retina) is redrawn, up to 20 times.

**No train/test leakage.** Each photo is cut into two vertical stripes at ``x = round(0.6 W)``: train
crops lie entirely in the left stripe ``[0, 0.6 W)``, test crops entirely in the right stripe
``[0.6 W, W)``; no crop straddles the cut, so no test pixel is ever seen in training. The task is
recognising a scene from a region not seen in training, not memorising pixels. It is a scene/region
recognition proxy with 10 photographs, not an object-category dataset like CIFAR (one photo per class:
within-class variation is only that of the regions of one picture).

Parameters: ``n`` crops per class that exist in each split (default 300 for train, 200 for test; with
``split=all`` both sets), ``crop_size``, ``seed``; ``split`` picks the stripe (``test_fraction`` is refused,
since a random split of crops would leak). Sample ids: train ``c * n_train + i``, test
``K * n_train + c * n_test + i`` (``K`` = 10 classes).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError, UsageError
from ..uri import URI
from .base import Dataset

# (class name, package, file name); the order is the label order.
PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "skimage", "astronaut.png"),
    ("cat", "skimage", "chelsea.png"),
    ("coffee", "skimage", "coffee.png"),
    ("rocket", "skimage", "rocket.jpg"),
    ("motorcycle", "skimage", "motorcycle_left.png"),
    ("temple", "sklearn", "china.jpg"),
    ("flower", "sklearn", "flower.jpg"),
    ("retina", "skimage", "retina.jpg"),
    ("galaxies", "skimage", "hubble_deep_field.jpg"),
    ("tissue", "skimage", "ihc.png"),
)
CLASSES = [name for name, _, _ in PHOTOS]
TRAIN_FRACTION = 0.6  # the left 60 % of every photo is the train stripe, the right 40 % the test stripe
SIDE_RANGE = (0.12, 0.35)  # crop side as a fraction of the photo's short side
MIN_STD = 4.0  # uint8 units; flatter crops are redrawn
MAX_TRIES = 20
DEFAULT_N = {"train": 300, "test": 200}
VERSION = "photo-crops-v1"  # bump when the crop recipe changes (it is part of the fingerprint)


def photo_paths() -> list[Path]:
    """The ten photo files, in class order; :class:`DataError` if a package or file is missing."""
    dirs: dict[str, Path] = {}
    for package, sub in (("skimage", "data"), ("sklearn", "datasets/images")):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            pin = {"skimage": "scikit-image==0.26.0", "sklearn": "scikit-learn==1.9.1"}[package]
            raise DataError(f"builtin:photo-crops needs the {package} package; install it: pip install {pin}")
        dirs[package] = Path(list(spec.submodule_search_locations)[0]) / sub
    paths = [dirs[package] / name for _, package, name in PHOTOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"builtin:photo-crops: {', '.join(missing)} missing; reinstall scikit-image==0.26.0 / scikit-learn.")
    return paths


@functools.lru_cache(maxsize=1)
def photo_digest() -> str:
    """sha256 over the ten photos' class names and file contents (about 3 MB): the same on every install of the
    pinned packages, wherever they live (a path-and-mtime identity changed with every new virtual environment)."""
    h = hashlib.sha256()
    for (name, _, _), path in zip(PHOTOS, photo_paths()):
        h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:32]


@functools.lru_cache(maxsize=len(PHOTOS))
def _photo(path: str) -> Image.Image:
    try:
        img = Image.open(path)
        img = img.convert("RGB")
        img.load()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}; reinstall the package that ships it.") from None
    return img


def stripe(width: int, split: str) -> tuple[int, int]:
    """The half-open column range ``[x_lo, x_hi)`` that crops of ``split`` lie in."""
    cut = int(round(TRAIN_FRACTION * width))
    return (0, cut) if split == "train" else (cut, width)


def crop_box(size: tuple[int, int], split: str, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random square box ``(x0, y0, x1, y1)`` (half-open) inside the ``split`` stripe of a ``size=(W, H)`` photo."""
    width, height = size
    x_lo, x_hi = stripe(width, split)
    side = int(round(rng.uniform(*SIDE_RANGE) * min(width, height)))
    side = max(8, min(side, x_hi - x_lo, height))
    x0 = x_lo + int(rng.integers(0, x_hi - x_lo - side + 1))
    y0 = int(rng.integers(0, height - side + 1))
    return x0, y0, x0 + side, y0 + side


def render_crop(path: str, split: str, seed: int, cls: int, index: int, crop_size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One crop as uint8 ``(crop_size, crop_size, 3)`` and its box in the photo's pixels."""
    photo = _photo(path)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, cls, index, 271828])
    for _ in range(MAX_TRIES):
        box = crop_box(photo.size, split, rng)
        flip = bool(rng.integers(2))
        img = photo.resize((crop_size, crop_size), Image.Resampling.BILINEAR, box=box, reducing_gap=None)
        arr = np.asarray(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else img, dtype=np.uint8)
        if arr.std() >= MIN_STD:
            break
    return arr, box


def crop_boxes(split: str, n: int, seed: int = 0, crop_size: int = 64) -> dict[str, list[tuple[int, int, int, int]]]:
    """The boxes of the first ``n`` crops of every class in ``split`` (for checks: train and test boxes never overlap)."""
    paths = photo_paths()
    return {name: [render_crop(str(p), split, seed, c, i, crop_size)[1] for i in range(n)] for c, (name, p) in enumerate(zip(CLASSES, paths))}


def build_photo_crops(uri: URI) -> Dataset:
    """The :class:`Dataset` of ``builtin:photo-crops`` (see the module docstring)."""
    if "test_fraction" in uri.params:
        raise UsageError(
            f"{uri}: photo-crops has fixed disjoint train/test stripes of each photo; drop test_fraction and use split=train|test."
        )
    crop_size = uri.get_int("crop_size", 64, minimum=8)
    seed = uri.get_int("seed", 0)
    n_given = uri.get_int("n", None, minimum=1)
    n_train = n_given or DEFAULT_N["train"]
    n_test = n_given or DEFAULT_N["test"]
    paths = [str(p) for p in photo_paths()]
    k = len(PHOTOS)
    labels = np.concatenate([np.repeat(np.arange(k), n_train), np.repeat(np.arange(k), n_test)]).astype(np.int64)
    offset = k * n_train

    def load(ids: np.ndarray) -> list[np.ndarray]:
        out = []
        for sid in np.asarray(ids, dtype=np.int64):
            sid = int(sid)
            split, rel, n = ("train", sid, n_train) if sid < offset else ("test", sid - offset, n_test)
            c, i = divmod(rel, n)
            out.append(render_crop(paths[c], split, seed, c, i, crop_size)[0])
        return out

    fp = hashlib.sha256(f"{photo_digest()}|{VERSION}".encode()).hexdigest()[:16]
    return Dataset(
        uri=str(uri), kind="image", ids=np.arange(labels.size), labels=labels, class_names=list(CLASSES),
        loader=load, fingerprint=fp,
        info={"official_train": offset, "native_size": crop_size, "n_train": n_train, "n_test": n_test},
    )
