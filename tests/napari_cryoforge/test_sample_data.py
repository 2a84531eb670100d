"""Tests of :mod:`napari_cryoforge._sample_data`."""



def test_sample_data_loads(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cryoforge", "phantom")
    assert [ly.name for ly in viewer.layers] == ["phantom half 1", "phantom half 2", "phantom"]
    for ly in viewer.layers:
        assert ly.data.shape == (64, 64, 64) and tuple(ly.scale) == (2.0, 2.0, 2.0)
    assert viewer.layers["phantom"].data.max() > 0.5
