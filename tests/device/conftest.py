"""``@pytest.mark.gpu`` tests run only where CUDA is available; elsewhere they are skipped with the reason."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False here); run scripts/test_gpu.sh on one")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _gpu_tests_see_auto(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The root conftest pins the suite to the CPU (TRANSFERLENS_DEVICE=cpu); @gpu tests see the real ``auto``."""
    if request.node.get_closest_marker("gpu") is not None:
        monkeypatch.delenv("TRANSFERLENS_DEVICE", raising=False)
