"""Tests of :mod:`cryoforge.align.pipeline`."""

import json

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
