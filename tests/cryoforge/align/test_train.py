"""Tests of :mod:`cryoforge.align.train`."""

import pytest
import torch

from cryoforge.align.config import GumNetConfig, TrainConfig
from cryoforge.align.gumnet import GumNet
from cryoforge.align.train import load_gumnet, train_gumnet_job
from cryoforge.configs import to_dict
from cryoforge.conventions import rotation_angle_deg
from cryoforge.io.checkpoint import CheckpointError, save_checkpoint
from cryoforge.jobs import Cancelled, Log, Progress, drive
from cryoforge.jobs.trainer import Schedule


def _tiny_training(maps, steps, checkpoint):
    net = GumNetConfig.preset("tiny")
    train = TrainConfig(batch=2, val_pairs=3, snrs=[0.1])
    schedule = Schedule(steps=steps, validate_every=2, metrics_every=1, checkpoint_every=1)
    return train_gumnet_job(maps.numpy()[:2], net, train, schedule, checkpoint)


def test_training_resumes_and_cancel_keeps_a_checkpoint(maps, tmp_path):
    ckpt = tmp_path / "g.pt"
    first = drive(_tiny_training(maps, 2, ckpt))
    assert first.step == 2 and ckpt.is_file() and "snr0.1_rot_deg" in first.metrics
    events = []
    second = drive(_tiny_training(maps, 3, ckpt), events.append)
    assert any(isinstance(e, Log) and "resumed" in e.message and "step 2" in e.message for e in events)
    assert [e.step for e in events if isinstance(e, Progress)] == [1]
    assert second.history[0]["step"] == 1  # the history of the first run was kept
    events = []
    again = drive(_tiny_training(maps, 3, ckpt), events.append)  # already there: nothing trained, metrics kept
    assert again.step == 3 and again.metrics == second.metrics
    assert not any(isinstance(e, Progress) for e in events)
    cancel = __import__("threading").Event()

    def stop_after_first(event):
        if isinstance(event, Progress):
            cancel.set()

    with pytest.raises(Cancelled):
        drive(_tiny_training(maps, 10, tmp_path / "c.pt"), stop_after_first, cancel)
    from cryoforge.io.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "c.pt", kind="gumnet")["extra"]["step"] == 1
    model = load_gumnet(ckpt, box=32)
    assert isinstance(model, GumNet) and not model.training


def test_checkpoint_for_another_box_or_kind_is_refused(tmp_path):
    cfg = GumNetConfig.preset("tiny")
    path = save_checkpoint(tmp_path / "g.pt", "gumnet", {"architecture": to_dict(cfg)},
                           {"model": GumNet(cfg).state_dict()})
    with pytest.raises(CheckpointError, match="trained for 32³.*40³"):
        load_gumnet(path, box=40)
    other = save_checkpoint(tmp_path / "w.pt", "wgan3d", {}, {})
    with pytest.raises(CheckpointError, match="wgan3d"):
        load_gumnet(other)


def test_exported_weights_predict_like_the_checkpoint(tmp_path):
    from cryoforge.align.train import export_weights, gumnet_predict

    cfg = GumNetConfig.preset("tiny")
    net = GumNet(cfg)
    torch.nn.init.normal_(net.regress[-1].weight, std=0.01)
    path = save_checkpoint(tmp_path / "g.pt", "gumnet", {"architecture": to_dict(cfg)},
                           {"model": net.state_dict(), "optimizer.model": {}}, extra={"history": [{"step": 1}]})
    slim = export_weights(path, tmp_path / "slim.pt")
    assert slim.stat().st_size < path.stat().st_size
    x = torch.randn(2, 32, 32, 32)
    r1, t1 = gumnet_predict(load_gumnet(path), x, x.flip(-1))
    r2, t2 = gumnet_predict(load_gumnet(slim), x, x.flip(-1))
    assert rotation_angle_deg(r1, r2).max() < 1.0 and (t1 - t2).abs().max() < 0.1


def _gated_training(maps, steps, checkpoint, gate, snrs=(100.0, 0.1)):
    net = GumNetConfig.preset("tiny")
    train = TrainConfig(batch=2, val_pairs=3, snrs=list(snrs), gate=gate, gate_factor=2.0, start_angle=20.0,
                        wide_angle=60.0)
    schedule = Schedule(steps=steps, validate_every=1, metrics_every=1, checkpoint_every=1)
    return train_gumnet_job(maps.numpy()[:2], net, train, schedule, checkpoint)


def test_gated_curriculum_widens_only_when_validation_allows_and_resumes_there(maps, tmp_path):
    from cryoforge.align.train import GumNetTrainer
    from cryoforge.io.checkpoint import load_checkpoint

    # a gate no error can pass (0): the range stays, and only the highest SNR is trained while it is narrow
    held = drive(_gated_training(maps, 2, tmp_path / "held.pt", gate=1e-9))
    vals = [h for h in held.history if "val_gate_rot_deg" in h]
    assert [h["val_gate_range_deg"] for h in vals] == [20.0, 20.0] and held.metrics["gate_next_range_deg"] == 20.0
    assert all(h["max_angle_deg"] == 20.0 for h in held.history if "max_angle_deg" in h)
    # a gate every error passes (≥ 180° / 20°): the range doubles at each validation, up to 180°
    grown = drive(_gated_training(maps, 3, tmp_path / "grown.pt", gate=10.0))
    assert [h["val_gate_next_range_deg"] for h in grown.history if "val_gate_rot_deg" in h] == [40.0, 80.0, 160.0]
    assert load_checkpoint(tmp_path / "grown.pt", kind="gumnet")["extra"]["trainer_state"] == {"gated_angle": 160.0}
    resumed = drive(_gated_training(maps, 4, tmp_path / "grown.pt", gate=10.0))  # resumes at 160°, not at 20°
    assert [h for h in resumed.history if "val_gate_rot_deg" in h][-1]["val_gate_range_deg"] == 160.0
    assert resumed.metrics["gate_next_range_deg"] == 180.0
    # SNRs: the highest only below wide_angle, all of them from there on
    t = GumNetTrainer(GumNetConfig.preset("tiny"), TrainConfig(snrs=[100.0, 0.1], gate=0.5, wide_angle=60.0,
                                                               start_angle=20.0), maps.numpy()[:2])
    assert t.training_range(1) == (20.0, 1.0, [100.0])
    t.angle = 90.0
    angle, shift, snrs = t.training_range(1)
    assert angle == 90.0 and snrs == [100.0, 0.1] and 1.0 < shift < 7.0


def test_supervised_warm_start_then_the_unsupervised_loss_within_a_local_range(maps, tmp_path):
    """--supervised-steps: the first steps learn the truth (‖ΔR‖_F² + (‖Δt‖/4)²), the rest the correlation loss;
    --max-angle: no training or validation pair turns by more than it."""
    from cryoforge.align.gumnet import SHIFT_SCALE, supervised_loss
    from cryoforge.align.train import GumNetTrainer
    from cryoforge.align.warp import params_to_pose

    net = GumNetConfig.preset("tiny", rotation="6d")
    train = TrainConfig(batch=2, val_pairs=4, snrs=[100.0, 0.1], supervised_steps=2, max_angle=30.0,
                        curriculum_steps=0)
    t = GumNetTrainer(net, train, maps.numpy()[:2])
    assert t.training_range(5)[0] == 30.0
    for *_, rot, _ in t.validation_set():
        assert float(rotation_angle_deg(rot, torch.eye(3).expand_as(rot)).max()) <= 30.0 + 1e-3
    # the loss by hand, for the untrained network (the identity)
    _, s_a, s_b, rot, sh = t.validation_set()[0]
    r, s = params_to_pose(t.model(s_a, s_b), 32, "6d")
    expected = (((r - rot) ** 2).sum((-2, -1)) + ((s - sh) ** 2).sum(-1) / SHIFT_SCALE ** 2).mean()
    assert torch.allclose(supervised_loss(t.model, s_a, s_b, rot, sh), expected)
    res = drive(train_gumnet_job(maps.numpy()[:2], net, train, Schedule(steps=4, validate_every=4, metrics_every=1,
                                                                          checkpoint_every=4), tmp_path / "g.pt"))
    steps = [h for h in res.history if "supervised" in h]
    assert [h["supervised"] for h in steps] == [1.0, 1.0, 0.0, 0.0]
    assert all(h["max_angle_deg"] == 30.0 for h in steps) and res.metrics["pairs_seen"] == 8
    # the supervised loss is on the scale of ‖ΔR‖_F² (≤ 8), the correlation loss on 1 − r (≤ 2)
    assert load_gumnet(tmp_path / "g.pt").cfg.rotation == "6d"
