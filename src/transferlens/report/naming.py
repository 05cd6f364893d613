"""Short human labels for data URIs, for plots, tables and sentences."""

from __future__ import annotations


def data_label(uri: str) -> str:
    """``shift:blur:3:builtin:digits?...`` -> ``blur (severity 3)``; ``builtin:digits-uci?...`` -> ``digits-uci``."""
    text = uri.strip()
    if text.lower().startswith("shift:"):
        parts = text.split(":", 3)
        if len(parts) == 4:
            return f"{parts[1].replace('_', ' ')} (severity {parts[2]})"
    head = text.split("?", 1)[0]
    scheme, _, path = head.partition(":")
    if not path:
        return head
    return path.rstrip("/").rsplit("/", 1)[-1] if scheme in ("imagefolder", "csv", "npz") else path


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """0.9312 -> ``93.1%``; None -> ``n/a``."""
    return "n/a" if value is None else f"{100.0 * value:.{digits}f}%"


def combined_word(rank: dict) -> str:
    """"median rank" or "mean rank": how a ``rank_models`` record combined its scores (older records: mean)."""
    return (rank.get("combined") or {}).get("method", "mean rank").split(" over")[0].replace(" (Borda)", "")
