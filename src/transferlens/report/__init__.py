"""HTML report rendering of result records."""
