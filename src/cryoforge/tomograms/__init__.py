"""Tomograms family: particle extraction (and, to come, crowded-tomogram simulation, averaging of real particle
sets); particle lists are read and written by :mod:`cryoforge.io.tomo_particles`."""
