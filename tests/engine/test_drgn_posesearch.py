"""cryoDRGN training with pose search in the loop (abinit_homo / abinit_het): pose errors up to the global rotation
and hand, ab initio recovery of the poses of noise-free images, the pose table in the checkpoint, the CLI."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cryoforge.conventions import random_rotations
from cryoforge.drgn.data import ParticleImages, ht2_center
from cryoforge.drgn.model import lattice_coords
from cryoforge.drgn.poses import MIRROR, PoseSearchConfig, pose_errors
from cryoforge.drgn.posesearch import HartleySlices

ROOT = Path(__file__).resolve().parents[2]


def _adk(D: int) -> np.ndarray:
    """The shipped closed-AdK map, Fourier-cropped to D³ (an asymmetric test object)."""
    from cryoforge.fourier import downsample
    from cryoforge.io.mrc import read_mrc

    states = np.asarray(read_mrc(ROOT / "sample_data" / "adk_continuous" / "states.mrc")[0], np.float32)
    return downsample(torch.as_tensor(states[0]), D).numpy()


def _images(vol: np.ndarray, rot: torch.Tensor) -> np.ndarray:
    """Noise-free particle images: the central slices at ``k @ R``, back to real space."""
    D = vol.shape[0]
    coords = lattice_coords(D + 1)[D // 2].reshape(-1, 3)
    h = HartleySlices.from_volume(vol)(coords @ rot)[0].view(len(rot), D + 1, D + 1)[:, :-1, :-1]
    return (ht2_center(h) / D ** 2).numpy().astype(np.float32)  # the 2-D Hartley transform is its own inverse / N


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
    k = torch.randn(5, 3)
    for i in range(3):
        np.testing.assert_allclose((k @ truth[i] @ frame).numpy(), (k @ found[i]).numpy(), atol=0.05)


def test_training_with_pose_search_recovers_the_poses_of_noise_free_images():
    """Ab initio: random-pose pretraining, then branch and bound in the loop; the found poses agree with the true
    ones up to one global rotation (and hand), and the decoded map, put in the true frame, matches the truth."""
    from cryoforge.drgn.train import DrgnTrainConfig, DrgnTrainer

    torch.manual_seed(0)
    D, n = 24, 240
    vol = _adk(D)
    rot = random_rotations(n, seed=5)
    data = ParticleImages(_images(vol, rot), rot.numpy(), None, None, 1.0)
    cfg = DrgnTrainConfig(players=3, pdim=64, batch=16, lr=1e-3, seed=0)
    ps = PoseSearchConfig(pretrain_images=480, every_epochs=1, l_start=6, ramp_epochs=12, t_extent=0, keep=4,
                          rounds=4, n_global=2304)
    tr = DrgnTrainer(data, cfg, reference=vol, pose_search=ps)
    for step in range(1, 601):
        tr.train_step(step)
    metrics, _ = tr.validate(600)
    assert metrics["searched_fraction"] == 1.0
    assert metrics["rot_median_deg"] < 5.0, metrics
    assert metrics["fsc_mean"] > 0.8, metrics


def test_pose_table_travels_in_the_checkpoint(tmp_path):
    from cryoforge.drgn.train import DrgnTrainConfig, DrgnTrainer, train_drgn_job
    from cryoforge.jobs.runner import drive

    D = 16
    rot = random_rotations(32, seed=1)
    data = ParticleImages(_images(_adk(D), rot), None, None, None, 1.0)  # no poses at all
    cfg = DrgnTrainConfig(players=1, pdim=16, batch=8, seed=0)
    ps = PoseSearchConfig(pretrain_images=8, every_epochs=10, t_extent=0, n_global=576, rounds=2, keep=2)
    ckpt = tmp_path / "ps.pt"
    drive(train_drgn_job(data, cfg, 6, ckpt, pose_search=ps, validate_every=0))
    resumed = DrgnTrainer(data, cfg, pose_search=ps)
    from cryoforge.jobs.trainer import load_training

    load_training(resumed, ckpt)
    assert (resumed.poses.searched >= 0).sum() > 0
    first = DrgnTrainer(data, cfg, pose_search=ps)
    for step in range(1, 7):
        first.train_step(step)
    torch.testing.assert_close(resumed.poses.rot, first.poses.rot)  # same seed, same searches
    torch.testing.assert_close(resumed.poses.searched, first.poses.searched)
    with pytest.raises(ValueError, match="pose search"):
        DrgnTrainer(data, cfg)  # no poses and no search: say what to do


def test_cli_trains_with_pose_search_and_asks_for_poses_otherwise(tmp_path):
    from cryoforge.cli import main
    from cryoforge.io.checkpoint import load_checkpoint
    from cryoforge.io.mrc import write_mrc

    stack = tmp_path / "p.mrcs"
    write_mrc(stack, _images(_adk(16), random_rotations(24, seed=4)), voxel_size=6.0)
    args = ["drgn", "train", str(stack), "--checkpoint", str(tmp_path / "c.pt"), "--steps", "4", "--dim", "16",
            "--layers", "1", "--batch", "8", "--no-ctf", "--validate-every", "0"]
    assert main(args) != 0  # neither poses nor --pose-search
    assert main(args + ["--pose-search", "--pretrain", "8", "--t-extent", "0"]) == 0
    payload = load_checkpoint(tmp_path / "c.pt")
    assert payload["config"]["pose_search"]["pretrain_images"] == 8
    assert (payload["state_dicts"]["poses"]["searched"] >= 0).any()


def test_translation_errors_discount_the_reconstruction_offset():
    truth = random_rotations(40, seed=6)
    t_true = torch.rand(40, 2).numpy() * 2 - 1
    offset = np.array([0.7, -0.4, 1.1])
    t_found = t_true + (truth.double().numpy() @ offset)[:, :2] + 0.05  # a shifted map, and 0.05 px errors
    err = pose_errors(truth, truth, t_found, t_true)
    np.testing.assert_allclose(err["volume_offset_px"], offset, atol=0.1)
    assert err["trans_median_px"] < 0.1 < err["trans_raw_median_px"]


def test_heterogeneous_pose_search_scores_each_image_at_its_own_latent():
    from cryoforge.drgn.train import DrgnTrainConfig, DrgnTrainer

    D = 16
    rot = random_rotations(16, seed=2)
    data = ParticleImages(_images(_adk(D), rot), rot.numpy(), None, None, 1.0)
    cfg = DrgnTrainConfig(zdim=2, players=1, pdim=16, qlayers=1, qdim=16, batch=8, seed=0)
    ps = PoseSearchConfig(pretrain_images=8, t_extent=0, n_global=576, rounds=2, keep=2)
    tr = DrgnTrainer(data, cfg, pose_search=ps)
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
