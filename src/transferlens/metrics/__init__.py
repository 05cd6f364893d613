"""Pure metrics of (features, labels[, logits]): collapse, ranks, few-shot, transferability scores."""
