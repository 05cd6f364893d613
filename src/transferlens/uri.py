"""Parsing of source URIs: ``scheme:path?key=value&key=value``.

Examples: ``builtin:digits?n_per_class=30&seed=0``, ``imagefolder:/data/pets``,
``timm:resnet18?pretrained=false&size=32``, ``shift:blur:3:builtin:digits``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

from .errors import UsageError


@dataclass(frozen=True)
class URI:
    scheme: str
    path: str
    params: dict[str, str] = field(default_factory=dict)

    def canonical(self) -> str:
        """A normal form: parameters sorted, so equal sources have equal cache keys."""
        query = "&".join(f"{k}={quote(v, safe=',:/._-')}" for k, v in sorted(self.params.items()))
        return f"{self.scheme}:{self.path}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.canonical()

    # typed accessors -------------------------------------------------------------------------
    def get_int(self, key: str, default: int | None = None, minimum: int | None = None) -> int | None:
        if key not in self.params:
            return default
        try:
            value = int(self.params[key])
        except ValueError:
            raise UsageError(f"{self}: parameter {key}={self.params[key]!r} must be an integer.") from None
        if minimum is not None and value < minimum:
            raise UsageError(f"{self}: parameter {key}={value} must be >= {minimum}.")
        return value

    def get_float(self, key: str, default: float | None = None) -> float | None:
        if key not in self.params:
            return default
        try:
            return float(self.params[key])
        except ValueError:
            raise UsageError(f"{self}: parameter {key}={self.params[key]!r} must be a number.") from None

    def get_bool(self, key: str, default: bool) -> bool:
        if key not in self.params:
            return default
        value = self.params[key].lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"{self}: parameter {key}={self.params[key]!r} must be true or false.")

    def check_params(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.params) - allowed)
        if unknown:
            raise UsageError(
                f"{self.scheme}: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}."
            )


def parse_uri(text: str, known_schemes: set[str] | None = None, what: str = "source") -> URI:
    """Split ``scheme:path?query`` and check the scheme."""
    if not isinstance(text, str) or ":" not in text:
        hint = f" Known schemes: {', '.join(sorted(known_schemes))}." if known_schemes else ""
        raise UsageError(f"{what} {text!r} is not a URI of the form scheme:name (e.g. builtin:digits).{hint}")
    scheme, rest = text.split(":", 1)
    scheme = scheme.strip().lower()
    if known_schemes is not None and scheme not in known_schemes:
        raise UsageError(
            f"unknown {what} scheme {scheme!r} in {text!r}; known schemes: {', '.join(sorted(known_schemes))}."
        )
    path, _, query = rest.partition("?")
    params: dict[str, str] = {}
    if query:
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            params[key.strip()] = value.strip()
    return URI(scheme, path, params)
