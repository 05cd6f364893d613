"""Shared fixtures of the UFM tests: single BLAS thread (tiny matrices; a shared 2-core machine)."""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield
