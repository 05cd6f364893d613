"""SimplexETFHead geometry, freezing and the ResNet feature-dimension surgery."""

import math

import pytest
import torch
import torchvision
from torch import nn

from transferlens.errors import InputError, ModelError, UsageError
from transferlens.finetune.heads import (
    SimplexETFHead, attach_etf_head, reduce_feature_dim, simplex_etf_weight,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one intra-op thread


def _n_params(m: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad or not trainable)


@pytest.mark.parametrize("K,d", [(2, 2), (3, 2), (10, 9), (10, 10), (10, 64), (100, 128)])
@pytest.mark.parametrize("basis", ["random", "axes"])
def test_rows_are_unit_norm_with_pairwise_cosine_minus_one_over_k_minus_one(K, d, basis):
    W = simplex_etf_weight(K, d, basis, seed=3, dtype=torch.float64)
    assert W.shape == (K, d)
    G = W @ W.T
    target = (K / (K - 1)) * (torch.eye(K, dtype=torch.float64) - 1.0 / K)  # unit diagonal, -1/(K-1) off it
    torch.testing.assert_close(G, target, atol=1e-12, rtol=0)
    torch.testing.assert_close(W.sum(0), torch.zeros(d, dtype=torch.float64), atol=1e-12, rtol=0)


def test_axes_basis_is_the_official_construction_and_random_basis_is_seeded():
    K, d = 4, 6
    W = simplex_etf_weight(K, d, "axes", dtype=torch.float64)
    expected = math.sqrt(K / (K - 1)) * (torch.eye(K, dtype=torch.float64) - 1.0 / K)
    torch.testing.assert_close(W[:, :K], expected)
    assert torch.count_nonzero(W[:, K:]) == 0
    torch.testing.assert_close(simplex_etf_weight(K, d, "random", 1), simplex_etf_weight(K, d, "random", 1))
    assert not torch.allclose(simplex_etf_weight(K, d, "random", 1), simplex_etf_weight(K, d, "random", 2))


def test_head_is_frozen_and_only_temperature_and_bias_train():
    head = SimplexETFHead(5, 8)
    names = {n for n, p in head.named_parameters()}
    assert names == {"log_temperature", "bias"}
    assert "weight" in head.state_dict() and not head.weight.requires_grad
    W0 = head.weight.clone()
    opt = torch.optim.SGD(head.parameters(), lr=0.5, weight_decay=0.1)
    x = torch.randn(16, 8)
    y = torch.randint(0, 5, (16,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(head(x), y).backward()
        opt.step()
    torch.testing.assert_close(head.weight, W0, atol=0, rtol=0)
    assert head.temperature.item() != pytest.approx(1.0)


def test_head_options_and_forward():
    h = SimplexETFHead(3, 4, basis="axes", learnable_temperature=False, temperature=2.0, bias=False)
    assert list(h.parameters()) == []
    x = torch.randn(5, 4)
    torch.testing.assert_close(h(x), 2.0 * x @ h.weight.T)
    with pytest.raises(InputError):
        h(torch.randn(5, 3))
    with pytest.raises(InputError):
        SimplexETFHead(10, 5)  # d < K - 1
    with pytest.raises(UsageError):
        SimplexETFHead(3, 4, basis="hadamard")
    with pytest.raises(UsageError):
        SimplexETFHead(3, 4, temperature=0.0)


def test_reduce_feature_dim_resnet18_matches_zhu_et_al_parameter_count():
    """Spec section 4: ResNet-18, K = 10: 11,181,642 -> 8,867,542 parameters (-20.7%)."""
    with torch.device("meta"):  # counting only: skip the weight initialisation
        m = torchvision.models.resnet18(num_classes=10)
        assert _n_params(m) == 11_181_642
        reduce_feature_dim(m, 10)
        assert _n_params(m) == 8_867_542
        attach_etf_head(m)
    assert isinstance(m.fc, SimplexETFHead)
    assert _n_params(m, trainable=True) == 8_867_542 - 100 + 1  # frozen K*d weight, + learnable temperature


def test_reduce_feature_dim_resnet50_count():
    with torch.device("meta"):
        m = torchvision.models.resnet50(num_classes=10)
        reduce_feature_dim(m, 10)
    assert _n_params(m) == 22_481_110  # spec: 23,528,522 -> 22,481,110


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_reduced_torchvision_resnet_runs_and_emits_d_features(block):
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    torch.manual_seed(0)
    m = ResNet(BasicBlock if block == "basic" else Bottleneck, [1, 1, 1, 1], num_classes=6)
    reduce_feature_dim(m, 6)
    attach_etf_head(m)
    feats = {}
    m.fc.register_forward_hook(lambda mod, inp, out: feats.setdefault("h", inp[0]))
    out = m(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 6) and feats["h"].shape == (2, 6)
    out.sum().backward()  # the new shortcut and conv are trainable, the head weight is not
    assert m.layer4[-1].downsample[0].weight.grad is not None
    assert m.fc.weight.grad is None


def test_reduce_feature_dim_timm_resnet():
    from timm.models.resnet import BasicBlock, ResNet

    t = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=7)
    reduce_feature_dim(t, 7)
    assert t.num_features == 7 and t.fc.in_features == 7
    assert t(torch.randn(2, 3, 16, 16)).shape == (2, 7)


def test_reduce_feature_dim_rejects_other_architectures():
    with pytest.raises(ModelError):
        reduce_feature_dim(nn.Sequential(nn.Linear(3, 3)), 3)
    with pytest.raises(ModelError):
        attach_etf_head(nn.Sequential(nn.Linear(3, 3)))
