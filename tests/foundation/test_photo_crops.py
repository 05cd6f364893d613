"""``builtin:photo-crops``: shapes, balance, determinism, disjoint train/test stripes, class selection."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("skimage", reason="builtin:photo-crops needs scikit-image (pip install scikit-image==0.26.0)")

from transferlens.data import ImageSpec, load_data  # noqa: E402
from transferlens.data import photos  # noqa: E402
from transferlens.errors import UsageError  # noqa: E402


def test_shapes_dtype_and_sizes():
    d = load_data("builtin:photo-crops")
    assert d.kind == "image" and d.class_names == photos.CLASSES and d.n_classes == 10
    assert len(d) == 10 * (300 + 200)  # split=all: both stripes' crops
    raw = d.raw(np.array([0, 2999, 3000, len(d) - 1]))
    assert all(r.dtype == np.uint8 and r.shape == (64, 64, 3) for r in raw)
    small = load_data("builtin:photo-crops?crop_size=24&n=3").raw(np.arange(2))
    assert small[0].shape == (24, 24, 3)
    x = d.images(np.arange(4), ImageSpec(32, 3))
    assert x.shape == (4, 3, 32, 32) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0


@pytest.mark.parametrize("uri,per_class", [
    ("builtin:photo-crops?split=train", 300),
    ("builtin:photo-crops?split=test", 200),
    ("builtin:photo-crops?n=5&split=test", 5),
    ("builtin:photo-crops?n=5", 10),
    ("builtin:photo-crops?split=test&n_per_class=7&seed=3", 7),
])
def test_labels_balanced(uri, per_class):
    d = load_data(uri)
    assert d.class_counts().tolist() == [per_class] * 10


def test_split_ids_are_the_stripes():
    train, test = load_data("builtin:photo-crops?n=4&split=train"), load_data("builtin:photo-crops?n=4&split=test")
    assert train.ids.tolist() == list(range(40)) and test.ids.tolist() == list(range(40, 80))
    assert train.labels.tolist() == np.repeat(np.arange(10), 4).tolist() == test.labels.tolist()


def test_deterministic_and_seeded():
    uri = "builtin:photo-crops?split=test&n_per_class=6&seed=1"
    a, b = load_data(uri), load_data(uri)
    assert a.ids.tolist() == b.ids.tolist()
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.raw(np.arange(len(a))), b.raw(np.arange(len(b)))))
    other = load_data("builtin:photo-crops?split=test&n=6&seed=2").raw(np.arange(3))
    mine = load_data("builtin:photo-crops?split=test&n=6&seed=1").raw(np.arange(3))
    assert all(x.tobytes() != y.tobytes() for x, y in zip(mine, other))


def test_train_and_test_boxes_disjoint_and_inside_their_stripe():
    n = 25
    train, test = photos.crop_boxes("train", n), photos.crop_boxes("test", n)
    sizes = {name: Image.open(p).size for name, p in zip(photos.CLASSES, photos.photo_paths())}
    for name in photos.CLASSES:
        width, height = sizes[name]
        cut = int(round(photos.TRAIN_FRACTION * width))
        for split, boxes in (("train", train[name]), ("test", test[name])):
            for x0, y0, x1, y1 in boxes:
                assert x1 - x0 == y1 - y0 >= 8 and 0 <= y0 and y1 <= height
                assert (0 <= x0 and x1 <= cut) if split == "train" else (cut <= x0 and x1 <= width)
        # brute force: no train box shares a pixel with any test box
        for a in train[name]:
            for b in test[name]:
                overlap_x = min(a[2], b[2]) - max(a[0], b[0])
                overlap_y = min(a[3], b[3]) - max(a[1], b[1])
                assert overlap_x <= 0 or overlap_y <= 0


def test_crop_is_the_photo_region_of_its_box():
    """The delivered crop is the photo's box resized (possibly mirrored): the exposed boxes are the real ones."""
    d = load_data("builtin:photo-crops?n=3&split=test")
    crops = d.raw(np.arange(len(d)))
    boxes = photos.crop_boxes("test", 3)
    for c, name in enumerate(photos.CLASSES):
        photo = Image.open(photos.photo_paths()[c]).convert("RGB")
        for i in range(3):
            ref = photo.resize((64, 64), Image.Resampling.BILINEAR, box=boxes[name][i], reducing_gap=None)
            got = crops[c * 3 + i]
            assert np.array_equal(got, np.asarray(ref)) or np.array_equal(got, np.asarray(ref)[:, ::-1])


def test_classes_subset_keeps_the_same_crops():
    full = load_data("builtin:photo-crops?n=4&split=train")
    sub = load_data("builtin:photo-crops?n=4&split=train&classes=galaxies,cat")
    assert sub.class_names == ["galaxies", "cat"] and sub.class_counts().tolist() == [4, 4]
    for pos, sid in enumerate(sub.ids):
        assert np.array_equal(sub.raw(np.array([pos]))[0], full.raw(np.array([sid]))[0])
        assert full.class_names[full.labels[sid]] == sub.class_names[sub.labels[pos]]


def test_shift_wrapper_and_refused_test_fraction():
    base = load_data("builtin:photo-crops?split=test&n_per_class=2")
    shifted = load_data("shift:low_resolution:3:builtin:photo-crops?split=test&n_per_class=2")
    spec = ImageSpec(32, 3)
    x, y = base.images(np.arange(4), spec), shifted.images(np.arange(4), spec)
    assert x.shape == y.shape and not np.allclose(x.numpy(), y.numpy())
    with pytest.raises(UsageError, match="test_fraction"):
        load_data("builtin:photo-crops?split=test&test_fraction=0.5")


def test_fingerprint_is_the_photos_content_not_where_they_are_installed(tmp_path, monkeypatch):
    """A new virtual environment (other path, other mtimes) keeps the fingerprint, so cached results are reused;
    a changed photo changes it."""
    before = load_data("builtin:photo-crops?n=2").fingerprint
    copies = []
    for p in photos.photo_paths():
        q = tmp_path / p.name
        q.write_bytes(p.read_bytes())
        copies.append(q)
    monkeypatch.setattr(photos, "photo_paths", lambda: list(copies))
    photos.photo_digest.cache_clear()
    try:
        assert load_data("builtin:photo-crops?n=2").fingerprint == before
        copies[0].write_bytes(copies[0].read_bytes() + b"\0")
        photos.photo_digest.cache_clear()
        assert load_data("builtin:photo-crops?n=2").fingerprint != before
    finally:
        photos.photo_digest.cache_clear()
