"""Optimizers that follow the torch.optim contract."""
