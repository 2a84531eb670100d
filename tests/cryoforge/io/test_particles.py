"""Tests of :mod:`cryoforge.io.particles`."""

import pickle

import numpy as np
import pytest

from cryoforge.cli import main
from cryoforge.io.particles import ctf_nonfinite, match_stack, read_particle_metadata, with_ctf
from cryoforge.io.star import StarError, StarWarning
from tests.helpers import CRYODRGN, CS, DRGN_PARSED, METADATA, R30, R31, needs_hand_images, read_quiet


@needs_hand_images
def test_poses_and_ctf_from_star_and_cryosparc():
    from scipy.spatial.transform import Rotation

    from cryoforge.io.particles import read_particle_metadata

    star = read_particle_metadata(CRYODRGN / "relion31.star")
    assert star.rotations.shape == (5, 3, 3) and star.pixel_size == pytest.approx(2.806)
    assert star.ctf.defocus_u[0] == pytest.approx(13108.082) and star.shifts_px().shape == (5, 2)
    np.testing.assert_allclose(star.shifts_px()[0], np.array([0.019324, -0.64686]) / 2.806, atol=1e-5)
    cs = read_particle_metadata(CRYODRGN / "cryosparc_P12_J24_001_particles.cs")
    raw = np.load(CRYODRGN / "cryosparc_P12_J24_001_particles.cs")
    assert len(cs.rotations) == len(raw) and cs.ctf.voltage[0] == pytest.approx(raw["ctf/accel_kv"][0])
    np.testing.assert_allclose(cs.rotations[3], Rotation.from_rotvec(raw["alignments3D/pose"][3]).as_matrix().T,
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(cs.rotations), 1.0, atol=1e-4)


def test_sta_star_with_u_below_v_has_no_nonfinite_ctf():
    meta = read_quiet(R30)
    assert int(np.sum(meta.ctf.defocus_u < meta.ctf.defocus_v)) == 4
    assert ctf_nonfinite(meta, 16) == 0
    assert any("U < " in n or "rlnDefocusU < rlnDefocusV" in n for n in meta.notes)


def test_stack_header_that_disagrees_warns(tmp_path):
    meta = read_quiet(R31)
    with pytest.warns(StarWarning, match="differs from the metadata's pixel size"):
        match_stack(meta, METADATA / "relion31_optics6.mrcs", 18, header_pixel_size=2.0)


def test_image_name_past_the_stack_is_an_error(tmp_path, capsys):
    text = R31.read_text().replace("000018@relion31_optics6.mrcs", "000019@relion31_optics6.mrcs")
    (tmp_path / "past.star").write_text(text)
    (tmp_path / "relion31_optics6.mrcs").write_bytes((METADATA / "relion31_optics6.mrcs").read_bytes())
    with pytest.raises(StarError, match="points to image 19 of relion31_optics6.mrcs, which holds 18 images"):
        match_stack(read_quiet(tmp_path / "past.star"), tmp_path / "relion31_optics6.mrcs", 18)
    assert main(["metadata", str(tmp_path / "past.star")]) == 2
    assert "holds 18 images" in capsys.readouterr().err


def test_rows_in_another_order_follow_the_stack():
    meta = read_quiet(R31)
    shuffled = meta.take(np.arange(18)[::-1])
    back = match_stack(shuffled, METADATA / "relion31_optics6.mrcs", 18)
    np.testing.assert_allclose(back.rotations, meta.rotations)
    assert back.image_names == meta.image_names


# 5. cryoSPARC CTF
def test_cryosparc_ctf_and_pixel_size():
    meta = read_particle_metadata(CS)
    raw = np.load(CS)
    np.testing.assert_allclose(meta.ctf.defocus_angle, np.degrees(raw["ctf/df_angle_rad"]), rtol=1e-5)
    np.testing.assert_allclose(meta.ctf.phase_shift, np.degrees(raw["ctf/phase_shift_rad"]), rtol=1e-5)
    np.testing.assert_allclose(meta.particle_pixel_sizes(), 1.06, rtol=1e-6)
    np.testing.assert_allclose(meta.shifts_px(), raw["alignments3D/shift"], rtol=1e-5)
    assert ctf_nonfinite(meta, 16) == 0  # df1 < df2 rows included


@pytest.mark.parametrize("name", ["relion30_sta.star", "relion31_optics6.star", "cryosparc_small.cs"])
def test_fields_match_cryodrgn(name):
    rec = DRGN_PARSED["files"][name]
    meta = read_quiet(METADATA / name, pixel_size=1.31 if name.startswith("relion30") else None)
    ctf = np.asarray(rec["ctf"])  # D, Apix, dfu, dfv, dfang, kV, Cs, w, phase
    np.testing.assert_allclose(meta.particle_pixel_sizes(), ctf[:, 1], rtol=1e-6)
    c = meta.ctf
    for col, ours in zip(range(2, 8), (c.defocus_u, c.defocus_v, c.defocus_angle, c.voltage, c.cs,
                                       c.amplitude_contrast), strict=True):
        np.testing.assert_allclose(ours, ctf[:, col], rtol=1e-5, atol=1e-3)
    phase = ctf[:, 8]
    if name.startswith("relion30"):  # the file has no rlnPhaseShift: cryoDRGN writes NaN, cryoforge 0
        assert np.isnan(phase).all() and np.all(c.phase_shift == 0)
    else:
        np.testing.assert_allclose(c.phase_shift, phase, atol=1e-3)
    np.testing.assert_allclose(meta.rotations, np.asarray(rec["rot"]), atol=1e-5)
    np.testing.assert_allclose(meta.shifts_px(), np.asarray(rec["trans_fraction"]) * 16, atol=1e-4)


def test_ctf_pickle_from_cryodrgn_replaces_the_star_ctf_and_training_says_so(tmp_path, capsys):
    pkl = tmp_path / "ctf.pkl"
    table = np.asarray(DRGN_PARSED["files"]["relion31_optics6.star"]["ctf"], np.float32)
    table[:, 2:4] += 1000.0  # recognisably different from the STAR's defocus
    with open(pkl, "wb") as fh:
        pickle.dump(table, fh)
    meta = with_ctf(read_quiet(R31), pkl)
    np.testing.assert_allclose(meta.ctf.defocus_u, table[:, 2])
    ckpt = tmp_path / "m.pt"
    assert main(["drgn", "train", str(METADATA / "relion31_optics6.mrcs"), "--poses", str(R31), "--ctf", str(pkl),
                 "--checkpoint", str(ckpt), "--steps", "1", "--dim", "8", "--layers", "1", "--batch", "2",
                 "--validate-every", "0"]) == 0
    out = capsys.readouterr().out
    assert "CTF from ctf.pkl (cryoDRGN pickle) (the CTF in relion31_optics6.star" in out
    assert main(["drgn", "train", str(METADATA / "relion31_optics6.mrcs"), "--poses", str(R31), "--ctf", str(CS),
                 "--checkpoint", str(tmp_path / "n.pt"), "--steps", "1"]) == 2  # 10 CTF rows for 18 particles
    assert "CTF for 10 particles" in capsys.readouterr().err


def test_star_naming_many_stacks_is_matched_in_order(tmp_path):
    lines = R31.read_text().splitlines()
    k = 0
    for i, line in enumerate(lines):
        if "@relion31_optics6.mrcs" in line:
            lines[i] = line.replace(line.split()[0], f"{k % 3 + 1:06d}@Extract/mic{k // 3}.mrcs")
            k += 1
    (tmp_path / "many.star").write_text("\n".join(lines) + "\n")
    meta = read_quiet(tmp_path / "many.star")
    back = match_stack(meta, METADATA / "relion31_optics6.mrcs", 18)
    np.testing.assert_allclose(back.rotations, meta.rotations)
    assert any("matched to the images of relion31_optics6.mrcs in order" in n for n in back.notes)


def test_foreign_cs_files_are_one_line_errors(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", x=np.zeros(3))
    (tmp_path / "a.cs").write_bytes((tmp_path / "a.npz").read_bytes())
    with open(tmp_path / "obj.cs", "wb") as fh:
        np.save(fh, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "empty.cs").write_bytes(b"")
    for name, why in (("a.cs", "numpy archive"), ("obj.cs", "Python objects"), ("empty.cs", "not a cryoSPARC")):
        assert main(["metadata", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err and "allow_pickle" not in err
