"""Tests of :mod:`cryoforge.drgn.posesearch`."""

import numpy as np
import torch

from cryoforge.conventions import random_rotations
from cryoforge.drgn.config import PoseSearchConfig
from cryoforge.drgn.data import ParticleImages, translate_ht
from cryoforge.drgn.model import lattice_coords
from cryoforge.drgn.posesearch import HartleySlices
from tests.helpers import adk_map, projections


def test_training_with_pose_search_recovers_the_poses_of_noise_free_images():
    """Ab initio: random-pose pretraining, then branch and bound in the loop; the found poses agree with the true
    ones up to one global rotation (and hand), and the decoded map, put in the true frame, matches the truth."""
    from cryoforge.drgn.config import DrgnConfig, DrgnTrainConfig
    from cryoforge.drgn.train import DrgnTrainer

    torch.manual_seed(0)
    D, n = 24, 240
    vol = adk_map(D)
    rot = random_rotations(n, seed=5)
    data = ParticleImages(projections(vol, rot), rot.numpy(), None, None, 1.0)
    cfg, train = DrgnConfig(players=3, pdim=64), DrgnTrainConfig(batch=16, lr=1e-3, seed=0)
    ps = PoseSearchConfig(pretrain_images=480, every_epochs=1, l_start=6, ramp_epochs=12, t_extent=0, keep=4,
                          rounds=4, n_global=2304)
    tr = DrgnTrainer(data, cfg, train, reference=vol, pose_search=ps)
    for step in range(1, 501):  # median error 58° / 18° / 8.5° / 4.2° / 1.6° / 1.3° at steps 100 … 600; FSC 0.905 at 500
        tr.train_step(step)
    metrics, _ = tr.validate(500)
    assert metrics["searched_fraction"] == 1.0
    assert metrics["rot_median_deg"] < 5.0, metrics
    assert metrics["fsc_mean"] > 0.8, metrics


def test_heterogeneous_pose_search_scores_each_image_at_its_own_latent():
    from cryoforge.drgn.config import DrgnConfig, DrgnTrainConfig
    from cryoforge.drgn.train import DrgnTrainer

    D = 16
    rot = random_rotations(16, seed=2)
    data = ParticleImages(projections(adk_map(D), rot), rot.numpy(), None, None, 1.0)
    cfg, train = DrgnConfig(zdim=2, players=1, pdim=16, qlayers=1, qdim=16), DrgnTrainConfig(batch=8, seed=0)
    ps = PoseSearchConfig(pretrain_images=8, t_extent=0, n_global=576, rounds=2, keep=2)
    tr = DrgnTrainer(data, cfg, train, pose_search=ps)
    mu = tr.latent(tr._targets(np.arange(3)), False)[2]
    slices = HartleySlices.from_decoder(tr.dec, mu, D, 6)
    assert slices.h.shape[0] == 3  # one lattice per latent
    k = lattice_coords(D + 1)[D // 2].reshape(1, -1, 3)
    per_image = slices(k)[:, 0]
    assert not torch.allclose(per_image[0], per_image[1])  # different latents, different slices
    for step in range(1, 4):
        tr.train_step(step)
    metrics, _ = tr.validate(3)
    assert 0 < metrics["searched_fraction"] <= 1 and "rot_median_deg" in metrics


def test_branch_and_bound_recovers_poses_of_noise_free_projections():
    """Slices of a known asymmetric volume at random poses, some shifted: BNB over SO(3) × shifts with frequency
    marching finds the rotations to < 5° and the re-centring shifts exactly."""
    from cryoforge.conventions import random_rotations, rotation_angle_deg
    from cryoforge.drgn.model import lattice_coords
    from cryoforge.drgn.posesearch import HartleySlices, pose_search
    from cryoforge.manifold.analytic import AnalyticManifold

    D = 32
    model = HartleySlices.from_volume(AnalyticManifold(3, box=D).decode_one(np.array([0.6, 0.8, 1.2], np.float32)))
    coords = lattice_coords(D + 1)[D // 2].reshape(-1, 3)
    truth = random_rotations(6, seed=3)
    moved = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, -1.0], [1.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])
    images = translate_ht(model(coords @ truth)[0], moved, coords)  # content moved by `moved` pixels
    shifts = [(x, y) for x in (-1.0, 0.0, 1.0) for y in (-1.0, 0.0, 1.0)]
    rots, found, err = pose_search(model, images, coords, D, n_global=4608, keep=8, rounds=5, k_start=6, k_end=16,
                                   shifts=shifts)
    assert (rotation_angle_deg(rots, truth) < 5.0).all()
    np.testing.assert_allclose(found, -moved)  # the shift that re-centres each image
