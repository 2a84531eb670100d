"""Job protocol (events, cancel, atomic output, errors) and the cryoforge CLI."""

import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from cryoforge import cli
from cryoforge.io import atomic_path, write_mrc
from cryoforge.jobs import Cancelled, JobError, Metrics, Progress, Result, drive, run_cli
from cryoforge.phantom import blob_phantom, noisy_half_maps

SRC = Path(__file__).resolve().parents[2] / "src" / "cryoforge"


def writing_job(path, steps=5):
    """A job that writes its output atomically at the end of its steps."""
    with atomic_path(path) as tmp:
        for i in range(steps):
            tmp.write_text(f"partial {i}\n")
            yield Progress(i + 1, steps, f"step {i + 1}")
        yield Metrics({"loss": 0.25})
    yield Result(str(path))


def test_drive_returns_result_and_writes(tmp_path):
    events = []
    out = drive(writing_job(tmp_path / "out.txt"), events.append)
    assert out == str(tmp_path / "out.txt") and (tmp_path / "out.txt").exists()
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3, 4, 5]


def test_cancel_stops_at_next_yield_and_leaves_no_partial_file(tmp_path):
    cancel = threading.Event()
    seen = []

    def on_event(e):
        seen.append(e)
        if isinstance(e, Progress) and e.step == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        drive(writing_job(tmp_path / "out.txt", steps=100), on_event, cancel)
    assert len([e for e in seen if isinstance(e, Progress)]) == 2
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temp file


def test_job_exception_becomes_clear_error():
    def bad():
        yield Progress(0, 1)
        raise ZeroDivisionError("division by zero in shell 3")

    with pytest.raises(JobError, match="ZeroDivisionError: division by zero in shell 3"):
        drive(bad())


def test_run_cli_renders_progress_and_metrics(tmp_path):
    buf = io.StringIO()
    run_cli(writing_job(tmp_path / "o.txt"), stream=buf)
    text = buf.getvalue()
    assert "[" + "#" * 30 + "] 5/5 step 5" in text and "loss=0.25" in text


def test_cli_info_fsc_sample(tmp_path, capsys):
    assert cli.main(["sample", str(tmp_path), "--size", "32", "--snr", "2"]) == 0
    assert cli.main(["info", str(tmp_path / "phantom.mrc")]) == 0
    out = capsys.readouterr().out
    assert "(32, 32, 32)" in out and "x 2 Å" in out
    js = tmp_path / "fsc.json"
    png = tmp_path / "fsc.png"
    assert cli.main(["fsc", str(tmp_path / "phantom_half1.mrc"), str(tmp_path / "phantom_half2.mrc"),
                     "--json", str(js), "--plot", str(png), "--mask-radius", "24"]) == 0
    out = capsys.readouterr().out
    rep = json.loads(js.read_text())
    assert f"resolution at FSC=0.143: {rep['resolution_0.143_A']:.2f} Å" in out
    assert 4.0 <= rep["resolution_0.143_A"] < 30
    assert png.stat().st_size > 10_000


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "fake.mrc").write_text("not an mrc\n" * 50)
    assert cli.main(["info", str(tmp_path / "fake.mrc")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cryoforge info: error: fake.mrc: not a readable MRC file") and "Traceback" not in err
    write_mrc(tmp_path / "a.mrc", np.zeros((8, 8, 10)), 1.0)
    assert cli.main(["fsc", str(tmp_path / "a.mrc"), str(tmp_path / "a.mrc")]) == 2
    assert "cubic" in capsys.readouterr().err


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "cryoforge.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("info", "fsc", "sample", "view"):
        assert cmd in r.stdout


def test_engine_never_mentions_or_imports_gui_packages():
    for f in SRC.rglob("*.py"):
        text = f.read_text()
        assert "napari" not in text and "qtpy" not in text, f
    code = ("import sys, importlib, pkgutil, cryoforge\n"
            "for m in pkgutil.walk_packages(cryoforge.__path__, 'cryoforge.'): importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('napari', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'vispy', 'magicgui')]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_seed_same_result():
    a = noisy_half_maps(blob_phantom(16, 2.0, seed=1), 1.0, seed=2)
    b = noisy_half_maps(blob_phantom(16, 2.0, seed=1), 1.0, seed=2)
    np.testing.assert_array_equal(a[0], b[0])


class _SlowTrainable:
    """The smallest :class:`cryoforge.jobs.trainer.Trainable`: one linear layer, 20 ms per step."""

    kind = "toy"
    config = {"architecture_keys": []}

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
    res = drive(train_job(tr, 10_000, tmp_path / "toy.pt", validate_every=10_000, max_seconds=0.3))
    assert 5 <= res["step"] < 100  # ~15 steps of 20 ms, far from 10 000
    assert tr.validated == [res["step"]] and res["metrics"]["step_seen"] == res["step"]
    assert load_checkpoint(tmp_path / "toy.pt", kind="toy")["extra"]["step"] == res["step"]
