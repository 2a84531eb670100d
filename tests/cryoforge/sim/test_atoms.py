"""Tests of :mod:`cryoforge.sim.atoms`."""

import gzip

import numpy as np
import pytest

from cryoforge.sim.atoms import ModelError, infer_element, read_dcd, read_model, superpose


@pytest.mark.parametrize("name,residue,given,expected", [
    ("CA", "ALA", "Ca", "C"), ("HT1", "MET", "X", "H"), ("1HB", "ALA", "", "H"), ("SD", "MET", "", "S"),
    ("OXT", "GLY", "", "O"), ("CA", "HSD", "Ca", "C"), ("MG", "MG", "Mg", "Mg"), ("ZN", "ZN", "", "Zn"),
    ("CA", "CA", "", "Ca"),
])
def test_element_inference(name, residue, given, expected):
    assert infer_element(name, residue, given) == expected


def test_adk_has_no_calcium(shared_dir):
    m = read_model(shared_dir / "structures" / "adk_closed.pdb.gz")
    assert len(m) == 3341 and "Ca" not in m.elements and m.elements.count("H") > 1000


def test_dcd_trajectory(shared_dir):
    frames = read_dcd(shared_dir / "structures" / "adk_dims.dcd")
    assert frames.shape == (98, 3341, 3)
    steps = [np.sqrt(((superpose(frames[i + 1], frames[i]) - frames[i]) ** 2).sum(1).mean()) for i in range(97)]
    assert max(steps) < 2.0  # a smooth path (Å RMSD between successive frames)
    with pytest.raises(ModelError, match="DCD"):
        import pathlib
        import tempfile  # noqa: E401
        p = pathlib.Path(tempfile.mkdtemp()) / "bad.dcd"
        p.write_bytes(gzip.compress(b"not a dcd"))
        read_dcd(p)
