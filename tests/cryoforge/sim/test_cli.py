"""Tests of :mod:`cryoforge.sim.cli`."""

import json

import numpy as np
import pytest

from cryoforge.cli import main
from cryoforge.io.mrc import read_mrc


def test_cli_simulate_commands(tmp_path, capsys):
    assert main(["simulate", "map", "phantom:ferritin", "--box", "32", "--voxel-size", "6",
                 "--out", str(tmp_path / "f.mrc")]) == 0
    assert main(["simulate", "subtomos", "phantom:ferritin", str(tmp_path / "f.mrc"), "--n-pairs", "4",
                 "--voxel-size", "6", "--out", str(tmp_path / "st")]) == 0
    info = json.loads((tmp_path / "st" / "dataset.json").read_text())
    assert info["n_pairs"] == 4 and info["command"].startswith("cryoforge simulate subtomos")
    assert main(["simulate", "particles", "phantom:multiblob", "phantom:proteasome", "--weights", "1", "3",
                 "-n", "12", "--box", "48", "--voxel-size", "4", "--snr-db", "-10", "--out", str(tmp_path / "pp")]) == 0
    info = json.loads((tmp_path / "pp" / "dataset.json").read_text())
    assert info["params"]["snr"] == pytest.approx(0.1) and info["ensemble"]["weights"] == [0.25, 0.75]
    capsys.readouterr()
    assert main(["simulate", "map", "phantom:ribosome", "--voxel-size", "-1", "--out", str(tmp_path / "x.mrc")]) == 2
    assert "--voxel-size: must be > 0 Å" in capsys.readouterr().err
    assert main(["simulate", "particles", "phantom:multiblob", "--snr", "-1", "--box", "48", "--voxel-size", "4",
                 "--out", str(tmp_path / "y")]) == 2
    assert "snr" in capsys.readouterr().err


def test_trajectory_frames_become_states(shared_dir, tmp_path):
    s = shared_dir / "structures"
    assert main(["simulate", "particles", str(s / "adk_closed.pdb.gz"), "--dcd", str(s / "adk_dims.dcd"),
                 "--stride", "32", "-n", "16", "--box", "48", "--voxel-size", "2.5", "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert len(info["ensemble"]["coords"]) == 4 and info["ensemble"]["names"][-1].endswith("frame96")
    states, _ = read_mrc(tmp_path / "states.mrc")
    assert states.shape == (4, 48, 48, 48)
    assert np.corrcoef(states[0].ravel(), states[-1].ravel())[0, 1] < 0.99  # the frames differ
