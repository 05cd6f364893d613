"""Uniform wrappers around loaded networks: list layers, and run one forward pass that returns the pooled
outputs of any set of layers.

- :class:`HookedImageModel`: any ``nn.Module`` taking images (timm, torchvision, file:, zoo:); layers are
  named modules read with forward hooks that pool in place.
- :class:`HiddenStateModel`: Hugging Face transformers (text, or vision with ``pixel_values``); layers are
  the hidden states ``hidden_states.0`` (embeddings) … ``hidden_states.L``, pooled with the attention mask.
  A sentence-transformers model (``st:``) also has ``sentence_embedding``: its own pipeline after the
  transformer (Pooling in the model's mode, Dense, Normalize, as its ``modules.json`` lists), equal to
  ``SentenceTransformer.encode``; it is the layer read when none is requested (``ModelRef.info``).
  Text is batched in order of decreasing length (:meth:`HiddenStateModel.batch_order`), as ``encode`` does,
  so a batch pads to similar lengths.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn

from ..data.base import Dataset, ImageSpec
from ..errors import UsageError
from .taps import default_taps, pool_output


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    if isinstance(out, dict):
        for o in out.values():
            t = _first_tensor(o)
            if t is not None:
                return t
    if hasattr(out, "last_hidden_state"):
        return out.last_hidden_state
    return None


@dataclass
class HookedImageModel:
    uri: str
    module: nn.Module
    spec: ImageSpec
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    has_cls_token: bool = False
    kind: str = "image"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.module.eval()
        c = self.spec.channels
        mean = list(self.mean) if len(self.mean) == c else [float(np.mean(self.mean))] * c
        std = list(self.std) if len(self.std) == c else [float(np.mean(self.std))] * c
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1)
        # TorchScript modules take no hooks: only their final output can be read.
        self._scripted = isinstance(self.module, torch.jit.ScriptModule)
        self._output_sink: tuple[dict, str] | None = None
        self.device, self.precision = torch.device("cpu"), "fp32"

    def to(self, device: torch.device | str, precision: str = "fp32") -> "HookedImageModel":
        """Run on ``device`` at ``precision`` (see :mod:`transferlens.device`): moves the module and the
        normalisation constants; inputs are moved per batch in :meth:`forward`. Returns self."""
        from ..device import check_precision

        self.device, self.precision = torch.device(device), check_precision(precision)
        self.module.to(self.device)
        self._mean, self._std = self._mean.to(self.device), self._std.to(self.device)
        return self

    def layer_names(self) -> list[str]:
        return ["output"] if self._scripted else default_taps(self.module)

    def all_module_names(self) -> list[str]:
        return ["output"] if self._scripted else [n for n, _ in self.module.named_modules() if n]

    def prepare(self, data: Dataset, positions: np.ndarray) -> torch.Tensor:
        if data.kind != "image":
            raise UsageError(f"{self.uri} takes images but {data.uri} holds {data.kind}; pick an image source.")
        return data.images(positions, self.spec)

    def example_input(self, batch: int = 2) -> torch.Tensor:
        return torch.rand(batch, self.spec.channels, self.spec.size, self.spec.size)

    @contextlib.contextmanager
    def tapped(self, layers: list[str], pool: str) -> Iterator[dict[str, torch.Tensor]]:
        """Register pooling hooks on ``layers``; the yielded dict fills on every forward pass."""
        captured: dict[str, torch.Tensor] = {}
        if self._scripted:
            self._output_sink = (captured, pool)
            try:
                yield captured
            finally:
                self._output_sink = None
            return
        modules = dict(self.module.named_modules())
        handles = []

        def hook_for(name: str):
            def hook(_mod, _inp, out):
                t = _first_tensor(out)
                if t is not None:
                    pooled = pool_output(t.detach(), pool, self.has_cls_token).float()
                    if pooled.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
                        pooled = pooled.clone()  # a later in-place op (ReLU(inplace=True)) must not change it
                    captured[name] = pooled

            return hook

        for name in layers:
            handles.append(modules[name].register_forward_hook(hook_for(name)))
        try:
            yield captured
        finally:
            for h in handles:
                h.remove()

    @torch.inference_mode()
    def forward(self, inputs: torch.Tensor) -> None:
        if self.device.type == "cpu" and self.precision == "fp32":  # the reference path, unchanged
            out = self.module((inputs - self._mean) / self._std)
        else:
            from ..device import autocast, move_batch

            inputs = move_batch(inputs, self.device)
            with autocast(self.device, self.precision):
                out = self.module((inputs - self._mean) / self._std)
        if self._output_sink is not None:
            sink, pool = self._output_sink
            t = _first_tensor(out)
            if t is not None:
                sink["output"] = pool_output(t, pool, self.has_cls_token).float()

    def forward_layers(self, inputs: torch.Tensor, layers: list[str], pool: str) -> dict[str, torch.Tensor]:
        with self.tapped(layers, pool) as captured:
            self.forward(inputs)
        missing = [n for n in layers if n not in captured]
        if missing:
            raise UsageError(f"{self.uri}: layer(s) {', '.join(missing)} produced no tensor output in the forward pass.")
        return {n: captured[n] for n in layers}


SENTENCE_EMBEDDING = "sentence_embedding"


@dataclass
class HiddenStateModel:
    uri: str
    module: nn.Module  # a transformers PreTrainedModel
    tokenizer: Any = None  # text models
    spec: ImageSpec | None = None  # vision models
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    normalize_embedding: bool = False  # hf: text models' "embedding" layer: L2-normalise the mean token
    max_length: int = 256
    kind: str = "text"
    info: dict = field(default_factory=dict)
    sentence_model: Any = None  # st: a SentenceTransformer whose first module wraps ``module``

    def __post_init__(self) -> None:
        self.module.eval()
        cfg = self.module.config
        self.n_layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0))
        self.has_cls_token = self.kind == "image"  # ViT-like vision encoders put CLS first
        self.device, self.precision = torch.device("cpu"), "fp32"
        self._st_head: nn.Module | None = None
        if self.sentence_model is not None:
            self.sentence_model.eval()
            first = self.sentence_model[0]
            text_cfg = (getattr(first, "modality_config", None) or {}).get("text", {})
            # the modules after the transformer can reuse the hidden-state pass when the transformer module's
            # output is the last hidden state (true of text Transformer modules); else a second pass is run
            if text_cfg.get("method") == "forward" and text_cfg.get("method_output_name") == "last_hidden_state":
                self._st_head = nn.Sequential(*list(self.sentence_model)[1:])
                self._st_output = getattr(first, "module_output_name", "token_embeddings")

    def to(self, device: torch.device | str, precision: str = "fp32") -> "HiddenStateModel":
        """Run on ``device`` at ``precision`` (see :mod:`transferlens.device`). Returns self."""
        from ..device import check_precision

        self.device, self.precision = torch.device(device), check_precision(precision)
        self.module.to(self.device)
        if self.sentence_model is not None:
            self.sentence_model.to(self.device)
        return self

    def layer_names(self) -> list[str]:
        return [f"hidden_states.{i}" for i in range(self.n_layers + 1)]

    def all_module_names(self) -> list[str]:
        if self.sentence_model is not None:
            return self.layer_names() + [SENTENCE_EMBEDDING, "embedding"]  # "embedding": its older name
        return self.layer_names() + (["embedding"] if self.tokenizer is not None else [])

    def batch_order(self, data: Dataset) -> np.ndarray:
        """Positions of ``data`` in the order to batch them: text by decreasing character length (stable),
        so each batch pads to similar lengths (``SentenceTransformer.encode`` does the same); else as they are."""
        if self.kind != "text" or data.kind != "text":
            return np.arange(len(data))
        lengths = np.fromiter((len(t) for t in data.texts(np.arange(len(data)))), dtype=np.int64, count=len(data))
        return np.argsort(-lengths, kind="stable")

    def prepare(self, data: Dataset, positions: np.ndarray) -> Any:
        if data.kind != self.kind:
            raise UsageError(f"{self.uri} takes {self.kind} but {data.uri} holds {data.kind}.")
        if self.kind == "text":
            return data.texts(positions)
        return data.images(positions, self.spec)

    def example_input(self, batch: int = 2) -> Any:
        if self.kind == "text":
            return ["an example sentence"] * batch
        return torch.rand(batch, self.spec.channels, self.spec.size, self.spec.size)

    @torch.inference_mode()
    def forward_layers(self, inputs: Any, layers: list[str], pool: str) -> dict[str, torch.Tensor]:
        if self.device.type == "cpu" and self.precision == "fp32":  # the reference path, unchanged
            return self._forward_layers(inputs, layers, pool)
        from ..device import autocast

        with autocast(self.device, self.precision):
            return self._forward_layers(inputs, layers, pool)

    def _sentence_layers(self, inputs: Any, layers: list[str], pool: str) -> dict[str, torch.Tensor]:
        """st: models: tokenise as the model does; one transformer pass gives the hidden states, and the
        model's own modules after it turn the last one into ``sentence_embedding`` (alias ``embedding``).
        Without hidden-state layers no hidden states are kept (``output_hidden_states`` off)."""
        feats = self.sentence_model.preprocess(list(inputs))
        if self.device.type != "cpu":
            feats = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}
        mask = feats["attention_mask"]
        hidden = [n for n in layers if n.startswith("hidden_states.")]
        result: dict[str, torch.Tensor] = {}
        sentence = None
        if hidden:
            model_in = {k: feats[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in feats}
            out = self.module(**model_in, output_hidden_states=True)
            for name in hidden:
                t = out.hidden_states[int(name.split(".")[1])]
                result[name] = pool_output(t, "mean" if pool == "auto" else pool, False, mask).float()
            if self._st_head is not None:
                sentence = self._st_head({**feats, self._st_output: out.last_hidden_state})["sentence_embedding"]
        if sentence is None and any(n in (SENTENCE_EMBEDDING, "embedding") for n in layers):
            sentence = self.sentence_model(feats)["sentence_embedding"]
        for name in layers:
            if name in (SENTENCE_EMBEDDING, "embedding"):
                result[name] = sentence.float()
        return {n: result[n] for n in layers}

    def _forward_layers(self, inputs: Any, layers: list[str], pool: str) -> dict[str, torch.Tensor]:
        if self.kind == "text" and self.sentence_model is not None:
            return self._sentence_layers(inputs, layers, pool)
        mask = None
        if self.kind == "text":
            enc = self.tokenizer(list(inputs), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            if self.device.type != "cpu":
                enc = {k: v.to(self.device) for k, v in enc.items()}
            mask = enc["attention_mask"]
            out = self.module(**enc, output_hidden_states=True)
        else:
            inputs = inputs.to(self.device)
            mean = torch.tensor(self.mean, device=self.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=self.device).view(1, -1, 1, 1)
            out = self.module(pixel_values=(inputs - mean) / std, output_hidden_states=True)
        states = out.hidden_states
        text_pool = "mean" if pool == "auto" else pool
        result: dict[str, torch.Tensor] = {}
        for name in layers:
            if name == "embedding":
                emb = pool_output(states[-1], "mean", mask=mask)
                result[name] = torch.nn.functional.normalize(emb, dim=-1) if self.normalize_embedding else emb
                continue
            idx = int(name.split(".")[1])
            t = states[idx]
            result[name] = pool_output(t, text_pool if self.kind == "text" else pool, self.has_cls_token, mask).float()
        return result
