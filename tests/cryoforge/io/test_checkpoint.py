"""Tests of :mod:`cryoforge.io.checkpoint`."""

import warnings

import pytest
import torch

from cryoforge.io import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)


class Evil:
    """An arbitrary pickled object: weights_only loading must refuse it."""


def test_checkpoint_round_trip_and_kind(tmp_path):
    net = torch.nn.Linear(3, 2)
    p = save_checkpoint(tmp_path / "c.pt", "wgan3d", {"size": 32}, {"generator": net.state_dict()},
                        metrics={"loss": 0.5})
    ck = load_checkpoint(p, kind="wgan3d")
    assert ck["config"] == {"size": 32} and ck["metrics"]["loss"] == 0.5
    net2 = torch.nn.Linear(3, 2)
    net2.load_state_dict(ck["state_dicts"]["generator"])
    assert torch.equal(net2.weight, net.weight)
    with pytest.raises(CheckpointError, match="is a 'wgan3d' checkpoint, but a 'gumnet' checkpoint is needed"):
        load_checkpoint(p, kind="gumnet")


def test_foreign_and_unsafe_checkpoints_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a cryoforge checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"format": "cryoforge-checkpoint", "obj": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")


def test_checkpoint_of_the_right_kind_with_missing_keys_is_a_clear_error(tmp_path, capsys):
    from cryoforge.cli import main

    torch.save({"format": "cryoforge-checkpoint", "format_version": 1, "kind": "wgan3d", "config": {},
                "state_dicts": {}, "metrics": {}, "extra": {}}, tmp_path / "g.pt")
    ck = load_checkpoint(tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="g.pt: its config has no 'latent_dim'"):
        ck["config"]["latent_dim"]
    assert main(["movie", str(tmp_path / "g.pt"), "--from", "0", "--to", "1", "--out",
                 str(tmp_path / "m.gif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a damaged checkpoint, or one written by other code" in err
    save_checkpoint(tmp_path / "again.pt", ck["kind"], ck["config"], ck["state_dicts"], ck["metrics"], ck["extra"])
    assert load_checkpoint(tmp_path / "again.pt")["kind"] == "wgan3d"  # plain dicts again: loads with weights_only
