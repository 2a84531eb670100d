"""Tests of :mod:`cryoforge.io.star`."""


import numpy as np
import pytest

from cryoforge.cli import main
from cryoforge.conventions import euler_zyz_to_matrix, random_rotations
from cryoforge.ctf import CTFParams
from cryoforge.io import (
    ParticleMetadata,
    read_particles_star,
    write_particles_star,
)
from cryoforge.io.star import StarError, StarWarning
from tests.helpers import R30, R31, read_quiet

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


def test_star_round_trip(tmp_path):
    n = 7
    rots = random_rotations(n, seed=3).numpy()
    shifts = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32) * 3
    ctf = CTFParams(defocus_u=np.linspace(9000, 15000, n), defocus_v=np.linspace(8800, 14800, n),
                    defocus_angle=np.full(n, 33.0), voltage=np.full(n, 300.0), cs=np.full(n, 2.7),
                    amplitude_contrast=np.full(n, 0.07), bfactor=np.zeros(n), phase_shift=np.zeros(n))
    names = [f"{i + 1:06d}@stack.mrcs" for i in range(n)]
    meta = ParticleMetadata(names, rots, shifts, ctf, pixel_size=1.23)
    write_particles_star(tmp_path / "p.star", meta)
    back = read_particles_star(tmp_path / "p.star")
    assert back.image_names == names and back.pixel_size == pytest.approx(1.23)
    np.testing.assert_allclose(back.rotations, rots, atol=1e-5)
    np.testing.assert_allclose(back.shifts, shifts, atol=1e-5)
    for name in CTFParams.field_names():
        np.testing.assert_allclose(getattr(back.ctf, name), getattr(ctf, name), rtol=1e-6)
    text = (tmp_path / "p.star").read_text()
    assert "data_optics" in text and "_rlnAngleTilt" in text and "_rlnOriginXAngst" in text


def test_star_relion30_origins_in_pixels(tmp_path):
    (tmp_path / "r30.star").write_text(
        "data_\nloop_\n_rlnImageName\n_rlnAngleRot\n_rlnAngleTilt\n_rlnAnglePsi\n_rlnOriginX\n_rlnOriginY\n"
        "1@a.mrcs 10 20 30 2 -1\n"
    )
    with pytest.raises(ValueError, match="pixel size"):
        read_particles_star(tmp_path / "r30.star")
    m = read_particles_star(tmp_path / "r30.star", pixel_size=1.5)
    np.testing.assert_allclose(m.shifts, [[3.0, -1.5]])
    np.testing.assert_allclose(m.rotations[0], euler_zyz_to_matrix(10.0, 20.0, 30.0).numpy(), atol=1e-6)


def test_reads_cryodrgn_relion31_star(shared_dir):
    m = read_particles_star(shared_dir / "cryodrgn" / "relion31.star")
    t = m.table
    assert len(m) == len(t) > 0
    assert m.pixel_size == pytest.approx(float(t["rlnImagePixelSize"].iloc[0]))
    i = 3
    expected = euler_zyz_to_matrix(*(float(t[c].iloc[i]) for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")))
    np.testing.assert_allclose(m.rotations[i], expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(m.ctf.voltage, 300.0)  # merged from the optics table
    np.testing.assert_allclose(m.ctf.defocus_u[i], t["rlnDefocusU"].iloc[i], rtol=1e-6)


# 2. rlnDetectorPixelSize is µm at the detector
def test_detector_pixel_size_over_magnification():
    meta = read_quiet(R30)
    np.testing.assert_allclose(meta.particle_pixel_sizes(), 5.0 * 1e4 / 38168, rtol=1e-9)
    assert meta.pixel_size == pytest.approx(1.31, abs=0.001)
    t = meta.table
    np.testing.assert_allclose(meta.shifts_px(), t[["rlnOriginX", "rlnOriginY"]].to_numpy(), atol=1e-4)
    over = read_quiet(R30, pixel_size=1.5)
    np.testing.assert_allclose(over.particle_pixel_sizes(), 1.5)


def test_no_pixel_size_is_refused(tmp_path):
    (tmp_path / "p.star").write_text("data_\nloop_\n_rlnImageName\n_rlnDefocusU\n_rlnVoltage\n_rlnSphericalAberration\n"
                                     "_rlnDetectorPixelSize\n1@s.mrcs 15000 300 2.7 5.0\n")
    meta = read_particles_star(tmp_path / "p.star")
    assert meta.pixel_sizes is None and any("without rlnMagnification" in n for n in meta.notes)
    with pytest.raises(StarError, match="no pixel size"):
        meta.particle_pixel_sizes()
    assert main(["metadata", str(tmp_path / "p.star")]) == 2


# 3. rlnCtfBfactor / rlnCtfScalefactor
def test_bfactor_ignored_by_default_with_one_warning():
    with pytest.warns(StarWarning) as record:
        meta = read_particles_star(R30)
    assert len([w for w in record if "rlnCtfBfactor" in str(w.message)]) == 1
    assert np.all(meta.ctf.bfactor == 0) and np.all(meta.ctf.scale == 1)
    used = read_particles_star(R30, use_ctf_envelope=True)
    assert used.ctf.bfactor.min() == pytest.approx(-507) and used.ctf.scale.min() < 1


# 4. every optics-group field per particle
def test_six_optics_groups_per_particle():
    meta = read_quiet(R31)
    t = meta.table
    groups = {1: (1.24, 2.7, 300), 2: (1.25, 2.7, 300), 3: (1.24, 2.6, 300), 4: (1.25, 2.6, 300),
              5: (1.24, 2.7, 200), 6: (1.25, 2.6, 200)}
    for i, g in enumerate(t["rlnOpticsGroup"]):
        px, cs, kv = groups[int(g)]
        assert meta.pixel_sizes[i] == pytest.approx(px) and meta.ctf.cs[i] == pytest.approx(cs)
        assert meta.ctf.voltage[i] == pytest.approx(kv) and meta.image_sizes[i] == 16
        np.testing.assert_allclose(meta.shifts_px()[i], t[["rlnOriginXAngst", "rlnOriginYAngst"]].iloc[i] / px,
                                   rtol=1e-5)


def test_unknown_optics_group_is_an_error(tmp_path):
    text = R31.read_text().replace("000003@relion31_optics6.mrcs 5 ", "000003@relion31_optics6.mrcs 7 ")
    (tmp_path / "bad.star").write_text(text)
    with pytest.raises(StarError, match=r"optics group\(s\) \[7\], which the optics table does not define"):
        read_particles_star(tmp_path / "bad.star")
