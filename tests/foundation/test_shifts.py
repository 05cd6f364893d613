"""OOD shifts: determinism, severity monotonicity (distance to the clean image), URI grammar."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlens.data import ImageSpec, load_data
from transferlens.data.shifts import CORRUPTIONS, make_shift
from transferlens.errors import UsageError

BASE = "builtin:digits?n_per_class=2"
SPEC = ImageSpec(32, 1)


@pytest.fixture(scope="module")
def clean():
    d = load_data(BASE)
    return d.images(np.arange(len(d)), SPEC)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_severity_is_monotone(name, clean):
    dists = []
    for sev in range(1, 6):
        d = load_data(f"shift:{name}:{sev}:{BASE}")
        x = d.images(np.arange(len(d)), SPEC)
        assert x.shape == clean.shape and float(x.min()) >= 0 and float(x.max()) <= 1
        dists.append(float((x - clean).pow(2).sum(dim=(1, 2, 3)).sqrt().mean()))
    assert dists[0] > 1e-3, f"{name} at severity 1 changes nothing"
    assert all(b > a for a, b in zip(dists, dists[1:])), f"{name}: distances {dists} not increasing"


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_shift_is_deterministic_per_sample(name):
    d = load_data(f"shift:{name}:3:{BASE}")
    a = d.images(np.arange(6), SPEC)
    b = d.images(np.array([3, 4, 5]), SPEC)  # another batch composition: same per-sample result
    assert torch.allclose(a[3:], b, atol=1e-6)


def test_shift_uri_and_errors():
    d = load_data(f"shift:blur:2:{BASE}")
    assert d.uri.startswith("shift:blur:2:builtin:digits")
    with pytest.raises(UsageError, match="unknown shift"):
        load_data(f"shift:fog:2:{BASE}")
    with pytest.raises(UsageError, match="1-5"):
        load_data(f"shift:blur:9:{BASE}")
    with pytest.raises(UsageError, match="shift:NAME:SEVERITY:DATA"):
        load_data("shift:blur")
    with pytest.raises(UsageError, match="apply to images"):
        load_data("shift:blur:1:builtin:fortunes")


def test_shifts_compose():
    d = load_data(f"shift:inversion:5:shift:blur:1:{BASE}")
    blurred = load_data(f"shift:blur:1:{BASE}").images(np.arange(4), SPEC)
    both = d.images(np.arange(4), SPEC)
    assert torch.allclose(both, 1 - blurred, atol=1e-6)


def test_make_shift_validates():
    with pytest.raises(UsageError):
        make_shift("blur", 0)
