"""Tests of :mod:`napari_cryoforge._jobs`: a failing job reaches the user as one clear notification; results are
shown a step per event-loop turn, and a job waits until what it yielded is shown."""

import torch

from cryoforge.io import load_checkpoint, save_checkpoint
from cryoforge.jobs import Log, Progress, Result
from napari_cryoforge._jobs import in_turns, start_job
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


def test_steps_run_one_per_turn_in_order(qtbot):
    from qtpy.QtCore import QTimer

    ran, ticks = [], []
    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(lambda: ticks.append(len(ran)))  # how many steps had run at each turn of the loop

    def steps(tag):
        for i in range(3):
            ran.append((tag, i))
            yield

    timer.start()
    in_turns(steps("a"))
    in_turns(steps("b"))
    assert ran == []  # nothing runs before the loop turns
    qtbot.waitUntil(lambda: len(ran) == 6, timeout=5000)
    timer.stop()
    assert ran == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert len(set(ticks) & {1, 2, 3, 4, 5}) >= 4  # the loop turned between the steps, not only around them


def test_a_job_waits_until_its_event_is_shown(make_napari_viewer, qtbot):
    make_napari_viewer()
    shown, resumed_after = [], []

    def job():
        yield Progress(0, 1, "")
        yield Log("one")
        resumed_after.append(list(shown))  # what the GUI had shown when the job went on
        yield Result(1)

    def show(event):
        if isinstance(event, Log):
            shown.append("drawn half")
            yield
            shown.append("drawn all")

    handle = start_job(job(), "lockstep", on_event=show)
    qtbot.waitUntil(lambda: not handle.running, timeout=10000)
    assert resumed_after == [["drawn half", "drawn all"]] and handle.result == 1
