"""Tests of :mod:`napari_cryoforge._jobs`: a failing job reaches the user as one clear notification."""

import torch

from cryoforge.io import load_checkpoint, save_checkpoint
from cryoforge.jobs import Progress, Result
from napari_cryoforge._jobs import start_job
from tests.helpers import error_messages


def _load_model_job(path, kind):
    yield Progress(0, 1, "loading checkpoint")
    ck = load_checkpoint(path, kind=kind)
    yield Result(ck["kind"])


def test_wrong_checkpoint_kind_in_a_gui_job(make_napari_viewer, qtbot, tmp_path, notifications):
    make_napari_viewer()
    save_checkpoint(tmp_path / "gumnet.pt", "gumnet", {}, {"net": {"w": torch.zeros(2)}})
    handle = start_job(_load_model_job(tmp_path / "gumnet.pt", "wgan3d"), "Load WGAN")
    qtbot.waitUntil(lambda: not handle.running, timeout=10000)
    assert handle.result is None and handle.error is not None
    (msg,) = error_messages(notifications)
    assert msg == ("Load WGAN failed: gumnet.pt: is a 'gumnet' checkpoint, but a 'wgan3d' checkpoint is "
                   "needed here")
