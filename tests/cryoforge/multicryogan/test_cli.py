"""Tests of :mod:`cryoforge.multicryogan.cli`."""

import json

import numpy as np
import pytest
import torch

from tests.helpers import homogeneous_stack


def test_cli_train_and_eval(tmp_path, capsys):
    from cryoforge.cli import main
    from cryoforge.io.mrc import write_mrc

    _, data = homogeneous_stack(count=64)
    stack = tmp_path / "p.mrcs"
    write_mrc(stack, np.asarray(data.images), 4.0, stack=True)
    ck = tmp_path / "m.pt"
    assert main(["mcgan", "train", str(stack), "--no-ctf", "--checkpoint", str(ck), "--steps", "3", "--gwidth", "2",
                 "--cwidth", "4", "--batch", "8", "--poses", "4", "--validate-every", "3"]) == 0
    payload = torch.load(ck, weights_only=True)
    assert payload["kind"] == "multicryogan" and payload["extra"]["command"].startswith("cryoforge mcgan train")
    out = tmp_path / "eval"
    assert main(["mcgan", "eval", str(ck), "--out", str(out), "--points", "4"]) == 0
    rep = json.loads((out / "eval.json").read_text())
    assert np.shape(rep["fsccc_matrix"]) == (5, 5)
    curve = rep["ends_fsc"]  # the ends' FSC per shell; its area is the matrix's corner entry
    f = np.asarray(curve["frequency_cycles_per_px"]) / 0.5
    assert np.trapezoid(curve["generator"], f) == pytest.approx(rep["fsccc_matrix"][0][-1], abs=1e-6)
    assert set(rep["proportions"]) >= {"first", "last", "transition"}
    assert (out / "fsccc.png").stat().st_size > 1000 and (out / "volumes.mrc").is_file()
