"""Robust fine-tuning: FTP / TPGM optimizers, L2-SP, LP-FT, WiSE-FT, ETF heads, training loop."""
