"""Unconstrained feature model: objectives, solver, closed-form theory, landscape."""
