"""Tests of :mod:`cryoforge.jobs.trainer`."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from cryoforge.io import write_mrc
from cryoforge.io.checkpoint import load_checkpoint
from cryoforge.jobs import Cancelled, drive, run_cli
from cryoforge.jobs.trainer import DEFAULT_SCHEDULE, Schedule, train_job


@dataclass(frozen=True)
class _ToyArchitecture:
    width: int = 2


class _SlowTrainable:
    """The smallest :class:`cryoforge.jobs.trainer.Trainable`: one linear layer, 20 ms per step."""

    kind = "toy"
    architecture = _ToyArchitecture()
    config = {"architecture": {"width": 2}}

    def __init__(self):
        import torch

        self.net = torch.nn.Linear(2, 1)
        self.modules = {"net": self.net}
        self.optimizers = {"net": torch.optim.SGD(self.net.parameters(), lr=0.1)}
        self.validated = []

    def train_step(self, step):
        import time

        time.sleep(0.02)
        return {"loss": 1.0 / step}

    def validate(self, step):
        self.validated.append(step)
        return {"step_seen": float(step)}, []


def test_training_time_limit_stops_validates_and_checkpoints(tmp_path):
    from cryoforge.io.checkpoint import load_checkpoint
    from cryoforge.jobs.trainer import train_job

    tr = _SlowTrainable()
    res = drive(train_job(tr, Schedule(steps=10000, validate_every=10000, max_seconds=0.3),
                          checkpoint=tmp_path / "toy.pt"))
    assert 5 <= res.step < 100  # ~15 steps of 20 ms, far from 10 000
    assert tr.validated == [res.step] and res.metrics["step_seen"] == res.step
    assert load_checkpoint(tmp_path / "toy.pt", kind="toy")["extra"]["step"] == res.step


class Toy:
    """A linear regression trained on data drawn from ``1000 + step``; ``signal_at`` sends a signal mid-step."""

    kind = "toy"

    def __init__(self, signal_at=None, signum=signal.SIGINT):
        g = torch.Generator().manual_seed(0)
        self.net = torch.nn.Linear(4, 1)
        with torch.no_grad():
            self.net.weight.copy_(torch.randn(1, 4, generator=g))
            self.net.bias.zero_()
        self.opt = torch.optim.Adam(self.net.parameters(), 1e-2)
        self.architecture = _ToyArchitecture(4)
        self.config = {"architecture": {"width": 4}}
        self.modules, self.optimizers = {"net": self.net}, {"opt": self.opt}
        self.signal_at, self.signum = signal_at, signum

    def train_step(self, step):
        g = torch.Generator().manual_seed(1000 + step)
        x = torch.randn(16, 4, generator=g)
        loss = ((self.net(x) - x.sum(1, keepdim=True)) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        if step == self.signal_at:
            os.kill(os.getpid(), self.signum)  # delivered here, between the gradient and the update
        self.opt.step()
        return {"loss": loss.item()}

    def validate(self, step):
        return {}, []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_step_saves_that_step_and_resume_matches(tmp_path, signum):
    ckpt = tmp_path / "toy.pt"
    with pytest.raises(Cancelled):
        run_cli(train_job(Toy(signal_at=4, signum=signum), Schedule(steps=10, checkpoint_every=1000, validate_every=0),
                          checkpoint=ckpt))
    assert load_checkpoint(ckpt)["extra"]["step"] == 4  # the step the signal landed in, finished
    resumed = Toy()
    run_cli(train_job(resumed, Schedule(steps=10, checkpoint_every=1000, validate_every=0), checkpoint=ckpt))
    straight = Toy()
    run_cli(train_job(straight, Schedule(steps=10, checkpoint_every=1000, validate_every=0),
                      checkpoint=tmp_path / "straight.pt"))
    for a, b in zip(resumed.net.parameters(), straight.net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_sigterm_to_a_cli_training_keeps_a_checkpoint_that_resumes(tmp_path):
    images = np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32)
    write_mrc(tmp_path / "p.mrcs", images, 3.0)
    rot = torch.linalg.qr(torch.randn(16, 3, 3, generator=torch.Generator().manual_seed(1)))[0]
    rot = rot * torch.det(rot).sign()[:, None, None]
    import pickle

    with open(tmp_path / "poses.pkl", "wb") as fh:
        pickle.dump(rot.numpy().astype(np.float32), fh)
    cmd = [sys.executable, "-m", "cryoforge.cli", "drgn", "train", str(tmp_path / "p.mrcs"), "--poses",
           str(tmp_path / "poses.pkl"), "--no-ctf", "--dim", "8", "--layers", "1", "--batch", "4",
           "--validate-every", "0", "--checkpoint", str(tmp_path / "m.pt")]
    proc = subprocess.Popen(cmd + ["--steps", "100000"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "step" not in proc.stderr.readline():
        pass  # the first progress line: training has started
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    assert "holds step" in err and "the same command resumes" in err
    step = load_checkpoint(tmp_path / "m.pt")["extra"]["step"]
    assert step >= 1
    done = subprocess.run(cmd + ["--steps", str(step + 2)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and f"resumed from m.pt at step {step}" in done.stderr
    assert load_checkpoint(tmp_path / "m.pt")["extra"]["step"] == step + 2


def test_a_schedule_takes_the_models_defaults_for_what_it_leaves_unset():
    model = Schedule(checkpoint_every=50, validate_every=50, metrics_every=5)
    s = Schedule(steps=7, validate_every=0).over(model)
    assert (s.steps, s.checkpoint_every, s.validate_every, s.metrics_every, s.resume) == (7, 50, 0, 5, True)
    assert Schedule().over(DEFAULT_SCHEDULE) == DEFAULT_SCHEDULE


def test_training_result_is_json_ready(tmp_path):
    import json

    res = drive(train_job(_SlowTrainable(), Schedule(steps=2, validate_every=2), checkpoint=tmp_path / "t.pt"))
    data = json.loads(json.dumps(res.to_json()))
    assert data["step"] == 2 and data["checkpoint"] == str(tmp_path / "t.pt") and data["metrics"] == {"step_seen": 2.0}
