"""Worker for test_ftp_ddp.py: FTP-AdamW under DistributedDataParallel (gloo, CPU), half batch per rank.

Run by torchrun; writes ``rank{r}.pt`` with the final parameters and γ into the directory argv[1].
``reference(...)`` is the same training in one process on the full batch.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from transferlens.finetune.optim import FTPAdamW

STEPS = 12


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)


def make_opt(model: nn.Module) -> FTPAdamW:
    return FTPAdamW(model, lr=3e-2, weight_decay=1e-2, exclude=["4.*"])


def reference() -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    model = make_model()
    opt = make_opt(model)
    x, y = make_data()
    for _ in range(STEPS):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, {
        k: float(v) for k, v in opt.gammas().items()
    }


def main(out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = nn.parallel.DistributedDataParallel(make_model())
    opt = make_opt(model)  # names carry the "module." prefix; exclusion still matches "4.*"
    x, y = make_data()
    xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]
    for _ in range(STEPS):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xs), ys).backward()
        opt.step()
    torch.save(
        {
            "params": {k: v.detach().clone() for k, v in model.module.state_dict().items()},
            "gammas": {k: float(v) for k, v in opt.gammas().items()},
            "gamma_bits": {k: v.detach().clone() for k, v in opt.gammas().items()},
        },
        f"{out_dir}/rank{rank}.pt",
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
