"""cryoDRGN training with known poses: Hartley shifts, homogeneous training on cryoDRGN's hand images improves the
FSC against the images' own backprojection, a VAE trains and opens in the explorer, resume, CLI, bad input."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cryoforge.drgn.data import ParticleImages, backproject, ht2_center, symmetrize, translate_ht

SHARED = Path(__file__).resolve().parents[3] / "shared" / "cryodrgn"
needs_shared = pytest.mark.skipif(not (SHARED / "hand.mrcs").is_file(),
                                  reason="../shared/cryodrgn (cryoDRGN's test files) is not beside the checkout")


def _hand():
    from cryoforge.drgn import load_poses
    from cryoforge.io.mrc import read_mrc

    images, _ = read_mrc(SHARED / "hand.mrcs", mmap=True)
    rot, _ = load_poses(SHARED / "hand_rot.pkl")
    return ParticleImages(images, rot)


def test_hartley_shift_equals_rolling_the_image():
    img = torch.zeros(16, 16)
    img[5:9, 6:8] = torch.rand(4, 2) + 1
    data = ParticleImages(img[None].numpy(), window=False, norm=(0.0, 1.0))
    h = symmetrize(ht2_center(img[None])).flatten(1)
    shifted = translate_ht(h, torch.tensor([[3.0, -2.0]]), data.coords)  # +3 px in x, −2 px in y
    want = symmetrize(ht2_center(torch.roll(img, (-2, 3), (0, 1))[None])).flatten(1)
    inner = data.coords[:, :2].abs().max(1).values < 0.5  # the Nyquist wrap is not a shift's business
    np.testing.assert_allclose(shifted[:, inner], want[:, inner], atol=1e-4)


@needs_shared
def test_homogeneous_training_on_hand_images_improves_fsc():
    from cryoforge.drgn.train import DrgnTrainConfig, DrgnTrainer

    data = _hand()
    ref = backproject(data)  # the images' own direct reconstruction with their poses (independent of the decoder)
    torch.manual_seed(0)
    tr = DrgnTrainer(data, DrgnTrainConfig(players=2, pdim=64, pe_dim=16, lr=1e-3), reference=ref)
    before, _ = tr.validate(0)
    for step in range(1, 151):
        tr.train_step(step)
    after, previews = tr.validate(150)
    assert before["fsc_mean"] < 0.1 and after["fsc_mean"] > before["fsc_mean"] + 0.2
    assert after["fsc05_px"] < before["fsc05_px"] and after["mse_fixed_images"] < 0.3 * before["mse_fixed_images"]
    assert previews[1].array.shape == (64, 64, 64)


@needs_shared
def test_vae_trains_resumes_and_opens_as_a_manifold(tmp_path):
    from cryoforge.drgn.train import DrgnTrainConfig, train_drgn_job
    from cryoforge.jobs import Cancelled, drive
    from cryoforge.manifold import open_manifold

    data = _hand()
    cfg = DrgnTrainConfig(zdim=2, players=1, pdim=32, qlayers=1, qdim=32, pe_dim=8, lr=1e-3)
    ckpt = tmp_path / "vae.pt"
    cancel = __import__("threading").Event()
    seen = []

    def on_event(ev):
        seen.append(ev)
        if len([e for e in seen if type(e).__name__ == "Progress"]) == 10:
            cancel.set()

    with pytest.raises(Cancelled):
        drive(train_drgn_job(data, cfg, 40, ckpt, validate_every=20, metrics_every=5), on_event, cancel)
    assert ckpt.is_file()  # cancel kept a checkpoint
    res = drive(train_drgn_job(data, cfg, 40, ckpt, validate_every=20, metrics_every=5))
    losses = [h["loss"] for h in res["history"] if "loss" in h]
    assert res["step"] == 40 and losses[-1] < losses[0]
    m = open_manifold(ckpt)
    assert m.latent_dim == 2 and m.decode(np.zeros((3, 2))).shape == (3, 64, 64, 64)


def test_bad_training_inputs():
    from cryoforge.drgn.train import DrgnTrainer
    from cryoforge.manifold import ManifoldError

    with pytest.raises(ManifoldError, match="square images"):
        ParticleImages(np.zeros((3, 8, 10), np.float32))
    with pytest.raises(ManifoldError, match="rotations"):
        ParticleImages(np.zeros((3, 8, 8), np.float32), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="needs a rotation per image"):
        DrgnTrainer(ParticleImages(np.random.default_rng(0).random((3, 8, 8), np.float32)))


@needs_shared
def test_drgn_train_cli_needs_a_ctf_or_no_ctf(tmp_path, capsys):
    from cryoforge.cli import main

    args = ["drgn", "train", str(SHARED / "hand.mrcs"), "--poses", str(SHARED / "hand_rot.pkl"), "--checkpoint",
            str(tmp_path / "h.pt"), "--steps", "4", "--dim", "16", "--layers", "1", "--validate-every", "4"]
    assert main(args) == 2 and "--no-ctf" in capsys.readouterr().err
    assert main(args + ["--no-ctf"]) == 0 and (tmp_path / "h.pt").is_file()


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


# cryoDRGN 4.3.1's utils.R_from_relion for RELION (rot, tilt, psi) = (10, 20, 30), (−100, 75, 160), (45, 130, −60)
DRGN_FROM_RELION = {
    (10.0, 20.0, 30.0): [[0.71461, 0.633718, -0.296198], [-0.613092, 0.771281, 0.17101],
                         [0.336824, 0.059391, 0.939693]],
    (-100.0, 75.0, 160.0): [[0.379057, 0.180124, 0.907673], [-0.910045, 0.250352, 0.330366],
                            [-0.167731, -0.951251, 0.258819]],
    (45.0, 130.0, -60.0): [[0.385113, -0.839632, -0.383022], [-0.747179, -0.040072, -0.663414],
                           [0.541675, 0.541675, -0.642788]],
}


def test_relion_angles_give_cryodrgn_rotations():
    from cryoforge.conventions import euler_zyz_to_matrix

    for angles, want in DRGN_FROM_RELION.items():
        np.testing.assert_allclose(euler_zyz_to_matrix(*angles).numpy(), want, atol=1e-5)


@needs_shared
def test_poses_and_ctf_from_star_and_cryosparc():
    from scipy.spatial.transform import Rotation

    from cryoforge.io.particles import read_particle_metadata

    star = read_particle_metadata(SHARED / "relion31.star")
    assert star.rotations.shape == (5, 3, 3) and star.pixel_size == pytest.approx(2.806)
    assert star.ctf.defocus_u[0] == pytest.approx(13108.082) and star.shifts_px().shape == (5, 2)
    np.testing.assert_allclose(star.shifts_px()[0], np.array([0.019324, -0.64686]) / 2.806, atol=1e-5)
    cs = read_particle_metadata(SHARED / "cryosparc_P12_J24_001_particles.cs")
    raw = np.load(SHARED / "cryosparc_P12_J24_001_particles.cs")
    assert len(cs.rotations) == len(raw) and cs.ctf.voltage[0] == pytest.approx(raw["ctf/accel_kv"][0])
    np.testing.assert_allclose(cs.rotations[3], Rotation.from_rotvec(raw["alignments3D/pose"][3]).as_matrix().T,
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(cs.rotations), 1.0, atol=1e-4)


@needs_shared
def test_train_from_a_relion_star_with_ctf(tmp_path):
    from cryoforge.cli import main
    from cryoforge.io.checkpoint import load_checkpoint

    ckpt = tmp_path / "r.pt"
    assert main(["drgn", "train", str(SHARED / "relion31.mrcs"), "--poses", str(SHARED / "relion31.star"),
                 "--checkpoint", str(ckpt), "--steps", "3", "--dim", "16", "--layers", "1", "--batch", "4",
                 "--validate-every", "0"]) == 0  # 256² images: a validation volume would be 256³
    cfg = load_checkpoint(ckpt)["config"]
    assert cfg["pixel_size"] == pytest.approx(2.806) and cfg["n_images"] == 5


def test_lowpass_preview_is_the_centre_of_the_full_volumes_spectrum():
    from cryoforge.drgn.model import CoordinateDecoder, decode_lowpass, decode_volumes

    torch.manual_seed(0)
    dec = CoordinateDecoder(33, 0, 2, 16, domain="hartley")  # 32³ volumes
    with torch.no_grad():
        full = decode_volumes(dec, None, (0.0, 1.0))[0]
        low = decode_lowpass(dec, None, (0.0, 1.0), 16)[0]
    assert low.shape == (16, 16, 16)
    f = torch.fft.fftshift(torch.fft.fftn(full))
    crop = f[8:24, 8:24, 8:24]
    want = torch.fft.ifftn(torch.fft.ifftshift(crop)).real * (16 / 32) ** 3
    # equal up to the crop's Nyquist planes (their Hartley partners lie outside the crop); a random decoder's flat
    # spectrum gives those planes an unusually large share (measured: r = 0.987, max |Δ| 3.5 % of the peak)
    assert np.corrcoef(low.numpy().ravel(), want.numpy().ravel())[0, 1] > 0.98
    assert float((low - want).abs().max()) < 0.05 * float(want.abs().max())
