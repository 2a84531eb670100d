"""Whole-tomogram template matching: the fast local normalised cross-correlation of a template over every voxel and
every rotation of a uniform SO(3) set (:mod:`.flcc`, the job in :mod:`.job`), and the candidates picked from its
score map with the field's Gaussian-null baseline (:mod:`.peaks`)."""
