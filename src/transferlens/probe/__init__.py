"""Linear probes (closed-form, streaming) and tunnel analysis."""
