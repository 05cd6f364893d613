"""Data sources addressed by URI (builtin:, imagefolder:, csv:, npz:) and OOD shifts (shift:)."""

from .base import Dataset, ImageSpec
from .files import on_bad_file, skipped_summary
from .registry import list_sources, load_data

__all__ = ["Dataset", "ImageSpec", "list_sources", "load_data", "on_bad_file", "skipped_summary"]
