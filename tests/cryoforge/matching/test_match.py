"""Whole-tomogram template matching: the FLCC against its definition computed voxel by voxel, planted copies found
with their rotations, tiles and resumed runs equal to one uninterrupted pass, the Cn rotation set, the Gaussian-null
baseline against scipy's normal, and the two commands end to end (STAR read back by starfile)."""

import json
import math

import numpy as np
import pytest
import torch

from cryoforge.conventions import rotation_angle_deg
from cryoforge.fourier import spherical_mask
from cryoforge.geometry import transform_volumes
from cryoforge.jobs.runner import drive
from cryoforge.matching.flcc import FLCC, good_fft_size
from cryoforge.matching.job import MatchConfig, match_job, match_rotations
from cryoforge.matching.peaks import find_peaks, gaussian_null_false_alarms, gaussian_null_threshold
from tests.helpers import tomogram_of_copies

BOX = 20


def _direct_score(vol, tpl, mask, rot, p, rotate_mask=True):
    """The normalised cross-correlation under the (rotated) mask of the tomogram's box at voxel p (z, y, x)."""
    n, c = tpl.shape[0], tpl.shape[0] // 2
    t = transform_volumes(torch.from_numpy(tpl), rot).double().numpy()
    m = (transform_volumes(torch.from_numpy(mask), rot).clamp(0, 1) if rotate_mask else torch.from_numpy(mask)).double().numpy()
    z, y, x = p
    v = vol[z - c:z - c + n, y - c:y - c + n, x - c:x - c + n].astype(np.float64)
    w = m / m.sum()
    tc = (t - (w * t).sum()) * m
    vc = v - (w * v).sum()
    return float((tc * vc).sum() / math.sqrt((tc ** 2).sum() * (m * vc ** 2).sum()))


@pytest.mark.parametrize("spherical", [True, False])
def test_flcc_is_the_local_normalised_correlation_under_the_mask(spherical):
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(20, 24, 30)).astype(np.float32)
    tpl = rng.normal(size=(10, 10, 10)).astype(np.float32)
    mask = spherical_mask((10, 10, 10), 4.0).numpy() if spherical else (rng.uniform(size=(10,) * 3) > 0.4).astype(
        np.float32)
    rots = match_rotations(60.0)[:3]
    eng = FLCC(torch.from_numpy(tpl), torch.from_numpy(mask), None, spherical, 3, torch.device("cpu"))
    s = eng.scores(eng.prepare(torch.from_numpy(vol)), rots).numpy()
    for k in range(3):
        for p in [(10, 12, 15), (5, 5, 5), (14, 18, 24)]:
            assert s[k][p] == pytest.approx(_direct_score(vol, tpl, mask, rots[k], p, not spherical), abs=2e-4)


def test_a_planted_copy_scores_one_whatever_its_contrast_and_offset():
    tpl = tomogram_of_copies(torch.eye(3)[None], BOX)[1]
    rot = match_rotations(30.0)[7]
    vol = np.zeros((32, 40, 48), np.float32) + 5.0
    vol[6:26, 10:30, 14:34] += 3.0 * transform_volumes(torch.from_numpy(tpl), rot).numpy()
    eng = FLCC(torch.from_numpy(tpl), spherical_mask((BOX,) * 3, 8.0), None, True, 2,
               torch.device("cpu"))
    s = eng.scores(eng.prepare(torch.from_numpy(vol)), torch.stack([rot, match_rotations(30.0)[8]]))
    assert float(s[0, 16, 20, 24]) == pytest.approx(1.0, abs=1e-4)
    assert float(s[1, 16, 20, 24]) < 0.95
    assert good_fft_size(97) == 100 and good_fft_size(64) == 64


@pytest.fixture(scope="module")
def planted():
    """Three copies of an asymmetric map in the grid's rotations 5, 40 and 77 of a 30° set, with noise."""
    grid = match_rotations(30.0)
    idx = [5, 40, 77]
    vol, ref, xyz = tomogram_of_copies(grid[idx], BOX, (24, 48, 96), noise=0.3)
    return vol, ref, xyz, idx


def test_the_job_finds_each_copy_in_its_rotation(planted, tmp_path):
    vol, ref, xyz, idx = planted
    res = drive(match_job(vol, ref, 6.0, MatchConfig(angular_step=30.0, mask_radius=48.0)))
    for (x, y, z), k in zip(xyz.astype(int), idx, strict=True):
        assert res.angles[z, y, x] == k and res.scores[z, y, x] > 0.8
    cand = find_peaks(res.scores, res.angles, 5, 10.0, edge=BOX // 2)
    assert sorted(map(tuple, cand.xyz[:3].astype(int))) == sorted(map(tuple, xyz.astype(int)))
    assert cand.scores[3] < 0.5 * cand.scores[2]  # the rest is noise
    r = res.record
    assert r["n_rotations"] == len(match_rotations(30.0)) and r["score_sigma"] > 0
    assert len(r["rotations_zyz_relion_deg"]) == r["n_rotations"] and r["rotation_over_fft_pair"] > 0


def test_tiles_and_a_resumed_run_give_the_maps_of_one_pass(planted, tmp_path):
    vol, ref, _, _ = planted
    cfg = MatchConfig(angular_step=45.0, batch=3)
    whole = drive(match_job(vol, ref, 6.0, cfg))
    tiled = drive(match_job(vol, ref, 6.0, MatchConfig(angular_step=45.0, batch=3, memory_gb=0.004)))
    assert tiled.record["tiles"] > 1 and whole.record["tiles"] == 1
    np.testing.assert_allclose(tiled.scores, whole.scores, atol=2e-5)
    assert (tiled.angles == whole.angles).mean() > 0.999  # near-ties may flip in the last bit
    job = match_job(vol, ref, 6.0, cfg, out_dir=tmp_path)
    seen = 0
    for ev in job:  # stop after a few batches, as a cancel does
        seen += type(ev).__name__ == "Progress"
        if seen == 4:
            job.close()
            break
    assert (tmp_path / "partial" / "rank0-of-1.pt").is_file()
    events = []
    resumed = drive(match_job(vol, ref, 6.0, cfg, out_dir=tmp_path), events.append)
    assert any("resuming" in getattr(e, "message", "") for e in events)
    np.testing.assert_array_equal(resumed.scores, whole.scores)
    np.testing.assert_array_equal(resumed.angles, whole.angles)
    assert not (tmp_path / "partial" / "rank0-of-1.pt").exists()


def test_a_cn_template_searches_one_nth_of_the_rotations_and_misses_none():
    full, c4 = match_rotations(20.0), match_rotations(20.0, symmetry=4)
    assert abs(len(c4) / len(full) - 0.25) < 0.02
    quarter = [torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
               for a in np.radians([0, 90, 180, 270])]
    q = match_rotations(7.0)[::97]  # probe rotations off the grid
    worst, worst_full = 0.0, 0.0
    for r in q:  # each probe's nearest kept rotation, up to the template's own quarter turns
        d = min(float(rotation_angle_deg(c4, (r @ z).expand_as(c4)).min()) for z in quarter)
        worst = max(worst, d)
        worst_full = max(worst_full, float(rotation_angle_deg(full, r.expand_as(full)).min()))
    assert worst <= 1.15 * worst_full  # as close as the whole grid comes (its covering radius, ≈ 1.2 × the step)
    with pytest.raises(ValueError, match="angular step"):
        match_rotations(0.0)


def test_the_gaussian_null_threshold_is_the_normal_tail():
    from scipy.stats import norm

    t = gaussian_null_threshold(0.05, 1e9, 1.0)
    assert t == pytest.approx(0.05 * norm.isf(1e-9), rel=1e-9)
    assert float(gaussian_null_false_alarms(t, 0.05, 1e9)) == pytest.approx(1.0, rel=1e-6)
    # on pure noise the realised count above the threshold of 100 false alarms is of that order
    rng = np.random.default_rng(1)
    s = rng.normal(0, 0.05, 10 ** 6)
    assert 60 < (s >= gaussian_null_threshold(0.05, 1e6, 100.0)).sum() < 140


def test_match_and_extract_commands_write_what_other_tools_read(planted, tmp_path, capsys):
    import starfile

    from cryoforge.cli import main
    from cryoforge.io.mrc import write_mrc

    vol, ref, xyz, idx = planted
    write_mrc(tmp_path / "TS_5.mrc", vol, 6.0)
    write_mrc(tmp_path / "tpl.mrc", ref[::2, ::2, ::2], 12.0)  # coarser: resampled to 6 Å
    write_mrc(tmp_path / "tpl6.mrc", ref, 6.0)
    assert main(["match", str(tmp_path / "TS_5.mrc"), str(tmp_path / "tpl6.mrc"), "--angular-step", "30",
                 "--mask-radius", "48", "--tilt-range", "-60", "60", "--out", str(tmp_path / "m")]) == 0
    job = json.loads((tmp_path / "m" / "job.json").read_text())
    assert job["tomogram_name"] == "TS_5" and job["settings"]["tilt_range"] == [-60.0, 60.0]
    assert main(["match", "extract", str(tmp_path / "m"), "--n", "3", "--min-distance", "60",
                 "--out", str(tmp_path / "c.star")]) == 0
    assert "Gaussian-null threshold" in capsys.readouterr().out
    star = starfile.read(tmp_path / "c.star", always_dict=True)["particles"]
    assert len(star) == 3 and set(star["rlnTomoName"]) == {"TS_5"} and (star["cfAboveGaussianNull"] == 1).all()
    from cryoforge.io.tomo_particles import read_particle_list

    found = read_particle_list(tmp_path / "c.star")
    truth = (xyz - np.array([48, 24, 12])) * 6.0  # Å from the centre (size / 2)
    grid = match_rotations(30.0)
    for pos, rot in zip(found.positions, found.rotations, strict=True):
        k = int(np.argmin(np.linalg.norm(truth - pos, axis=1)))
        assert np.linalg.norm(truth[k] - pos) < 1e-6
        assert float(rotation_angle_deg(torch.from_numpy(rot), grid[idx[k]].double())) < 0.01
    assert main(["match", str(tmp_path / "TS_5.mrc"), str(tmp_path / "tpl.mrc"), "--angular-step", "45",
                 "--decoys", "2", "--decoy-kind", "phases", "--out", str(tmp_path / "m2")]) == 0  # another voxel size
    assert json.loads((tmp_path / "m2" / "decoy2" / "job.json").read_text())["decoy_seed"] == 2
    assert main(["match", "extract", str(tmp_path / "m2"), "--n", "10", "--min-distance", "60", "--fdr", "0.2",
                 "--out", str(tmp_path / "q.star")]) == 0
    q = starfile.read(tmp_path / "q.star", always_dict=True)["particles"]
    # the three copies beat the decoys everywhere they are: (0 + 1) / 2 maps estimated false above each
    assert len(q) >= 3 and (q["cfQValue"] <= 0.2).all() and np.allclose(q["cfDecoyFalse"][:3], 0.5)
    got = read_particle_list(tmp_path / "q.star").positions[:3]
    assert max(np.linalg.norm(truth - p, axis=1).min() for p in got) <= 6.0 + 1e-6  # a voxel: resampled template
    assert main(["match", "extract", str(tmp_path / "m2"), "--n", "10", "--min-distance", "60", "--fdr", "0.01",
                 "--out", str(tmp_path / "none.star")]) == 2  # 2 decoys cannot resolve q = 0.01 among 3
    assert not (tmp_path / "none.star").exists()
    assert main(["match", "extract", str(tmp_path / "nothing"), "--min-distance", "60", "--out",
                 str(tmp_path / "x.star")]) == 2


def test_benjamini_hochberg_and_target_decoy_q_values():
    """q-values against the step-up procedure done by hand; target–decoy q-values count the decoys above each cut."""
    from cryoforge.matching.peaks import bh_q_values, decoy_q_values, gaussian_null_q_values

    p = np.array([0.01, 0.04, 0.03, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 → p·m/rank 0.04, 0.06, 0.0533, 0.5 → running minimum from the top
    np.testing.assert_allclose(bh_q_values(p), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    null = np.random.default_rng(3).uniform(size=2000)
    assert (bh_q_values(null) <= 0.1).sum() <= 2  # all null: BH rejects (almost) nothing
    # targets 0.9 0.8 0.7 0.3; decoys of 2 maps 0.75 0.2: cuts at 0.9, 0.8 → (0+1)/2 over 1, 2 kept; at 0.7 → (1+1)/2
    # over 3; at 0.3 → (1+1)/2 over 4
    q, false = decoy_q_values([0.9, 0.8, 0.7, 0.3], [0.75, 0.2], 2)
    np.testing.assert_allclose(false, [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(q, [0.25, 0.25, 0.25, 0.25])  # every cut up to 0.3 is as good or better
    q, _ = decoy_q_values([0.9, 0.8, 0.7, 0.3], [0.75, 0.5, 0.4, 0.35, 0.2], 1)
    np.testing.assert_allclose(q, [0.5, 0.5, 2 / 3, 1.0])  # 0.9 is also kept by the cut at 0.8
    # the Gaussian null's q: expected false alarms over the rank, running minimum from the weakest
    np.testing.assert_allclose(gaussian_null_q_values([0.1, 0.5, 0.3, 12.0]), [0.1, 0.5 / 3, 0.15, 1.0])


def test_a_finished_decoy_is_reused_only_for_the_same_tomogram_and_template(tmp_path):
    """match_folder_job keeps a finished decoy of the same settings and inputs (a cancelled run resumed), and matches
    it again for another tomogram of the same shape (the dock's output folder is reused from run to run)."""
    from cryoforge.jobs import Log
    from cryoforge.matching.job import match_folder_job

    rng = np.random.default_rng(3)
    tomo_a, tomo_b = (rng.normal(size=(24, 32, 32)).astype(np.float32) for _ in range(2))
    tpl = rng.normal(size=(10, 10, 10)).astype(np.float32)
    cfg = MatchConfig(angular_step=60.0, mask_radius=24.0)

    def run(tomo):
        events = []
        folder = drive(match_folder_job(tomo, tpl, 6.0, cfg, tmp_path / "m", decoys=1), events.append)
        return folder, [e.message for e in events if isinstance(e, Log)]

    folder, logs = run(tomo_a)
    assert "decoy 1 of 1 (shells)" in logs and (folder / "decoy1" / "job.json").is_file()
    first = json.loads((folder / "decoy1" / "job.json").read_text())["input_digest"]
    _, logs = run(tomo_a)
    assert not any(m.startswith("decoy 1") for m in logs)  # kept
    _, logs = run(tomo_b)
    assert "decoy 1 of 1 (shells)" in logs  # another tomogram: matched again
    assert json.loads((folder / "decoy1" / "job.json").read_text())["input_digest"] != first
