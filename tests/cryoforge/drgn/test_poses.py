"""Tests of :mod:`cryoforge.drgn.poses`."""

import numpy as np
import pytest
import torch

from cryoforge.conventions import random_rotations
from cryoforge.drgn.config import PoseSearchConfig
from cryoforge.drgn.data import ParticleImages
from cryoforge.drgn.poses import MIRROR, pose_errors
from cryoforge.jobs.trainer import Schedule
from tests.helpers import adk_map, projections


def test_pose_errors_undo_a_global_rotation_and_the_hand():
    truth = random_rotations(60, seed=1)
    q = random_rotations(1, seed=2)[0]
    noise = torch.stack([torch.linalg.matrix_exp(torch.tensor([[0, -a, b], [a, 0, -c], [-b, c, 0.0]]))
                         for a, b, c in torch.randn(60, 3, generator=torch.Generator().manual_seed(3)) * 0.01])
    found = truth @ q @ noise  # a reconstruction in another frame, ~0.5° of error per image
    err = pose_errors(found, truth)
    assert not err["mirrored_hand"] and err["rot_median_deg"] < 1.5 and err["fraction_within_10deg"] == 1.0
    mirrored = pose_errors(MIRROR @ found @ MIRROR, truth)  # the poses of the mirror-image reconstruction
    assert mirrored["mirrored_hand"] and mirrored["rot_median_deg"] == pytest.approx(err["rot_median_deg"], abs=1e-3)
    assert pose_errors(random_rotations(60, seed=9), truth)["rot_median_deg"] > 30  # random poses are not "aligned"
    # the frame maps the reconstruction's Fourier coordinates to the reference's: V_ref(q) = V_est(q @ frame)
    frame = torch.tensor(err["frame"])
    # unit vectors: the images' ~1° pose noise moves them by ≈ 0.02, whatever the seed
    k = torch.nn.functional.normalize(torch.randn(5, 3, generator=torch.Generator().manual_seed(4)), dim=1)
    for i in range(3):
        np.testing.assert_allclose((k @ truth[i] @ frame).numpy(), (k @ found[i]).numpy(), atol=0.05)


def test_pose_table_travels_in_the_checkpoint(tmp_path):
    from cryoforge.drgn.config import DrgnConfig, DrgnTrainConfig
    from cryoforge.drgn.train import DrgnTrainer, train_drgn_job
    from cryoforge.jobs.runner import drive

    D = 16
    rot = random_rotations(32, seed=1)
    data = ParticleImages(projections(adk_map(D), rot), None, None, None, 1.0)  # no poses at all
    cfg, train = DrgnConfig(players=1, pdim=16), DrgnTrainConfig(batch=8, seed=0)
    ps = PoseSearchConfig(pretrain_images=8, every_epochs=10, t_extent=0, n_global=576, rounds=2, keep=2)
    ckpt = tmp_path / "ps.pt"
    drive(train_drgn_job(data, cfg, train, Schedule(steps=6, validate_every=0), checkpoint=ckpt, pose_search=ps))
    resumed = DrgnTrainer(data, cfg, train, pose_search=ps)
    from cryoforge.jobs.trainer import load_training

    load_training(resumed, ckpt)
    assert (resumed.poses.searched >= 0).sum() > 0
    first = DrgnTrainer(data, cfg, train, pose_search=ps)
    for step in range(1, 7):
        first.train_step(step)
    torch.testing.assert_close(resumed.poses.rot, first.poses.rot)  # same seed, same searches
    torch.testing.assert_close(resumed.poses.searched, first.poses.searched)
    with pytest.raises(ValueError, match="pose search"):
        DrgnTrainer(data, cfg, train)  # no poses and no search: say what to do


def test_translation_errors_discount_the_reconstruction_offset():
    truth = random_rotations(40, seed=6)
    t_true = torch.rand(40, 2).numpy() * 2 - 1
    offset = np.array([0.7, -0.4, 1.1])
    t_found = t_true + (truth.double().numpy() @ offset)[:, :2] + 0.05  # a shifted map, and 0.05 px errors
    err = pose_errors(truth, truth, t_found, t_true)
    np.testing.assert_allclose(err["volume_offset_px"], offset, atol=0.1)
    assert err["trans_median_px"] < 0.1 < err["trans_raw_median_px"]
