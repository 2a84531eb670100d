"""Simulation: maps from atomic models and phantoms, subtomograms, tilt series, particle stacks."""
