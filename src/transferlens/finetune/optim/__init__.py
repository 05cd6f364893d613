"""Optimizers that follow the torch.optim contract."""

from transferlens.finetune.optim.ftp import FTPSGD, FTPAdam, FTPAdamW
from transferlens.finetune.optim.tpgm import TPGM

__all__ = ["FTPSGD", "FTPAdam", "FTPAdamW", "TPGM"]
