"""Sample data: the engine's phantom density and two noisy half maps (computed, no download)."""

from __future__ import annotations

from ._reader import INDEX_UNIT

VOXEL_SIZE = 2.0


def phantom_with_half_maps():
    from cryoforge.phantom import blob_phantom, noisy_half_maps

    vol = blob_phantom(64, VOXEL_SIZE, seed=0)
    h1, h2 = noisy_half_maps(vol, snr=1.0, seed=1)
    rec = {"voxel_size": (VOXEL_SIZE,) * 3, "is_stack": False}
    common = {"scale": (VOXEL_SIZE,) * 3, "metadata": {"cryoforge": rec}, "units": ("angstrom",) * 3,
              "axis_labels": ("z", "y", "x")}
    return [
        (h1, {"name": "phantom half 1", "colormap": "gray", "visible": False, **common}, "image"),
        (h2, {"name": "phantom half 2", "colormap": "gray", "visible": False, **common}, "image"),
        (vol, {"name": "phantom", "colormap": "gray", **common}, "image"),
    ]


def sample_dir():
    """The shipped sample files (:func:`cryoforge.samples.sample_dir`)."""
    from cryoforge.samples import sample_dir as engine_sample_dir

    return engine_sample_dir()


def subtomogram_pairs():
    """200 simulated pairs (s_a without wedge, s_b with a 30° wedge) of 5 structures, with ground truth."""
    from cryoforge.sim.subtomo import read_pairs

    ds = read_pairs(sample_dir() / "subtomo_pairs")
    vs = ds.voxel_size
    rec = {"voxel_size": (vs,) * 3, "is_stack": False, "dataset": str(sample_dir() / "subtomo_pairs")}
    common = {"scale": (1.0, vs, vs, vs), "units": (INDEX_UNIT, "angstrom", "angstrom", "angstrom"),
              "axis_labels": ("pair", "z", "y", "x"), "colormap": "gray"}
    maps = {"scale": (1.0, vs, vs, vs), "units": common["units"], "axis_labels": ("structure", "z", "y", "x"),
            "colormap": "gray", "visible": False}
    return [
        (ds.maps, {"name": "structures (" + ", ".join(ds.structures) + ")", "metadata": {"cryoforge": rec}, **maps},
         "image"),
        (ds.s_a, {"name": "s_a (no wedge)", "metadata": {"cryoforge": rec}, **common}, "image"),
        (ds.s_b, {"name": "s_b (30° wedge)", "metadata": {"cryoforge": rec}, **common}, "image"),
    ]


def hyptest_subtomograms():
    """One subtomogram of each of the 15 known complexes (SNR 0.03, ±60°) and the known-template set."""
    from cryoforge.hyptest.templates import read_template_set
    from cryoforge.sim.subtomo import read_pairs

    d = sample_dir() / "hyptest" / "subtomos"
    ds = read_pairs(d)
    maps, names, vs = read_template_set(sample_dir() / "hyptest")
    rec = {"voxel_size": (vs,) * 3, "is_stack": False, "dataset": str(d)}
    common = {"scale": (1.0, vs, vs, vs), "units": (INDEX_UNIT, "angstrom", "angstrom", "angstrom"),
              "colormap": "gray"}
    return [
        (maps, {"name": "known templates (" + ", ".join(names) + ")", "axis_labels": ("template", "z", "y", "x"),
                "visible": False, "metadata": {"cryoforge": {"voxel_size": (vs,) * 3}}, **common}, "image"),
        (ds.s_b, {"name": "s_b known complexes, SNR 0.03", "axis_labels": ("subtomogram", "z", "y", "x"),
                  "metadata": {"cryoforge": rec}, **common}, "image"),
    ]


def adk_particles():
    """2000 particles of AdK along its closed→open path (64², 1.5 Å, SNR 0.1) and the two end states."""
    from cryoforge.io.mrc import read_mrc

    d = sample_dir() / "adk_continuous"
    stack, info = read_mrc(d / "particles.mrcs", mmap=True)
    states, sinfo = read_mrc(d / "states.mrc")
    ps = info.voxel_size[0]
    rec = {"voxel_size": (ps,) * 3, "is_stack": True, "path": str(d / "particles.mrcs"),
           "star": str(d / "particles.star")}
    return [
        (states, {"name": "AdK closed, open (true states)", "scale": (1.0, ps, ps, ps), "colormap": "gray",
                  "units": (INDEX_UNIT, "angstrom", "angstrom", "angstrom"), "axis_labels": ("state", "z", "y", "x"),
                  "metadata": {"cryoforge": {"voxel_size": (ps,) * 3}}, "visible": False}, "image"),
        (stack, {"name": "AdK particles", "scale": (1.0, ps, ps), "colormap": "gray",
                 "units": (INDEX_UNIT, "angstrom", "angstrom"), "axis_labels": ("particle", "y", "x"),
                 "metadata": {"cryoforge": rec}}, "image"),
    ]
