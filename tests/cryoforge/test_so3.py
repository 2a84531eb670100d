"""Tests of :mod:`cryoforge.so3`."""

import torch

from cryoforge.conventions import random_rotations, rotation_angle_deg
from cryoforge.so3 import grid_spacing_deg, local_grid, so3_grid


def test_so3_grid_covers_rotation_space():
    grid = so3_grid(1000)
    probe = random_rotations(200, 1)
    nearest = rotation_angle_deg(probe[:, None], grid[None]).min(1).values
    assert nearest.max() < 1.6 * grid_spacing_deg(1000)
    assert torch.allclose(local_grid(2.0, 1)[0], torch.eye(3)) and len(local_grid(2.0, 2)) == 125
