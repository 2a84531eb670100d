"""Gum-Net's normalisation statistics recomputed from the pairs at hand (cryoforge.align.adapt): in eval mode the
recalibrated network answers as it does in train mode (batch statistics), and the shipped model's translations at
SNR 0.1 come right."""

import copy

import numpy as np
import pytest
import torch

from cryoforge.align.adapt import batchnorm_layers, recalibrated
from cryoforge.align.bench import STRUCTURES, _maps
from cryoforge.align.data import simulate_pairs
from cryoforge.align.gumnet import standardize
from cryoforge.align.pipeline import align_pairs_job
from cryoforge.align.train import load_gumnet
from cryoforge.align.warp import params_to_pose
from cryoforge.jobs import drive
from cryoforge.samples import GUMNET_CHECKPOINT, sample_path
from cryoforge.sim.params import TomoParams
from cryoforge.sim.subtomo import dataset_masks


@pytest.fixture(scope="module")
def shipped_and_pairs():
    maps, vs = _maps()
    model = load_gumnet(sample_path(GUMNET_CHECKPOINT), box=maps.shape[-1])
    ds = simulate_pairs(maps, 40, TomoParams(voxel_size=vs, snr=0.1), seed=7, structures=list(STRUCTURES))
    return model, ds, vs


def _shifts(model, s_a, s_b, train_mode):
    if train_mode:
        model = copy.deepcopy(model)  # a train-mode pass updates the running statistics
    model.train(train_mode)
    with torch.no_grad():
        p = model(standardize(torch.as_tensor(s_a)), standardize(torch.as_tensor(s_b)))
    model.eval()
    return params_to_pose(p, model.cfg.box, model.cfg.rotation)[1]


def test_eval_mode_after_recalibration_answers_as_train_mode(shipped_and_pairs):
    model, ds, _ = shipped_and_pairs
    s_a, s_b = ds.s_a[:32], ds.s_b[:32]
    truth = torch.as_tensor(ds.shifts()[:32])
    train = _shifts(model, s_a, s_b, True)  # normalised by this batch's own statistics
    stored = _shifts(model, s_a, s_b, False)
    tuned = recalibrated(model, s_a, s_b, batch=32)
    assert tuned is not model and all(bn.momentum == 0.1 for bn in batchnorm_layers(tuned))
    adapted = _shifts(tuned, s_a, s_b, False)
    err = {k: float(torch.linalg.norm(v - truth, dim=1).mean()) for k, v in
           (("train", train), ("stored", stored), ("adapted", adapted))}
    assert abs(err["adapted"] - err["train"]) < 0.05  # eval and train mode agree
    assert float((adapted - train).abs().max()) < 0.05  # pair by pair, in voxels
    assert err["stored"] > err["adapted"] + 1.0  # the stored mixture was the fault (≈ 3.3 vs 1.4 voxels)
    # the original is untouched
    assert torch.allclose(_shifts(model, s_a, s_b, False), stored)


def test_align_job_uses_the_pairs_statistics(shipped_and_pairs):
    model, ds, vs = shipped_and_pairs
    _, mb = dataset_masks(ds)
    truth = (ds.rotations(), ds.shifts())
    runs = {adapt: drive(align_pairs_job(ds.s_a, ds.s_b, None, mb, "gumnet", model=model, truth=truth,
                                         voxel_size=vs, adapt_norm=adapt)).summary for adapt in (False, True)}
    assert runs[True]["norm_from_these_pairs"] == 1 and runs[False]["norm_from_these_pairs"] == 0
    assert runs[True]["trans_vox_mean"] <= 1.8 < runs[False]["trans_vox_mean"]


def test_too_few_pairs_keep_the_stored_statistics(shipped_and_pairs):
    model, ds, _ = shipped_and_pairs
    assert recalibrated(model, ds.s_a[:3], ds.s_b[:3]) is model
    assert recalibrated(model, ds.s_a[0], ds.s_b[0], min_pairs=1) is not model
    np.testing.assert_array_equal(batchnorm_layers(model)[0].running_mean.numpy(),
                                  batchnorm_layers(load_gumnet(sample_path(GUMNET_CHECKPOINT)))[0].running_mean.numpy())
