"""The zoo: recipes vary what they should, tiny builds work, are skipped when done, and resume exactly."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from transferlens.errors import UsageError
from transferlens.models import resolve_model
from transferlens.zoo.build import build_zoo
from transferlens.zoo.recipes import RECIPES, TINY, get_recipe
from transferlens.zoo.targets import TARGETS


def test_recipes_vary_the_variables():
    rs = list(RECIPES.values())
    assert len(rs) >= 16
    assert len({r.fingerprint() for r in rs}) == len(rs)
    assert {r.arch for r in rs} >= {"vgg", "resnet", "vit", "mlp"}
    assert {r.size for r in rs} == {16, 32} and {r.augment for r in rs} == {True, False}
    assert {r.n_source_classes for r in rs} >= {6, 10, 50, 500}
    assert len({r.lr for r in rs}) > 1 and len({r.batch_size for r in rs}) > 1 and len({r.weight_decay for r in rs}) > 1
    assert any(r.arch_kwargs.get("no_pool_stages") for r in rs)


def test_targets_are_not_sources():
    assert len([t for t in TARGETS.values()]) >= 6
    kinds = {t.kind for t in TARGETS.values()}
    assert kinds >= {"cross-domain", "novel-classes", "few-label", "text"}
    for t in TARGETS.values():
        for r in RECIPES.values():
            src = r.source_uri()
            # sources use charset=source or Fashion classes 0-5; targets never do
            assert "charset=source" not in t.train and not ("fashion" in src and "classes=6-9" in src)


def test_unknown_recipe():
    with pytest.raises(UsageError, match="no zoo recipe"):
        get_recipe("nope")


def test_tiny_build_list_load_and_skip(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLENS_HOME", str(tmp_path))
    cards = build_zoo(tiny=True)
    assert [c["name"] for c in cards] == list(TINY)
    for card in cards:
        for key in ("recipe", "arch", "input", "source", "source_accuracy", "training_curve", "parameters", "build_seconds"):
            assert key in card
        assert card["parameters"] > 0 and len(card["training_curve"]) == TINY[card["name"]].epochs
        m = resolve_model(f"zoo:{card['name']}").load()
        out = m.forward_layers(m.example_input(2), m.layer_names(), "auto")
        assert out[m.layer_names()[-1]].shape[1] == card["source"]["n_classes"]
    stamp = (tmp_path / "zoo" / "tiny-vgg" / "model.safetensors").stat().st_mtime_ns
    build_zoo(tiny=True)
    assert (tmp_path / "zoo" / "tiny-vgg" / "model.safetensors").stat().st_mtime_ns == stamp


def test_interrupted_build_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import transferlens.zoo.build as build_mod

    recipe = replace(TINY["tiny-mlp"], name="tiny-mlp-2ep", epochs=2)
    monkeypatch.setattr(build_mod, "get_recipe", lambda name: recipe)
    monkeypatch.setenv("TRANSFERLENS_HOME", str(tmp_path / "a"))
    build_zoo(only=["tiny-mlp-2ep"])
    reference = load_file(str(tmp_path / "a" / "zoo" / "tiny-mlp-2ep" / "model.safetensors"))

    monkeypatch.setenv("TRANSFERLENS_HOME", str(tmp_path / "b"))

    def interrupt(name: str, fraction: float) -> None:
        if fraction > 0.75:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_zoo(only=["tiny-mlp-2ep"], progress=interrupt)
    partial = tmp_path / "b" / "zoo" / "tiny-mlp-2ep.partial" / "checkpoint.pt"
    assert partial.exists() and not (tmp_path / "b" / "zoo" / "tiny-mlp-2ep").exists()
    card = build_zoo(only=["tiny-mlp-2ep"])[0]
    resumed = load_file(str(tmp_path / "b" / "zoo" / "tiny-mlp-2ep" / "model.safetensors"))
    assert card["training_curve"][0] == json.loads((tmp_path / "a" / "zoo" / "tiny-mlp-2ep" / "card.json").read_text())["training_curve"][0]
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key
