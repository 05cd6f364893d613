"""Model-aware measures: geometric complexity and loss-surface flatness."""
