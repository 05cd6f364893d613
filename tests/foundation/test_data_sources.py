"""Data sources: shapes, label ranges, determinism of subsampling and splits, user-file sources."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from transferlens.data import ImageSpec, load_data
from transferlens.errors import DataError, UsageError


def _images(uri: str, n: int = 8, size: int = 16, channels: int = 1):
    d = load_data(uri)
    return d, d.images(np.arange(min(n, len(d))), ImageSpec(size, channels))


@pytest.mark.parametrize(
    "uri,n_total,k,native",
    [
        ("builtin:fashion-mnist", 70000, 10, 28),
        ("builtin:digits", 5000, 10, 20),
        ("builtin:digits-uci", 1797, 10, 8),
        ("builtin:glyphs?charset=digits&n=30", 300, 10, 32),
    ],
)
def test_builtin_image_sources(uri, n_total, k, native):
    d = load_data(uri)
    assert len(d) == n_total and d.n_classes == k and d.kind == "image"
    assert d.labels.min() == 0 and d.labels.max() == k - 1
    raw = d.raw(np.arange(3))
    assert raw[0].dtype == np.uint8 and raw[0].shape[:2] == (native, native)
    x = d.images(np.arange(5), ImageSpec(24, 3))
    assert x.shape == (5, 3, 24, 24) and x.dtype.is_floating_point
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.5  # white ink on black


def test_digit_domains_share_classes():
    names = {tuple(load_data(u).class_names) for u in ("builtin:digits", "builtin:digits-uci", "builtin:glyphs?charset=digits&n=2")}
    assert names == {tuple(str(i) for i in range(10))}


def test_fashion_official_split():
    assert len(load_data("builtin:fashion-mnist?split=train")) == 60000
    test = load_data("builtin:fashion-mnist?split=test")
    assert len(test) == 10000 and test.ids.min() == 60000


def test_fortunes_topics():
    d = load_data("builtin:fortunes")
    assert d.kind == "text" and d.n_classes >= 30 and len(d) > 10000
    assert d.class_counts().min() >= 50  # default min_texts
    texts = d.texts(np.arange(5))
    assert all(isinstance(t, str) and len(t) >= 10 and "%" != t.strip() for t in texts)
    assert load_data("builtin:fortunes?min_texts=1").n_classes > d.n_classes


def test_balanced_subsample_is_deterministic_and_balanced():
    a = load_data("builtin:digits?n_per_class=7&seed=3")
    b = load_data("builtin:digits?n_per_class=7&seed=3")
    c = load_data("builtin:digits?n_per_class=7&seed=4")
    assert np.array_equal(a.ids, b.ids) and not np.array_equal(a.ids, c.ids)
    assert (a.class_counts() == 7).all()
    assert np.array_equal(a.images(np.arange(5), ImageSpec(20, 1)), b.images(np.arange(5), ImageSpec(20, 1)))


def test_split_is_disjoint_and_complete():
    tr = load_data("builtin:digits-uci?split=train&test_fraction=0.3")
    te = load_data("builtin:digits-uci?split=test&test_fraction=0.3")
    assert set(tr.ids).isdisjoint(te.ids) and len(tr) + len(te) == 1797
    assert abs(len(te) / 1797 - 0.3) < 0.02
    # subsampling after the split stays inside the split
    sub = load_data("builtin:digits-uci?split=test&test_fraction=0.3&n_per_class=10")
    assert set(sub.ids) <= set(te.ids)


def test_class_subsets_relabel():
    d = load_data("builtin:fashion-mnist?classes=Bag,0,5-6&n_per_class=3")
    assert d.class_names == ["Bag", "T-shirt/top", "Sandal", "Shirt"]
    assert sorted(set(d.labels.tolist())) == [0, 1, 2, 3] and len(d) == 12
    full = load_data("builtin:fashion-mnist")
    # same images as the original class "Bag" (8)
    assert (full.labels[d.ids[d.labels == 0]] == 8).all()


def test_glyph_charsets_scale_and_render_deterministically():
    big = load_data("builtin:glyphs?charset=all&n=1")
    assert big.n_classes >= 200
    assert len(set(big.class_names)) == big.n_classes
    d1 = load_data("builtin:glyphs?charset=upper&n=5&n_classes=12&seed=1")
    d2 = load_data("builtin:glyphs?charset=upper&n=5&n_classes=12&seed=1")
    assert d1.n_classes == 12 and d1.class_names[:3] == ["A", "B", "C"]
    r1, r2 = d1.raw(np.arange(10)), d2.raw(np.arange(10))
    assert all(np.array_equal(a, b) for a, b in zip(r1, r2))
    # randomised: two samples of one class differ
    assert not np.array_equal(r1[0], r1[1])


def test_image_spec_channels():
    d = load_data("builtin:digits?n_per_class=1")
    g = d.images(np.arange(3), ImageSpec(20, 1))
    rgb = d.images(np.arange(3), ImageSpec(20, 3))
    assert g.shape == (3, 1, 20, 20) and rgb.shape == (3, 3, 20, 20)
    assert np.allclose(rgb[:, 0], g[:, 0]) and np.allclose(rgb[:, 1], rgb[:, 2])


@pytest.mark.parametrize(
    "uri,exc,needle",
    [
        ("nosuch:thing", UsageError, "unknown data source scheme"),
        ("builtin:mnist", UsageError, "unknown built-in data"),
        ("builtin:digits?n_per_class=600", DataError, "n_per_class=600"),
        ("builtin:digits?n_per_class=abc", UsageError, "must be an integer"),
        ("builtin:digits?bogus=1", UsageError, "unknown parameter"),
        ("builtin:digits?classes=11", UsageError, "out of range"),
        ("builtin:digits?split=val", UsageError, "split must be"),
        ("digits", UsageError, "scheme:name"),
        ("imagefolder:/no/such/folder", DataError, "no such folder"),
    ],
)
def test_bad_data_uris(uri, exc, needle):
    with pytest.raises(exc, match=needle):
        load_data(uri)


def test_missing_debian_data_says_which_package(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLENS_FORTUNES_DIR", str(tmp_path))
    from transferlens.data import builtin

    builtin._fortunes.cache_clear()
    with pytest.raises(DataError, match="fortunes"):
        load_data("builtin:fortunes")
    builtin._fortunes.cache_clear()


def _make_imagefolder(root, bad: bool = False):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    if bad:
        (root / "dog" / "broken.jpg").write_bytes(b"not an image at all")
    return root


def test_imagefolder(tmp_path):
    root = _make_imagefolder(tmp_path / "pets")
    d = load_data(f"imagefolder:{root}?n_per_class=3")
    assert d.class_names == ["cat", "dog"] and len(d) == 6
    x = d.images(np.arange(6), ImageSpec(16, 3))
    assert x.shape == (6, 3, 16, 16)


def test_imagefolder_unreadable_image_names_the_file(tmp_path):
    """Skipped and counted by default (the record names it); a DataError naming it under on_bad_file('error')."""
    from transferlens.data import on_bad_file

    root = _make_imagefolder(tmp_path / "pets", bad=True)
    d = load_data(f"imagefolder:{root}")
    assert len(d) == 8 and d.info["skipped"]["count"] == 1 and "broken.jpg" in d.info["skipped"]["examples"][0]
    with on_bad_file("error"), pytest.raises(DataError, match="broken.jpg"):
        load_data(f"imagefolder:{root}")


def test_csv_source(tmp_path):
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["body", "topic"])
        for i in range(6):
            w.writerow([f"text number {i}", "b" if i % 2 else "a"])
    d = load_data(f"csv:{path}?text_col=body&label_col=topic")
    assert d.kind == "text" and d.class_names == ["a", "b"] and len(d) == 6
    assert d.texts(np.arange(2)) == ["text number 0", "text number 1"]
    with pytest.raises(DataError, match="needs columns"):
        load_data(f"csv:{path}")


def test_npz_source(tmp_path):
    path = tmp_path / "f.npz"
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    np.savez(path, features=x, labels=np.array([5, 7, 5, 7, 5, 7, 9, 9, 9]))
    d = load_data(f"npz:{path}")
    assert d.kind == "features" and d.class_names == ["5", "7", "9"]
    assert np.array_equal(d.feature_matrix(), x) and d.labels.tolist() == [0, 1, 0, 1, 0, 1, 2, 2, 2]
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.full((2, 2), np.nan), labels=np.array([0, 1]))
    with pytest.raises(DataError, match="finite"):
        load_data(f"npz:{bad}")
