"""Tests of :mod:`cryoforge.manifold.live`."""

from cryoforge.manifold.live import LatestOnly


def test_latest_only_drops_stale_requests():
    started = []
    live = LatestOnly(started.append)
    for i in range(10):
        live.submit(i)  # the first starts, the rest arrive while it runs
    assert started == [0] and live.pending == 9 and live.dropped == 8
    live.done()
    assert started == [0, 9] and live.pending is None
    live.done()
    live.submit(10)
    assert started == [0, 9, 10]
