"""Resolve a model URI (see :mod:`.sources` for the schemes) and list the model sources."""

from __future__ import annotations

from ..uri import parse_uri
from . import sources
from .zoo_source import resolve_zoo

SCHEMES = {
    "timm": sources.resolve_timm,
    "torchvision": sources.resolve_torchvision,
    "hf": sources.resolve_hf,
    "st": sources.resolve_st,
    "file": sources.resolve_file,
    "zoo": resolve_zoo,
}

DEFAULT_TEXT_MODEL = f"st:{sources.PACKAGED_MINILM}"


def resolve_model(text: str) -> sources.ModelRef:
    """Validate ``text`` and return a :class:`~.sources.ModelRef` (cheap; nothing is loaded)."""
    uri = parse_uri(text.strip(), set(SCHEMES), what="model")
    return SCHEMES[uri.scheme](uri)


def list_model_sources() -> list[dict]:
    """One row per scheme, plus the models available offline here (packaged MiniLM, built zoo)."""
    from ..zoo.registry import list_built

    rows = [
        {"uri": "timm:NAME", "description": "any timm model; ?pretrained=false for random init, ?weights=PATH for local weights, ?size=32"},
        {"uri": "torchvision:NAME", "description": "torchvision.models; same parameters as timm"},
        {"uri": "hf:NAME_OR_PATH", "description": "Hugging Face transformers AutoModel (text or vision); layers = hidden states"},
        {"uri": "st:NAME_OR_PATH", "description": "sentence-transformers model; hidden states + the sentence embedding"},
        {"uri": "file:PATH", "description": "TorchScript file, or state dict with ?arch=timm:NAME"},
        {"uri": "zoo:NAME", "description": "the project's own pretrained small models (transferlens zoo build)"},
    ]
    try:
        sources.packaged_minilm_dir()
        rows.append({"uri": DEFAULT_TEXT_MODEL, "description": "all-MiniLM-L6-v2, packaged, offline (default text model)"})
    except Exception:
        pass
    from .packaged import availability

    for row in availability():
        state = "available offline here" if row["available"] else f"not installed: {row['install']}"
        rows.append({"uri": row["uri"], "description": f"{row['description']}, {row['params']} params; {state}",
                     "available": row["available"], "install": row["install"]})
    rows += [{"uri": f"zoo:{name}", "description": "built zoo model"} for name in list_built()]
    return rows
