"""Model names in tables are never folded or cut: off a terminal the console takes the table's natural width,
and on a narrow one the name column keeps its width while the other columns give way."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from transferlens.cli.main import app

LONG = "zoo:a-candidate-whose-name-is-much-longer-than-any-column-of-an-80-character-terminal"


@pytest.mark.parametrize("columns", [None, "100"])
def test_long_model_name_appears_whole_in_the_rank_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          columns: str | None) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    res = CliRunner().invoke(app, ["rank", "-d", "builtin:digits-uci?n_per_class=10", "-m", "zoo:mlp-g50-s16", "-m", LONG,
                                   "--scores", "logme,knn_accuracy", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    table_rows = [line for line in res.output.splitlines() if line.startswith("│")]
    assert any(LONG in row for row in table_rows), res.output  # the failed candidate's row, name whole on one line
    assert any("zoo:mlp-g50-s16" in row for row in table_rows)
    if columns is not None:
        assert max(len(line) for line in res.output.splitlines() if line.startswith(("┏", "│", "└"))) <= int(columns)
