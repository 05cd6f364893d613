"""The README's "Python API" section runs as written: its ```python blocks are doctests (tiny offline data,
a shipped zoo model; seconds)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def api_section(text: str) -> str:
    """The text of the ``## Python API`` section, up to the next ``## `` heading."""
    m = re.search(r"^## Python API\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert m, "README.md has no '## Python API' section"
    return m.group(1)


def python_blocks(section: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)


def test_section_extraction() -> None:
    text = "## A\nx\n## Python API\nintro\n```python\n>>> 1 + 1\n2\n```\n```bash\nls\n```\n## B\n```python\n>>> 0\n```\n"
    assert python_blocks(api_section(text)) == [">>> 1 + 1\n2\n"]


@pytest.mark.usefixtures("one_torch_thread")
def test_readme_python_api_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # assess writes its run directory here
    blocks = python_blocks(api_section(README.read_text(encoding="utf-8")))
    assert len(blocks) >= 4 and all(">>>" in b for b in blocks)
    parser, globs = doctest.DocTestParser(), {}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for i, block in enumerate(blocks):
        test = parser.get_doctest(block, {}, f"README Python API block {i + 1}", str(README), 0)
        test.globs = globs  # the blocks share their names, as in one session (get_doctest copies the dict)
        runner.run(test, clear_globs=False)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 20
    assert result.failed == 0, f"{result.failed} README example(s) failed; see the output above"
    assert (tmp_path / "assess-out" / "report.html").is_file()
