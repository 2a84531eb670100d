"""Tests of :mod:`cryoforge.hyptest.cli`."""

import numpy as np
import pandas as pd

from cryoforge.hyptest.train import (
    load_regressor,
)


def test_cli_templates_train_export_and_test(tmp_path, capsys):
    from cryoforge.cli import main
    from cryoforge.io.mrc import write_mrc

    tdir = tmp_path / "templates"
    assert main(["hyptest", "templates", "phantom:assembly@1", "phantom:assembly@2", "phantom:ribosome",
                 "--out", str(tdir)]) == 0
    gan, reg, slim = tmp_path / "gan.pt", tmp_path / "reg.pt", tmp_path / "slim.pt"
    common = ["--templates", str(tdir), "--steps", "2", "--batch", "4", "--rotations", "2", "--validate-every", "2"]
    assert main(["hyptest", "train-gan", *common, "--checkpoint", str(gan), "--width", "2", "--zdim", "8",
                 "--n-critic", "1"]) == 0
    assert main(["hyptest", "train-regressor", *common, "--checkpoint", str(reg), "--gan", str(gan)]) == 0
    assert main(["hyptest", "export", str(reg), str(slim)]) == 0
    assert slim.stat().st_size < reg.stat().st_size
    _, _, payload = load_regressor(slim)
    assert payload["extra"]["weights_dtype"] == "float16" and "train-regressor" in payload["extra"]["command"]
    from cryoforge.hyptest.templates import read_template_set

    maps, names, vs = read_template_set(tdir)
    assert names == ["assembly@1", "assembly@2", "ribosome"] and vs == 12.0
    write_mrc(tmp_path / "p.mrc", maps[:2], vs, stack=True)
    capsys.readouterr()
    assert main(["hyptest", "test", str(tmp_path / "p.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100", "--rotations", "300", "--out", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "#0" in out and "#1" in out and "p̂ " in out
    assert len(pd.read_csv(tmp_path / "t.csv")) == 2
    assert main(["hyptest", "test", str(tmp_path / "p.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100", "--rotations", "300", "--defocus", "3", "--limit", "1",
                 "--null-spread", "1"]) == 0  # CTF-aware, with the neighbour null
    said = capsys.readouterr()
    assert "#0" in said.out and "pseudo-complexes neighbours at spread τ = 1 per best template" in said.out + said.err
    assert main(["hyptest", "test", str(tmp_path / "p.mrc"), "--null-spread", "0"]) == 2
    assert "--null-spread: must be > 0; got 0" in capsys.readouterr().err
    # calibrated p-values: H0 cases simulated with the test's null, then the test referred to them
    cal = tmp_path / "cal.json"
    assert main(["hyptest", "calibrate", "--templates", str(tdir), "--model", str(slim), "--cases", "2",
                 "--pseudo", "10", "--rotations", "100", "--alpha", "0.25", "--null-spread", "1", "--defocus", "3",
                 "--out", str(cal)]) == 0
    said = capsys.readouterr().out
    assert "2 H0 cases with the neighbour null at τ = 1" in said and f"wrote {cal}" in said
    from cryoforge.hyptest.calibration import Calibration

    ref = Calibration.read(cal)
    assert ref.cases == 2 and ref.settings["null_spread"] == 1.0 and ref.settings["defocus_um"] == 3.0
    again = ["hyptest", "calibrate", "--templates", str(tdir), "--model", str(slim), "--cases", "2", "--pseudo", "10",
             "--rotations", "100", "--alpha", "0.4", "--defocus", "3", "--check", str(cal), "--out",
             str(tmp_path / "cal2.json")]
    assert main([*again, "--null-spread", "1"]) == 2  # the same seed: the same H0 cases
    assert "not a check out of sample" in capsys.readouterr().err
    assert main(again) == 2  # the paper's null checked against the neighbour null's reference
    assert "calibrate again with the test's null" in capsys.readouterr().err
    assert not (tmp_path / "cal2.json").exists()
    assert main([*again, "--null-spread", "1", "--seed", "5"]) == 0
    said = capsys.readouterr().out
    other = Calibration.read(tmp_path / "cal2.json")
    mean = np.mean([ref.p(h) for h in other.p_hats])
    assert f"out of sample, {cal}'s calibrated p of these 2 H0 cases: mean {mean:.3f}" in said
    test = ["hyptest", "test", str(tmp_path / "p.mrc"), "--templates", str(tdir), "--model", str(slim),
            "--n-pseudo", "100", "--rotations", "300", "--defocus", "3", "--alpha", "0.4", "--calibration", str(cal), "--limit", "1"]
    assert main([*test, "--null-spread", "1", "--out", str(tmp_path / "c.csv")]) == 0
    assert "p-values calibrated against 2 simulated H0 cases" in capsys.readouterr().out
    rows = pd.read_csv(tmp_path / "c.csv")
    assert all(p == ref.p(h) for p, h in zip(rows["p_cal"], rows["p_hat"], strict=True))
    assert main(test) == 2  # made for the neighbour null, used with the paper's: refused
    assert "calibrate again with the test's null" in capsys.readouterr().err
    from cryoforge.sim.sources import MapSpec, load_map

    write_mrc(tmp_path / "fine.mrc", load_map("phantom:ribosome", MapSpec(40, 9.6)), 9.6)  # acquired finer: binned
    assert main(["hyptest", "test", str(tmp_path / "fine.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100", "--rotations", "300", "--defocus", "3"]) == 0
    out = capsys.readouterr().out
    assert "binning the 40³ subtomograms at 9.6 Å" in out and "best ribosome" in out
    write_mrc(tmp_path / "wide.mrc", load_map("phantom:ribosome", MapSpec(48, 9.6)), 9.6)
    assert main(["hyptest", "test", str(tmp_path / "wide.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100"]) == 2  # a box of another length: a clear error
    assert "extract subtomograms of 40³ voxels" in capsys.readouterr().err
    assert main(["hyptest", "test", str(tmp_path / "p.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "100", "--defocus", "3", "4", "5"]) == 2  # one defocus per subtomogram, or one
    assert "one per subtomogram" in capsys.readouterr().err
    assert main(["hyptest", "test", str(tmp_path / "p.mrc"), "--templates", str(tdir), "--model", str(slim),
                 "--n-pseudo", "20"]) == 2  # B too small for α = 0.01: a clear error, not a traceback
    assert "cannot reach" in capsys.readouterr().err
