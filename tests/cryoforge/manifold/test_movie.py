"""Tests of :mod:`cryoforge.manifold.movie`: the fallback renderer's annotations."""
def test_fallback_frames_name_their_planes_and_carry_a_scale_bar():
    import numpy as np

    from cryoforge.manifold.movie import render_fallback, scale_bar_length

    assert [scale_bar_length(e) for e in (384, 96, 1000, 40)] == [100, 20, 200, 10]
    vols = np.zeros((1, 16, 16, 16), np.float32)
    plain = next(render_fallback(vols, "slices", scale=8))
    named = next(render_fallback(vols, "slices", scale=8, titles=["t"]))
    barred = next(render_fallback(vols, "slices", scale=8, titles=["t"], voxel_size=12.0))
    assert plain.max() == 0  # an empty volume: a black frame
    bottom = slice(named.shape[0] - 20, named.shape[0])
    for k in range(3):  # each panel's plane name, yellow, at its bottom left
        panel = named[bottom, k * 18 * 8:k * 18 * 8 + 40]
        assert ((panel[..., 0] > 150) & (panel[..., 2] < 100)).any()
    first = barred[barred.shape[0] - 12:barred.shape[0] - 5, :18 * 8]  # the white bar in the first panel
    white = (first.min(-1) > 200).any(0)
    assert 10 <= white.sum() <= 18 * 8 and not ((named[barred.shape[0] - 12:barred.shape[0] - 5, :18 * 8].min(-1) > 200).any())
