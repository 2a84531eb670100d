"""Tests of :mod:`cryoforge.io.pickles`."""

import pickle
import warnings

import numpy as np
import pytest
import torch

from cryoforge.cli import main
from cryoforge.io.pickles import UnsafePickleError, load_ctf, load_poses, load_z
from tests.helpers import CRYODRGN, needs_het_weights


@needs_het_weights
def test_cryodrgn_pose_and_ctf_pickles():
    rot, trans = load_poses(CRYODRGN / "hand_rot_trans.pkl")
    assert rot.shape == (100, 3, 3) and trans.shape == (100, 2)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-4)
    ctf = load_ctf(CRYODRGN / "test_ctf.pkl")
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


class Evil:
    """Any class: a safe loader must refuse to build it."""


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
