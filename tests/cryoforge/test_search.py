"""Tests of :mod:`cryoforge.search`."""

import pytest
import torch

from cryoforge.align.pipeline import align_pairs_job
from cryoforge.conventions import random_rotations, rotation_angle_deg
from cryoforge.geometry import transform_volumes
from cryoforge.jobs import JobError, drive
from cryoforge.search import classical_align
from cryoforge.sim.tomo import centred_wedge
from tests.helpers import wedged


def test_classical_recovers_a_known_transform_on_noise_free_data(maps):
    rot = random_rotations(2, 11)
    t = torch.tensor([[3.0, -2.0, 1.5], [-4.0, 0.5, 2.0]])
    s_a = maps[:2]
    mask_b = centred_wedge(32, -60, 60)
    s_b = wedged(transform_volumes(s_a, rot, t), mask_b)
    r_hat, t_hat, score = classical_align(s_a, s_b, None, mask_b)
    assert rotation_angle_deg(r_hat, rot).max() < 1.5
    assert torch.linalg.norm(t_hat - t, dim=1).max() < 0.3
    assert score.min() > 0.9


def test_alignment_bad_inputs(maps):
    with pytest.raises(ValueError, match="same size"):
        classical_align(maps[0], maps[0, :30, :30, :30])
    with pytest.raises(ValueError, match="cubic"):
        classical_align(maps[0, :, :, :30], maps[0, :, :, :30])
    with pytest.raises(JobError, match="same shape"):
        drive(align_pairs_job(maps[:1], maps[:2], method="classical"))
