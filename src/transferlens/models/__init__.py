"""Model sources addressed by URI (zoo:, timm:, torchvision:, hf:, st:, file:) and layer taps."""

from .registry import DEFAULT_TEXT_MODEL, list_model_sources, resolve_model

__all__ = ["DEFAULT_TEXT_MODEL", "list_model_sources", "resolve_model"]
