"""``cryoforge view``: open napari with the plugin docked (added to the engine CLI by entry point)."""

from __future__ import annotations

from ._camera import camera

PLUGIN = "napari-cryoforge"


DOCKS = ("Volume inspector", "Simulate", "Align & average", "Hypothesis test", "Latent explorer", "Multi-CryoGAN",
         "Subtomogram QA", "Template matching")


def open_viewer(files=(), sample: bool = False, show: bool = True, layout: str = "auto"):
    """``(viewer, inspector, simulate, align, hyptest, explorer, mcgan, qa, match)``: napari with the plugin's docks
    (:data:`DOCKS`, tabbed), ``files`` opened, optionally the sample data (phantom + half maps, subtomogram pairs,
    known-complex subtomograms, AdK true states; :func:`open_samples`). ``layout`` (``volume``, ``stack``) overrides the reader's
    volume-or-stack rule (:mod:`cryoforge.io.mrc`)."""
    import napari

    viewer = napari.Viewer(title="cryoforge", show=show)
    if sample:
        open_samples(viewer)
    for f in files:
        if layout == "auto":
            viewer.open(str(f), plugin=PLUGIN)
            continue
        from ._reader import read_mrc_layers

        for layer in read_mrc_layers(str(f), layout=layout):
            if layer[0] is not None:
                viewer.add_image(layer[0], **layer[1])
    docks = []
    for k, name in enumerate(DOCKS):
        frame, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=k > 0)
        frame.setWindowTitle(name.replace("&", "&&"))  # the tab says "Align & average", not "… (napari-cryoforge)"
        docks.append(widget)
    freeze_startup_objects()
    return (viewer, *docks)


def open_samples(viewer) -> None:
    """The plugin's sample data that share a viewer: maps and volumes (z, y, x in Å) and the stacks of volumes
    ``(N, Z, Y, X)``, whose index axes line up with one another; the phantom shown, the rest hidden. The AdK particle
    images ``(N, Y, X)`` are not opened here: napari lines up axes from the right, so their particle index would
    share the volumes' z slider in Å (File ▸ Open Sample ▸ napari-cryoforge ▸ AdK particles opens them)."""
    import numpy as np

    from ._sample_data import adk_particles

    for data, kwargs, _ in adk_particles():
        if np.ndim(data) == 4:  # the true states, volumes
            viewer.add_image(data, **kwargs)
    for key in ("known_subtomograms", "subtomograms"):  # the pairs last: their "pair" names the index slider
        viewer.open_sample(PLUGIN, key)
    viewer.open_sample(PLUGIN, "phantom")
    focus_layer(viewer, "phantom")


def freeze_startup_objects() -> None:
    """Leave what exists after startup out of the interpreter's full garbage collections (``gc.freeze``).

    ``cryoforge view --sample`` holds ≈ 615 000 tracked objects (napari, Qt, torch, the docks) and each full
    collection scanned all of them: 345 ms during which the GUI cannot answer, at moments no one chooses (measured
    2026-11-30 on the 2-core machine; 0 ms once frozen). Objects made later are collected as usual."""
    import gc

    gc.collect()
    gc.freeze()


def focus_layer(viewer, name: str) -> None:
    """Show only layer ``name`` (the others stay open, hidden), select it, and put every slider on its centre: the
    first screen shows a molecule, not the noise of the subtomogram samples or an empty plane outside it."""
    if name not in viewer.layers:
        return
    layer = viewer.layers[name]
    for ly in viewer.layers:
        ly.visible = ly is layer
    viewer.layers.selection.active = layer
    centre_view(viewer, layer)


def centre_view(viewer, layer) -> None:
    """Sliders on ``layer``'s centre, the camera centred on it and zoomed to fit it (hidden layers of other sizes
    and the index axes of stacks no longer decide what the canvas shows)."""
    import numpy as np

    lo, hi = (np.asarray(v, float) for v in layer.extent.world)
    offset = viewer.dims.ndim - layer.ndim
    for axis in range(layer.ndim):
        viewer.dims.set_point(offset + axis, (lo[axis] + hi[axis]) / 2)
    viewer.reset_view()  # fits every layer's extent, the hidden ones too: then centre and zoom on this one
    nd = viewer.dims.ndisplay
    size = float(np.max((hi - lo)[-nd:]))
    camera(viewer).center = tuple((lo + hi)[-nd:] / 2)
    canvas = np.asarray(getattr(viewer, "_canvas_size", (600, 600)), float)
    if size > 0 and canvas.min() > 1:
        camera(viewer).zoom = 0.8 * float(canvas.min()) / size


FLAG_DOCKS = ("fsc", "simulate", "align", "hyptest", "explore", "mcgan", "qa", "match")  # each flag's dock, DOCKS order


def front_dock(args, docks) -> object | None:
    """Bring to the front the dock of the last flag given (``--fsc``: the Volume inspector, ``--simulate``,
    ``--align``, ``--hyptest``, ``--explore``, ``--mcgan``, ``--qa``, ``--match``); without one, the Volume inspector. ``docks``
    in ``open_viewer``'s order (:data:`DOCKS`). Returns the dock raised."""
    chosen = docks[0]
    for flag, dock in zip(FLAG_DOCKS, docks, strict=True):
        if getattr(args, flag, None):
            chosen = dock
    from qtpy.QtCore import QTimer

    def show():
        chosen.parentWidget().raise_()
        whole_tab_titles(chosen)

    show()
    QTimer.singleShot(0, show)  # again once the loop runs: adding the samples re-tabs the docks
    return chosen


def whole_tab_titles(dock) -> None:
    """The main window's dock tab bars show whole titles ("Simulate", not "Si…"), scrolling when they do not fit."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QTabBar

    window = dock.window()
    for bar in window.findChildren(QTabBar):
        bar.setElideMode(Qt.TextElideMode.ElideNone)
        bar.setUsesScrollButtons(True)


def _cmd_view(args) -> int:
    import napari

    if args.particles and len(args.files) != 1:
        raise ValueError("--particles needs the one tomogram they belong to: cryoforge view TOMO.mrc --particles LIST")
    if args.match and len(args.files) != 2:
        raise ValueError("--match needs a tomogram and a template: cryoforge view TOMO.mrc TEMPLATE.mrc --match")
    viewer, dock, sim, align, hyp, explorer, mcgan, qa, match = open_viewer(
        args.files, sample=args.sample or not (args.files or args.explore), layout=args.layout)
    front_dock(args, (dock, sim, align, hyp, explorer, mcgan, qa, match))
    if args.particles:
        _qa(viewer, qa, args)
    if args.match:
        _match(viewer, match, args)
    if args.three_d:
        viewer.dims.ndisplay = 3
        if "phantom" in viewer.layers:
            focus_layer(viewer, "phantom")  # again: centred in the 3-D view
        camera(viewer).angles = (15, -35, 60)
    if args.fsc:
        dock.compute_fsc()
    if args.simulate:
        sim.update_preview()
        if sim.preview_job is not None:  # then show the simulated subtomogram alone, centred
            sim.preview_job.when_shown(lambda: focus_layer(viewer, "sim: subtomogram"))
    if args.align:
        if "s_a (no wedge)" in viewer.layers:
            viewer.dims.set_current_step(0, 1)  # pair 1 of the sample: 4V5D (asymmetric)

        def focus(_result):
            for layer in viewer.layers:  # show the alignment only: s_a (gray) under the aligned s_b (magenta)
                layer.visible = layer.name in ("align: s_a", "align: aligned s_b")
            if "align: s_a" in viewer.layers:
                centre_view(viewer, viewer.layers["align: s_a"])

        align.align_pair()
        if align.job is not None:
            align.job.when_shown(lambda: focus(None))
    if args.hyptest:
        layer = next((ly.name for ly in viewer.layers if ly.name.startswith("s_b known")), None)
        if layer:
            hyp.inputs.layer.setCurrentText(layer)
            viewer.dims.set_current_step(0, 0)

            def focus_hyp():
                try:  # give the canvas room: the dock's histogram does not need half the window
                    from qtpy.QtCore import Qt

                    viewer.window._qt_window.resizeDocks([hyp.parentWidget()], [600], Qt.Orientation.Horizontal)
                except (AttributeError, RuntimeError):
                    pass
                for ly in viewer.layers:  # the subtomogram (gray) and the best template fitted into it (red)
                    ly.visible = ly.name in ("hyptest: subtomogram", "hyptest: template")
                viewer.dims.ndisplay = 3
                camera(viewer).angles = (15, -35, 60)
                viewer.reset_view()

            hyp.test_one()
            if hyp.job is not None:
                hyp.job.when_shown(focus_hyp)
    explore_focus = None
    if args.explore:
        explore_focus = _explore(viewer, explorer, args.explore)
    if args.mcgan:
        _mcgan(viewer, mcgan)
    if args.screenshot:
        from qtpy.QtCore import QTimer

        def shoot():
            busy = [j for j in (dock.job, sim.preview_job, align.job, hyp.job, explorer.job, explorer.live_job,
                                qa.job, mcgan.job, match.job) if j is not None and j.running]
            align_pending = args.align and align.last_result is None and align.job is not None \
                and align.job.error is None  # a failed start or a failed job: shoot what is there
            if busy or (args.simulate and sim.last_preview is None) or align_pending \
                    or (args.hyptest and hyp.last_result is None) \
                    or (args.explore and explorer.path_z is not None and "explorer: path" not in viewer.layers) \
                    or (args.match and (match.found is None or (args.target and match.tests is None))
                        and match.job is not None and match.job.error is None):
                QTimer.singleShot(200, shoot)
                return
            if explore_focus is not None:  # again: the live decode may have added and selected its volume since
                explore_focus()
            viewer.screenshot(args.screenshot, canvas_only=False, flash=False)
            print(args.screenshot)
            viewer.close()

        viewer.window.resize(1500, 980)
        QTimer.singleShot(1500, shoot)
    napari.run()
    return 0


def _mcgan(viewer, mcgan) -> None:
    """``--mcgan``: train Multi-CryoGAN for 60 steps on the shipped AdK particles (32², about a minute on 2 cores;
    the checkpoint in cryoforge_output/ resumes), showing the live curves and the generator's volumes."""
    import tempfile
    from pathlib import Path

    mcgan.training.steps.setValue(60)
    mcgan.training.checkpoint.setText(str(Path(tempfile.mkdtemp(prefix="cryoforge_mcgan_")) / "multicryogan.pt"))
    mcgan.train()

    def focus():
        for ly in viewer.layers:  # the generator's central slices along α
            ly.visible = ly.name.startswith("mcgan:") and "slices" in ly.name
        shown = [ly for ly in viewer.layers if ly.visible]
        if shown:
            centre_view(viewer, shown[0])

    if mcgan.job is not None:
        mcgan.job.when_shown(focus)


def _match(viewer, match, args) -> None:
    """``--match``: match the template (the second file) over the tomogram (the first) at ``--angular-step``, ±60°;
    with ``--target NAME`` then test every candidate against the shipped known set; the strongest candidate shown."""
    from pathlib import Path

    tomo, template = (Path(f).stem for f in args.files)
    match.inputs.tomogram.setCurrentText(tomo)
    match.inputs.template.setCurrentText(template)
    match.inputs.angular_step.setValue(args.angular_step)
    match.inputs.decoys.setValue(0)
    if template in viewer.layers:
        viewer.layers[template].visible = False
    if args.target:
        match.test.target.setCurrentText(args.target)
        if match.test.target.currentText() != args.target:
            raise ValueError(f"--target {args.target}: not among the shipped known templates "
                             f"({', '.join(match.test.target.itemText(i) for i in range(match.test.target.count()))})")

    def strongest():
        if match.found is not None:
            match.select(int(match.found.particles.table["rlnLCCmax"].to_numpy().argmax()))

    def matched():
        strongest()
        if args.target:
            match.test_candidates()
            if match.job is not None:
                match.job.when_shown(strongest)

    match.run()
    if match.job is not None:
        match.job.when_shown(matched)


def _qa(viewer, qa, args) -> None:
    """``--particles LIST``: show them on the tomogram in the Subtomogram QA dock; with ``--qa`` also extract,
    average with the list's poses and score (seconds), then show the best particle."""
    from pathlib import Path

    qa.inputs.tomogram.setCurrentText(Path(args.files[0]).stem)
    qa.inputs.particles.setText(str(args.particles))
    qa.inputs.box.setValue(args.box)
    if not qa.load_particles():
        return
    tomogram = viewer.layers[qa.inputs.tomogram.currentText()]
    for ly in viewer.layers:
        ly.visible = ly is tomogram or ly.name.startswith("qa: particles") or ly.name.startswith("qa: orientations")
    centre_view(viewer, tomogram)
    if args.qa:
        qa.run()


def _explore(viewer, explorer, spec: str):
    """Open ``spec`` in the Latent explorer; for the shipped WGAN walk proteasome → ribosome (seed 000's figure).
    Returns what shows the path (alone, selected: the layer controls are the path's), or None."""
    if not explorer.load(spec):
        return None
    m = explorer.manifold
    labels = m.data_labels or []
    ends = [labels.index(n) for n in ("proteasome", "ribosome") if n in labels]
    if len(ends) < 2 and m.data_latents is not None and len(m.data_latents) > 1:
        ends = [0, len(m.data_latents) - 1]
    for i in ends:
        explorer.add_waypoint(m.data_latents[i])
    for ly in viewer.layers:
        ly.visible = ly.name.startswith("explorer:")
    viewer.dims.ndisplay = 3
    camera(viewer).angles = (15, -35, 60)
    explorer.display.iso.setChecked(True)
    explorer.display.threshold.setValue(0.3)
    explorer.display.colormap.setCurrentText("cyan")
    if len(ends) == 2:
        explorer.paths.frames.setValue(12)
        explorer.preview_path()

        def focus():
            for ly in viewer.layers:
                ly.visible = ly.name == "explorer: path"
            if "explorer: path" in viewer.layers:  # on top and selected: the layer controls show its iso value
                path = viewer.layers["explorer: path"]
                viewer.layers.move(viewer.layers.index(path), len(viewer.layers))
                viewer.layers.selection.active = path
            explorer._style()  # the dock's iso value is now the path's
            viewer.dims.set_current_step(0, 6)
            viewer.reset_view()

        if explorer.job is not None:
            explorer.job.when_shown(focus)
        return focus
    return None


def register(subparsers) -> None:
    """Add ``cryoforge view`` to the CLI (the ``cryoforge.commands`` entry point)."""
    p = subparsers.add_parser("view", help="open napari with the cryoforge plugin docked (--sample: sample data)")
    p.add_argument("files", nargs="*", help="MRC/MRCS/MAP/REC files to open")
    p.add_argument("--as", dest="layout", choices=["auto", "volume", "stack"], default="auto",
                   help="open the files as volumes or image stacks (default auto: the rule in cryoforge.io.mrc)")
    p.add_argument("--sample", action="store_true", help="load the sample phantom and half maps (default with no files)")
    p.add_argument("--fsc", action="store_true", help="compute the FSC of the first two maps on start")
    p.add_argument("--simulate", action="store_true", help="run the Simulate dock's preview on start")
    p.add_argument("--align", action="store_true", help="align the shown subtomogram pair on start (Align & average)")
    p.add_argument("--hyptest", action="store_true",
                   help="test the first known-complex subtomogram on start (Hypothesis test dock)")
    p.add_argument("--explore", metavar="MODEL", nargs="?", const="wgan",
                   help="open MODEL (default: the shipped 3D-WGAN) in the Latent explorer and preview a path")
    p.add_argument("--mcgan", action="store_true",
                   help="train Multi-CryoGAN for 60 steps on the shipped AdK particles on start (a fresh checkpoint "
                        "in a temporary folder), with its live curves and volumes")
    p.add_argument("--particles", metavar="LIST",
                   help="the particles of the tomogram given (RELION 5/3/4 STAR, Dynamo .tbl, x y z text): shown as "
                        "points and orientations in the Subtomogram QA dock")
    p.add_argument("--qa", action="store_true",
                   help="Subtomogram QA dock in front; with --particles: extract, average with the list's poses and "
                        "score them on start")
    p.add_argument("--box", type=int, default=32, help="box of the subtomograms for --qa, voxels (default 32)")
    p.add_argument("--match", action="store_true",
                   help="with TOMO.mrc TEMPLATE.mrc: match the template over the tomogram on start (Template matching "
                        "dock, ±60°)")
    p.add_argument("--angular-step", type=float, default=20.0, help="degrees, for --match (default 20)")
    p.add_argument("--target", metavar="NAME",
                   help="with --match: then test every candidate with NAME (a shipped known template) the target")
    p.add_argument("--3d", dest="three_d", action="store_true", help="start in 3-D (volume rendering)")
    p.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window and quit")
    p.set_defaults(func=_cmd_view)
