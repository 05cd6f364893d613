"""``transferlens rank``: end to end on offline models, schema-valid record, failures isolated."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

from transferlens.cli.main import app
from transferlens.errors import UsageError
from transferlens.ranking import _add_ranks, is_logits_layer, rank_models

MODELS = ["timm:resnet18?pretrained=false&size=16", "timm:mobilenetv3_small_050?pretrained=false&size=16",
          "timm:vit_tiny_patch16_224?pretrained=false&size=16", "torchvision:resnet18?pretrained=false&size=16",
          "timm:resnet18?pretrained=false&size=16&seed=1"]
DATA = "builtin:digits-uci?n_per_class=8"


def _schema() -> dict:
    return json.loads(resources.files("transferlens").joinpath("schemas/rank.schema.json").read_text())


def test_rank_five_models_end_to_end(tmp_path):
    args = ["rank", "--data", DATA, "--scores", "logme,leep,nce,gbc,knn_accuracy,ncti", "--out", str(tmp_path)]
    for m in MODELS + ["timm:no_such_model"]:
        args += ["--model", m]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "rank.json").read_text())
    jsonschema.validate(record, _schema())
    assert record["kind"] == "rank" and len(record["ranking"]) == 5 and record["recommended"] == record["ranking"][0]
    failed = [r for r in record["models"] if r["error"]]
    assert len(failed) == 1 and "no_such_model" in failed[0]["model"]
    vit = next(r for r in record["models"] if "vit" in r["model"])
    assert "leep" in vit["scores"] and vit["layer"] == "norm"  # pre-logits layer of timm's ViT; LEEP from its head
    assert (tmp_path / "rank.csv").read_text().count("\n") == 7


def test_label_free_ranking():
    record = rank_models(MODELS[:2], DATA, use_labels=False)
    assert record["scores"] == ["etran_energy"] and all("etran_energy" in r["scores"] for r in record["models"])
    with pytest.raises(UsageError, match="needs labels"):
        rank_models(MODELS[:2], DATA, scores=["logme"], use_labels=False)


def test_mean_rank_combination():
    rows = [{"model": "a", "scores": {"sfda": 3.0, "gbc": -1.0}}, {"model": "b", "scores": {"sfda": 1.0, "gbc": -0.5}},
            {"model": "c", "scores": {"sfda": 2.0}}]
    _add_ranks(rows, ["sfda", "gbc"])
    assert rows[0]["ranks"] == {"sfda": 1.0, "gbc": 2.0} and rows[1]["ranks"] == {"sfda": 3.0, "gbc": 1.0}
    assert rows[0]["combined_rank"] == 1.5 and rows[1]["combined_rank"] == 2.0 and rows[2]["combined_rank"] == 2.0


def test_logits_layer_names():
    assert is_logits_layer("fc") and is_logits_layer("head") and is_logits_layer("classifier.1")
    assert not is_logits_layer("global_pool") and not is_logits_layer("head_drop") and not is_logits_layer("layer4.1")


def test_duplicate_models_refused():
    with pytest.raises(UsageError, match="twice"):
        rank_models([MODELS[0], MODELS[0]], DATA)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    import os

    from transferlens.zoo.build import build_zoo

    home = tmp_path_factory.mktemp("zoohome")
    old = os.environ["TRANSFERLENS_HOME"]
    os.environ["TRANSFERLENS_HOME"] = str(home)
    (home / "data").symlink_to(os.path.join(old, "data"), target_is_directory=True) if os.path.exists(os.path.join(old, "data")) else None
    build_zoo(tiny=True)
    yield ["zoo:tiny-vgg", "zoo:tiny-mlp", "zoo:tiny-resnet"]
    os.environ["TRANSFERLENS_HOME"] = old


def test_task_relatedness_in_rank_uses_the_zoo_source_task(tiny_zoo):
    from transferlens.ranking import reference_task

    uri, head = reference_task("zoo:tiny-vgg", None)
    assert "charset=source" in uri and "n_per_class=" in uri and head[0].shape == (10, 16)
    record = rank_models(tiny_zoo[:2], DATA, scores=["logme", "task_relatedness", "task_relatedness_label_free"])
    for row in record["models"]:
        assert row["error"] is None, row["error"]
        for name in ("task_relatedness", "task_relatedness_label_free"):
            assert np.isfinite(row["scores"][name]) and row["scores"][name] > 0
            detail = row["relatedness"][name]
            assert detail["reference_data"] == reference_task(row["model"], None)[0]
            total = detail["reference_loss"] + detail["label_mismatch"] + detail["distribution_mismatch"]
            assert abs(total - row["scores"][name]) < 1e-6 * max(1.0, abs(total))
    assert record["higher_is_better"]["task_relatedness"] is False
    with pytest.raises(UsageError, match="reference"):
        reference_task("timm:resnet18?pretrained=false&size=16", None)
