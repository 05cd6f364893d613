"""Plain-language view of the ``field`` stage (``assess --field DATA``): shared by the HTML report and the CLI line."""

from __future__ import annotations

from typing import Any

from .naming import data_label, fmt_pct
from .run import result

LABELS = {"id_accuracy": "ID accuracy (naive)", "atc_maxconf": "ATC, max-confidence", "atc_entropy": "ATC, entropy",
          "doc": "DoC", "aol": "agreement-on-the-line"}
SHORT = {"id_accuracy": "ID acc.", "atc_maxconf": "ATC-MC", "atc_entropy": "ATC-NE", "doc": "DoC", "aol": "AoL"}


def estimator_order(res: dict) -> list[str]:
    """Estimators, the smallest measured expected error first (unmeasured last, in the record's order)."""
    err = res.get("expected_error") or {}
    names = [n for n in LABELS if any(n in (r.get("estimates") or {}) for r in res.get("models", {}).values())]
    return sorted(names, key=lambda n: (err.get(n) is None, err.get(n) or 0.0))


def field_focus(run: dict) -> str | None:
    """The candidate to summarise: the recommended model when it was estimated, else the first estimated one."""
    res = result(run.get("field")) or {}
    models = list(res.get("models", {}))
    winner = run["assess"].get("decision", {}).get("model")
    return winner if winner in models else (models[0] if models else None)


def field_line(run: dict) -> str | None:
    """One sentence: the focus model's estimates, each with ``± MAE`` measured on the zoo; None without ``--field``."""
    st = run.get("field")
    if st is None:
        return None
    res = result(st)
    if res is None:
        return f"Field accuracy: not estimated ({st.get('error') or st.get('status')})."
    m = field_focus(run)
    if m is None:
        return None
    est, err = res["models"][m]["estimates"], res.get("expected_error") or {}
    parts = []
    for n in estimator_order(res):
        v = est.get(n)
        if v is None:
            continue
        e = err.get(n)
        parts.append(f"{SHORT[n]} {fmt_pct(v)}" + (f" (±{e:.1f} pts expected)" if e is not None else ""))
    f = res.get("field", {})
    return (f"Estimated accuracy of {m} on the field data {data_label(f.get('uri', ''))} ({f.get('n')} samples, labels not "
            f"used): " + ", ".join(parts) + ".")


def field_rows(res: dict[str, Any]) -> list[tuple[str, dict]]:
    """(model, estimates) for every estimated candidate, in the record's order."""
    return [(m, r.get("estimates") or {}) for m, r in res.get("models", {}).items()]
