"""Real metadata files read right (issue 22): each test reproduces a trait of real RELION / cryoSPARC / cryoDRGN
files with the small files of tests/data/metadata (made by make_files.py) and checks the values against physics,
RELION's definitions, or cryoDRGN 4.3.1's own reading of the same file (cryodrgn_parsed.json, made by
cryodrgn_reference.py)."""

import json
import pickle
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch

from cryoforge.cli import main
from cryoforge.ctf import CTFParams, ctf_2d
from cryoforge.io.particles import ctf_nonfinite, match_stack, read_particle_metadata, with_ctf
from cryoforge.io.star import StarError, StarWarning, read_particles_star

DATA = Path(__file__).resolve().parents[1] / "data" / "metadata"
DRGN = json.loads((DATA / "cryodrgn_parsed.json").read_text())
R30, R31, CS = DATA / "relion30_sta.star", DATA / "relion31_optics6.star", DATA / "cryosparc_small.cs"


def read_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarWarning)
        return read_particle_metadata(path, **kw)


# 1. DefocusU < DefocusV
def test_u_less_than_v_is_the_same_ellipse_and_finite():
    a = ctf_2d(CTFParams(defocus_u=16000, defocus_v=20000, defocus_angle=-60.0), (32, 32), 1.5)
    b = ctf_2d(CTFParams(defocus_u=20000, defocus_v=16000, defocus_angle=30.0), (32, 32), 1.5)
    assert torch.isfinite(a).all()
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_sta_star_with_u_below_v_has_no_nonfinite_ctf():
    meta = read_quiet(R30)
    assert int(np.sum(meta.ctf.defocus_u < meta.ctf.defocus_v)) == 4
    assert ctf_nonfinite(meta, 16) == 0
    assert any("U < " in n or "rlnDefocusU < rlnDefocusV" in n for n in meta.notes)


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


def test_stack_header_that_disagrees_warns(tmp_path):
    meta = read_quiet(R31)
    with pytest.warns(StarWarning, match="differs from the metadata's pixel size"):
        match_stack(meta, DATA / "relion31_optics6.mrcs", 18, header_pixel_size=2.0)


# 3. rlnCtfBfactor / rlnCtfScalefactor
def test_bfactor_ignored_by_default_with_one_warning():
    with pytest.warns(StarWarning) as record:
        meta = read_particles_star(R30)
    assert len([w for w in record if "rlnCtfBfactor" in str(w.message)]) == 1
    assert np.all(meta.ctf.bfactor == 0) and np.all(meta.ctf.scale == 1)
    used = read_particles_star(R30, use_ctf_envelope=True)
    assert used.ctf.bfactor.min() == pytest.approx(-507) and used.ctf.scale.min() < 1


def test_envelope_never_exceeds_one():
    p = CTFParams(defocus_u=20000, defocus_v=20000, bfactor=-507.0, scale=1.0)
    c = ctf_2d(p, (64, 64), 0.98)  # Nyquist 1.96 Å: RELION's envelope would reach ×9.3·10⁶ there
    assert c.abs().max().item() <= 1.0 + 1e-6
    plain = ctf_2d(CTFParams(defocus_u=20000, defocus_v=20000), (64, 64), 0.98)
    np.testing.assert_allclose(c.numpy(), plain.numpy(), atol=1e-6)
    half = ctf_2d(CTFParams(defocus_u=20000, defocus_v=20000, bfactor=100.0, scale=0.5), (64, 64), 0.98)
    assert half.abs().max().item() <= 0.5 + 1e-6


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


def test_training_images_use_each_particles_pixel_size():
    from cryoforge.drgn.data import ParticleImages

    meta = read_quiet(R31)
    ctf = {k: np.asarray(v) for k, v in meta.ctf.as_dict().items()}
    data = ParticleImages(np.zeros((18, 16, 16), np.float32), None, None, ctf, meta.pixel_sizes, window=False,
                          norm=(0.0, 1.0))
    i = int(np.nonzero(meta.pixel_sizes == 1.25)[0][0])
    row = CTFParams(**{k: v[i] for k, v in ctf.items()})
    want = ctf_2d(row, (16, 16), 1.25, rfft=False, fftshift=True)
    got = data.ctf_values([i]).view(17, 17)[:-1, :-1]
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    at_first = ctf_2d(row, (16, 16), 1.24, rfft=False, fftshift=True)
    assert (at_first - want).abs().max() > 1e-3  # the grid's pixel size would be measurably wrong


def test_unknown_optics_group_is_an_error(tmp_path):
    text = R31.read_text().replace("000003@relion31_optics6.mrcs 5 ", "000003@relion31_optics6.mrcs 7 ")
    (tmp_path / "bad.star").write_text(text)
    with pytest.raises(StarError, match=r"optics group\(s\) \[7\], which the optics table does not define"):
        read_particles_star(tmp_path / "bad.star")


def test_image_name_past_the_stack_is_an_error(tmp_path, capsys):
    text = R31.read_text().replace("000018@relion31_optics6.mrcs", "000019@relion31_optics6.mrcs")
    (tmp_path / "past.star").write_text(text)
    (tmp_path / "relion31_optics6.mrcs").write_bytes((DATA / "relion31_optics6.mrcs").read_bytes())
    with pytest.raises(StarError, match="points to image 19 of relion31_optics6.mrcs, which holds 18 images"):
        match_stack(read_quiet(tmp_path / "past.star"), tmp_path / "relion31_optics6.mrcs", 18)
    assert main(["metadata", str(tmp_path / "past.star")]) == 2
    assert "holds 18 images" in capsys.readouterr().err


def test_rows_in_another_order_follow_the_stack():
    meta = read_quiet(R31)
    shuffled = meta.take(np.arange(18)[::-1])
    back = match_stack(shuffled, DATA / "relion31_optics6.mrcs", 18)
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


# 9 and the field-by-field comparison with cryoDRGN 4.3.1
@pytest.mark.parametrize("case", range(3))
def test_ctf_is_the_negative_of_cryodrgns(case):
    rec = DRGN["ctf"][case]
    dfu, dfv, ang, kv, cs, w, ps = rec["params"]
    ours = ctf_2d(CTFParams(dfu, dfv, ang, kv, cs, w, 0.0, ps), (16, 16), rec["apix"]).double().numpy()
    theirs = np.asarray(rec["values"])
    assert ours[0, 0] == pytest.approx(-theirs[0, 0], abs=1e-6) and ours[0, 0] > 0  # CTF(0) = +w here, −w there
    # cryoDRGN's wavelength 12.2639 / sqrt(V + 0.97845e-6 V²) is 3·10⁻⁵ shorter than the exact one torch-ctf uses:
    # ≤ 0.007 rad of phase at Nyquist for these defoci
    np.testing.assert_allclose(ours, -theirs, atol=0.01)
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] < -0.9999


@pytest.mark.parametrize("name", ["relion30_sta.star", "relion31_optics6.star", "cryosparc_small.cs"])
def test_fields_match_cryodrgn(name):
    rec = DRGN["files"][name]
    meta = read_quiet(DATA / name, pixel_size=1.31 if name.startswith("relion30") else None)
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
    table = np.asarray(DRGN["files"]["relion31_optics6.star"]["ctf"], np.float32)
    table[:, 2:4] += 1000.0  # recognisably different from the STAR's defocus
    with open(pkl, "wb") as fh:
        pickle.dump(table, fh)
    meta = with_ctf(read_quiet(R31), pkl)
    np.testing.assert_allclose(meta.ctf.defocus_u, table[:, 2])
    ckpt = tmp_path / "m.pt"
    assert main(["drgn", "train", str(DATA / "relion31_optics6.mrcs"), "--poses", str(R31), "--ctf", str(pkl),
                 "--checkpoint", str(ckpt), "--steps", "1", "--dim", "8", "--layers", "1", "--batch", "2",
                 "--validate-every", "0"]) == 0
    out = capsys.readouterr().out
    assert "CTF from ctf.pkl (cryoDRGN pickle) (the CTF in relion31_optics6.star" in out
    assert main(["drgn", "train", str(DATA / "relion31_optics6.mrcs"), "--poses", str(R31), "--ctf", str(CS),
                 "--checkpoint", str(tmp_path / "n.pt"), "--steps", "1"]) == 2  # 10 CTF rows for 18 particles
    assert "CTF for 10 particles" in capsys.readouterr().err


def test_metadata_command_shows_groups_and_writes_json(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["metadata", str(R31), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit() and len(line.split()) == 7]
    assert {(r[0], r[2], r[4]) for r in rows} == {("1", "1.24", "2.7"), ("2", "1.25", "2.7"), ("3", "1.24", "2.6"),
                                                   ("4", "1.25", "2.6"), ("5", "1.24", "2.7"), ("6", "1.25", "2.6")}
    d = json.loads(out.read_text())
    assert d["n"] == 18 and d["ctf_nonfinite"] == 0 and d["box"] == 16
    assert np.asarray(d["rotation"]).shape == (18, 3, 3) and np.asarray(d["shift_A"]).shape == (18, 2)
    for key in ("pixel_size_A", "defocus_u_A", "defocus_v_A", "defocus_angle_deg", "voltage_kV", "cs_mm",
                "amplitude_contrast", "phase_shift_deg", "shift_px"):
        assert len(d[key]) == 18
    assert main(["metadata", str(R30), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["ctf_nonfinite"] == 0 and d["pixel_size_A"][0] == pytest.approx(1.31, abs=1e-3)
    assert any("rlnCtfBfactor" in n and "ignored" in n for n in d["notes"])


# 7. stack or volume
def _mrc(path, shape, ispg, cell=True):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.zeros(shape, np.float32))
        m.header.ispg = ispg
        if cell:
            m.voxel_size = 2.0
        else:
            m.header.cella = (0.0, 0.0, 0.0)


def test_stack_or_volume_rule(tmp_path, capsys):
    from cryoforge.io.mrc import read_mrc

    _mrc(tmp_path / "cube.mrc", (30, 30, 30), 0)
    _mrc(tmp_path / "thin.mrc", (7, 32, 32), 1, cell=False)
    _mrc(tmp_path / "tomo.mrc", (12, 40, 40), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert read_mrc(tmp_path / "cube.mrc")[1].kind == "volume"
        assert read_mrc(tmp_path / "thin.mrc")[1].kind == "stack"
        assert read_mrc(tmp_path / "tomo.mrc")[1].kind == "volume"
        assert read_mrc(tmp_path / "cube.mrc", kind="stack")[1].kind == "stack"
        assert read_mrc(tmp_path / "thin.mrc", kind="volume")[1].kind == "volume"
    assert main(["info", str(tmp_path / "thin.mrc"), "--as", "volume"]) == 0
    assert "volume (Z, Y, X)" in capsys.readouterr().out


def test_info_calls_a_stack_of_volumes_a_volume_stack(tmp_path, capsys):
    from cryoforge.io.mrc import write_mrc

    write_mrc(tmp_path / "v.mrc", np.zeros((5, 8, 8, 8), np.float32), 2.0)
    assert main(["info", str(tmp_path / "v.mrc")]) == 0
    assert "volume stack (N, Z, Y, X)" in capsys.readouterr().out


# 6. z files
def test_z_file_of_the_wrong_width_is_an_error(tmp_path, capsys):
    np.savetxt(tmp_path / "z4.txt", np.zeros((2, 4)))
    np.savetxt(tmp_path / "z3.txt", np.zeros((3, 3)))
    for z in ("z4.txt", "z3.txt"):
        assert main(["drgn", "eval", "analytic:8", "--zfile", str(tmp_path / z), "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert "numbers per line, but the model's latent space has 8 dimensions" in err
    assert not (tmp_path / "o").exists()


def test_multicryogan_draws_each_images_pixel_size():
    from cryoforge.multicryogan.data import load_stack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarWarning)
        data = load_stack(DATA / "relion31_optics6.mrcs", R31, size=8)  # 16² → 8²: the pixel size doubles
    meta = read_quiet(R31)
    np.testing.assert_allclose(data.pixel_sizes, meta.pixel_sizes * 2)
    rows = np.arange(18)
    np.testing.assert_allclose(data.ctf_pixel_sizes(rows), meta.pixel_sizes * 2)
    np.testing.assert_allclose(data.ctf_rows(rows).cs, meta.ctf.cs)


def test_drgn_eval_says_what_it_decoded(shared_dir, tmp_path, capsys):
    run = shared_dir / "cryodrgn"
    assert main(["drgn", "eval", str(run / "het_weights.pkl"), "-c", str(run / "het_config.yaml"),
                 "-o", str(tmp_path / "v.mrc")]) == 0
    out = capsys.readouterr().out
    assert "decoding the latent origin z = (0, 0, 0, 0, 0, 0, 0, 0)" in out
    assert "voxel size: 1 Å written to the header (the run does not record one" in out
    np.savetxt(tmp_path / "z.txt", np.zeros((2, 8)))
    assert main(["drgn", "eval", str(run / "het_weights.pkl"), "-c", str(run / "het_config.yaml"), "--zfile",
                 str(tmp_path / "z.txt"), "-o", str(tmp_path / "out"), "--voxel-size", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["vol_001.mrc", "vol_002.mrc"]  # as eval_vol


def test_reader_override(tmp_path):
    from napari_cryoforge._reader import read_mrc_layers

    _mrc(tmp_path / "thin.mrc", (7, 32, 32), 1, cell=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = read_mrc_layers(str(tmp_path / "thin.mrc"))[0][1]
        forced = read_mrc_layers(str(tmp_path / "thin.mrc"), kind="volume")[0][1]
    assert auto["axis_labels"] == ("particle", "y", "x") and forced["axis_labels"] == ("z", "y", "x")


def test_pickle_bomb_is_refused_in_under_a_second(tmp_path, capsys):
    import time

    bomb = [0.0] * 8
    for _ in range(30):  # 2³⁰ × 8 floats once expanded; a few KB on disk
        bomb = [bomb, bomb]
    with open(tmp_path / "z.pkl", "wb") as fh:
        pickle.dump(bomb, fh)
    assert (tmp_path / "z.pkl").stat().st_size < 5000
    t0 = time.perf_counter()
    assert main(["metadata", str(tmp_path / "z.pkl"), "--box", "16"]) == 2
    assert time.perf_counter() - t0 < 1.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the same container appears twice" in err and "Traceback" not in err
    from cryoforge.io.pickles import UnsafePickleError, load_z

    with pytest.raises(UnsafePickleError):
        load_z(tmp_path / "z.pkl")
    with open(tmp_path / "lists.pkl", "wb") as fh:
        pickle.dump([[0.0] * 8] * 1, fh)
    with pytest.raises(UnsafePickleError, match="expected numpy arrays"):
        load_z(tmp_path / "lists.pkl")


def test_training_with_a_ctf_but_no_pixel_size_is_refused(tmp_path, capsys):
    text = R31.read_text().replace("_rlnImagePixelSize #6", "_rlnSomethingElse #6")
    (tmp_path / "nopx.star").write_text(text)
    args = ["drgn", "train", str(DATA / "relion31_optics6.mrcs"), "--poses", str(tmp_path / "nopx.star"),
            "--checkpoint", str(tmp_path / "m.pt"), "--steps", "1", "--dim", "8", "--layers", "1", "--batch", "2",
            "--validate-every", "0"]
    assert main(args) == 2
    assert "no pixel size" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()
    assert main(args + ["--apix", "1.24"]) == 0


def test_star_naming_many_stacks_is_matched_in_order(tmp_path):
    lines = R31.read_text().splitlines()
    k = 0
    for i, line in enumerate(lines):
        if "@relion31_optics6.mrcs" in line:
            lines[i] = line.replace(line.split()[0], f"{k % 3 + 1:06d}@Extract/mic{k // 3}.mrcs")
            k += 1
    (tmp_path / "many.star").write_text("\n".join(lines) + "\n")
    meta = read_quiet(tmp_path / "many.star")
    back = match_stack(meta, DATA / "relion31_optics6.mrcs", 18)
    np.testing.assert_allclose(back.rotations, meta.rotations)
    assert any("matched to the images of relion31_optics6.mrcs in order" in n for n in back.notes)


class Evil:
    """Any class: a safe loader must refuse to build it."""


def test_unsafe_weights_and_yaml_are_one_line_without_advice_to_load_unsafely(tmp_path, capsys, shared_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"model_state_dict": {}, "x": Evil()}, tmp_path / "weights.pkl")
    cfg = shared_dir / "cryodrgn" / "het_config.yaml"
    assert main(["drgn", "eval", str(tmp_path / "weights.pkl"), "-c", str(cfg), "-o", str(tmp_path / "v.mrc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused, no code was run" in err
    assert "weights_only" not in err and "unsafe" not in err.lower() and "trust" not in err
    (tmp_path / "config.yaml").write_text("model_args: !!python/object/apply:os.system ['echo hacked']\n")
    assert main(["drgn", "eval", str(shared_dir / "cryodrgn" / "het_weights.pkl"), "-c", str(tmp_path / "config.yaml"),
                 "-o", str(tmp_path / "v.mrc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a plain YAML cryoDRGN config" in err and not (tmp_path / "v.mrc").exists()


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
