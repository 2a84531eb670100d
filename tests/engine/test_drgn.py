"""cryoDRGN interoperability: decoders equal cryoDRGN's eval_vol, Hartley identities, safe file readers."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cryoforge.drgn import (
    CoordinateDecoder,
    DrgnManifold,
    htn_center,
    ihtn_center,
    lattice_coords,
    load_ctf,
    load_poses,
    load_z,
)
from cryoforge.io.pickles import UnsafePickleError
from cryoforge.manifold import ManifoldError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "cryodrgn"
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "cryodrgn_eval_vol_het.json"
needs_shared = pytest.mark.skipif(not (SHARED / "het_weights.pkl").is_file(),
                                  reason="../shared/cryodrgn (cryoDRGN's test files) is not beside the checkout")


def _run(tmp_path, domain="hartley", pe="gaussian", D=17, zdim=2, seed=0):
    """A cryoDRGN-format run with random weights (an encoder in the weights is ignored)."""
    from cryoforge.drgn.run import save_run

    torch.manual_seed(seed)
    dec = CoordinateDecoder(D, zdim, 2, 16, domain, pe, 6, "relu", 0.5)
    save_run(tmp_path, dec, (0.2, 3.0), epoch=3, extra_state={"encoder.main.0.weight": torch.zeros(4, 4)})
    return dec


def test_hartley_round_trip():
    v = torch.randn(2, 12, 12, 12)
    np.testing.assert_allclose(ihtn_center(htn_center(v)), v, atol=1e-5)


@pytest.mark.parametrize("domain, pe", [("hartley", "gaussian"), ("hartley", "geom_lowf"), ("fourier", "geom_lowf"),
                                        ("fourier", "gaussian")])
def test_fourier_slice_of_decoded_volume_equals_decoder_on_rotated_lattice(tmp_path, domain, pe):
    """Projection along y of the decoded volume ↔ the decoder on the central plane turned by 90° about x
    (k = (x, 0, z)): the 2-D Hartley transform of the projection equals those decoder values (Fourier slice)."""
    _run(tmp_path, domain, pe)
    m = DrgnManifold(tmp_path)
    z = np.array([0.4, -1.0], np.float32)
    vol = m.decode(z)[0]
    proj = vol.sum(1)  # (Z, X): projection along y
    f = torch.fft.fftshift(torch.fft.fft2(torch.fft.fftshift(proj)))
    ht2 = (f.real - f.imag).numpy()
    D = m.D
    plane = lattice_coords(D)[:, D // 2]  # (z, x) indices, k = (x, 0, z): the rotated central plane
    k = plane.reshape(-1, 3)
    zt = torch.tensor(z)[None]
    with torch.no_grad():
        out = m.decoder(k, zt)[0]
        if domain == "fourier":  # Hermitian completion as the decoder defines it: H(k) = a−b, H(−k) = a+b
            flip = (k[:, 2] > 0) | ((k[:, 2] == 0) & (k[:, 0] > 0))
            mirrored = m.decoder(-k, zt)[0]
            h = torch.where(flip, mirrored[:, 0] + mirrored[:, 1], out[:, 0] - out[:, 1])
            h = torch.where(k.pow(2).sum(-1) <= 0.25, h, torch.zeros_like(h))
        else:
            h = out[:, 0]
    expected = (h.view(D, D)[:-1, :-1] * m.norm[1] + m.norm[0]).numpy()  # the k_y = 0 plane of the lattice
    np.testing.assert_allclose(ht2, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize("domain", ["hartley", "fourier"])
def test_batched_decode_equals_slice_by_slice(tmp_path, domain):
    _run(tmp_path, domain, "geom_full" if domain == "fourier" else "linear_lowf", D=13)
    m = DrgnManifold(tmp_path)
    z = m.sample(3, 0)
    np.testing.assert_allclose(m.decode(z), m.decode_slicewise(z), atol=1e-5)


@needs_shared
def test_real_cryodrgn_model_matches_cryodrgn_eval_vol():
    """Voxels of cryoDRGN 4.3.1's own eval_vol output (tests/data, command inside) for three z: same values,
    hence the same orientation and handedness."""
    gold = json.loads(GOLDEN.read_text())
    m = DrgnManifold(SHARED / "het_weights.pkl")
    assert m.latent_dim == 8 and m.box == 64 and m.files["config"].endswith("het_config.yaml")
    vols = m.decode(np.array(gold["z"], np.float32)).numpy()
    assert vols.shape == (3, 64, 64, 64)
    idx = tuple(np.array(gold["voxels_zyx"]).T)
    for v, values, total in zip(vols, gold["values"], gold["sum"], strict=True):
        np.testing.assert_allclose(v[idx], values, atol=2e-5 * np.abs(values).max())
        assert v.sum() == pytest.approx(total, rel=1e-4, abs=1e-2)
    mirrored = vols[0][::-1][idx]
    assert np.abs(mirrored - gold["values"][0]).max() > 0.1  # the other hand does not match


@needs_shared
def test_cryodrgn_pose_and_ctf_pickles():
    rot, trans = load_poses(SHARED / "hand_rot_trans.pkl")
    assert rot.shape == (100, 3, 3) and trans.shape == (100, 2)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-4)
    ctf = load_ctf(SHARED / "test_ctf.pkl")
    assert len(ctf["dfu"]) == 1000 and (ctf["volt"] > 0).all() and (ctf["Apix"] > 0).all()


def test_z_pickle_and_refusal_of_code(tmp_path):
    rng = np.random.default_rng(0)
    mu, logvar = rng.random((10, 2), np.float32), rng.random((10, 2), np.float32)
    with open(tmp_path / "z.3.pkl", "wb") as fh:
        pickle.dump(mu, fh)
        pickle.dump(logvar, fh)
    got_mu, got_lv = load_z(tmp_path / "z.3.pkl")
    np.testing.assert_array_equal(got_mu, mu)
    np.testing.assert_array_equal(got_lv, logvar)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pkl", "wb") as fh:
        pickle.dump(Evil(), fh)
    with pytest.raises(UnsafePickleError, match="refusing to load builtins.print"):
        load_z(tmp_path / "evil.pkl")


def test_run_folder_with_z_gives_data_latents(tmp_path):
    _run(tmp_path)
    z = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    with open(tmp_path / "z.3.pkl", "wb") as fh:
        pickle.dump(z, fh)
        pickle.dump(z * 0, fh)
    m = DrgnManifold(tmp_path)
    assert m.epoch == 3 and m.data_latents.shape == (40, 2) and m.data_labels[5] == "image 5"


def test_bad_runs(tmp_path):
    import yaml

    _run(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["model_args"]["pdim"] = 32
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ManifoldError, match="weights do not match the config"):
        DrgnManifold(tmp_path)
    _run(tmp_path)
    with pytest.raises(ManifoldError, match="2 coordinates"):
        DrgnManifold(tmp_path).decode(np.zeros(5))
    with open(tmp_path / "z.3.pkl", "wb") as fh:
        pickle.dump(np.zeros((4, 3), np.float32), fh)
    with pytest.raises(ManifoldError, match="zdim is 2"):
        DrgnManifold(tmp_path)
