"""Tests of :mod:`cryoforge.io.report`."""

import json

import numpy as np
import pytest

from cryoforge.cli import main
from tests.helpers import R30, R31


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
