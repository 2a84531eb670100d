"""Tests of :mod:`cryoforge.align.pipeline`."""

import json

import numpy as np
import pytest
import torch

from cryoforge.align.pipeline import align_pairs_job
from cryoforge.conventions import random_rotations, rotation_angle_deg
from cryoforge.geometry import transform_volumes
from cryoforge.jobs import drive
from cryoforge.search import classical_align
from cryoforge.sim.tomo import centred_wedge
from tests.helpers import wedged


def test_hybrid_refines_from_a_rough_start_and_pipeline_reports_errors(maps):
    rot = random_rotations(2, 12)
    t = torch.tensor([[1.0, 2.0, -1.0], [0.0, -3.0, 2.5]])
    mask_b = centred_wedge(32, -60, 60)
    s_b = wedged(transform_volumes(maps[[0, 2]], rot, t), mask_b)
    rough = torch.linalg.matrix_exp(torch.tensor([[0, -0.15, 0.1], [0.15, 0, -0.1], [-0.1, 0.1, 0]])) @ rot
    r_hat, t_hat, _ = classical_align(maps[[0, 2]], s_b, None, mask_b, initial=rough)
    assert rotation_angle_deg(rough, rot).min() > 8 and rotation_angle_deg(r_hat, rot).max() < 1.5
    res = drive(align_pairs_job(maps[[0, 2]], s_b, None, mask_b, "classical", truth=(rot, t)))
    assert res.summary["rot_deg_mean"] < 1.5 and res.summary["trans_vox_mean"] < 0.3
    assert (res.corr_after > res.corr_before + 0.2).all()
    report = json.loads(json.dumps(res.to_json()))  # the benches' and a STAR writer's view: plain numbers
    assert report["n_pairs"] == res.n_pairs and len(report["errors"]["rot_deg"]) == res.n_pairs


def test_errors_modulo_symmetry_forgive_a_turn_of_a_symmetric_map_only():
    """A map with four-fold symmetry about z: an estimate turned by that symmetry is right (error ≈ 0 modulo it), an
    estimate turned by 45° is not, and a map without symmetry forgives nothing."""
    import torch

    from cryoforge.align.pipeline import errors_modulo_symmetry, pose_errors
    from cryoforge.conventions import euler_zyz_to_matrix, random_rotations

    n = 24
    zz, yy, xx = np.mgrid[:n, :n, :n] - n // 2
    c4 = np.zeros((n, n, n), np.float32)
    for x, y in ((6, 0), (0, 6), (-6, 0), (0, -6)):  # four blobs on a ring above the centre: C4 about z
        c4 += np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - 3) ** 2) / 4.0)
    c4 += np.exp(-(xx ** 2 + yy ** 2 + (zz + 4) ** 2) / 6.0)
    chiral = c4 + np.exp(-((xx - 4) ** 2 + (yy - 7) ** 2 + (zz + 2) ** 2) / 3.0)  # one more blob: no symmetry left
    a = random_rotations(3, seed=1).double()
    b = random_rotations(3, seed=2).double()
    true_rel = b @ a.transpose(-1, -2)
    s90 = euler_zyz_to_matrix(90.0, 0.0, 0.0).double()
    s45 = euler_zyz_to_matrix(45.0, 0.0, 0.0).double()
    est = torch.stack([b[0] @ s90 @ a[0].T, b[1] @ s45 @ a[1].T, true_rel[2]])
    raw = pose_errors(est, np.zeros((3, 3)), true_rel, np.zeros((3, 3)))["rot_deg"]
    assert raw[0] == pytest.approx(90, abs=0.1) and raw[1] == pytest.approx(45, abs=0.1) and raw[2] < 1e-3
    maps = np.stack([c4, chiral])
    sym, turned = errors_modulo_symmetry(maps, np.zeros(3, int), a.numpy(), est.numpy(), true_rel.numpy(), raw)
    assert turned.tolist() == [True, False, False] and sym[0] < 2.0 and sym[1] == pytest.approx(45, abs=0.1)
    sym, turned = errors_modulo_symmetry(maps, np.ones(3, int), a.numpy(), est.numpy(), true_rel.numpy(), raw)
    assert not turned.any() and np.allclose(sym, raw)
