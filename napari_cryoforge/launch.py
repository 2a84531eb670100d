"""``cryoforge view``: open napari with the plugin docked (added to the engine CLI by entry point)."""

from __future__ import annotations

PLUGIN = "napari-cryoforge"


def open_viewer(files=(), sample: bool = False, show: bool = True):
    """``(viewer, inspector, simulate, align)``: napari with the Volume inspector, Simulate and Align & average
    docks, ``files`` opened,
    optionally the sample data (phantom + half maps, subtomogram pairs, AdK particles)."""
    import napari

    viewer = napari.Viewer(title="cryoforge", show=show)
    if sample:
        for key in ("subtomograms", "adk_particles", "phantom"):
            viewer.open_sample(PLUGIN, key)
    for f in files:
        viewer.open(str(f), plugin=PLUGIN)
    _, inspector = viewer.window.add_plugin_dock_widget(PLUGIN, "Volume inspector")
    _, simulate = viewer.window.add_plugin_dock_widget(PLUGIN, "Simulate", tabify=True)
    _, align = viewer.window.add_plugin_dock_widget(PLUGIN, "Align & average", tabify=True)
    return viewer, inspector, simulate, align


def _cmd_view(args) -> int:
    import napari

    viewer, dock, sim, align = open_viewer(args.files, sample=args.sample or not args.files)
    if args.three_d:
        viewer.dims.ndisplay = 3
        viewer.camera.angles = (15, -35, 60)
    if args.fsc:
        dock.compute_fsc()
    if args.simulate:
        sim.update_preview()
    if args.align:
        align.parentWidget().raise_()
        if "s_a (no wedge)" in viewer.layers:
            viewer.dims.set_current_step(0, 1)  # pair 1 of the sample: 4V5D (asymmetric)

        def focus(_result):
            for layer in viewer.layers:  # show the alignment only: s_a (gray) under the aligned s_b (magenta)
                layer.visible = layer.name in ("align: s_a", "align: aligned s_b")
            viewer.reset_view()

        align.align_pair()
        if align.job is not None:
            align.job.worker.finished.connect(lambda: focus(None))
    if args.screenshot:
        from qtpy.QtCore import QTimer

        def shoot():
            busy = [j for j in (dock.job, sim.preview_job, align.job) if j is not None and j.running]
            if busy or (args.simulate and sim.last_preview is None) or (args.align and align.last_result is None):
                QTimer.singleShot(200, shoot)
                return
            viewer.screenshot(args.screenshot, canvas_only=False, flash=False)
            print(args.screenshot)
            viewer.close()

        viewer.window.resize(1500, 980)
        QTimer.singleShot(1500, shoot)
    napari.run()
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("view", help="open napari with the cryoforge plugin docked (--sample: sample data)")
    p.add_argument("files", nargs="*", help="MRC/MRCS/MAP/REC files to open")
    p.add_argument("--sample", action="store_true", help="load the sample phantom and half maps (default with no files)")
    p.add_argument("--fsc", action="store_true", help="compute the FSC of the first two maps on start")
    p.add_argument("--simulate", action="store_true", help="run the Simulate dock's preview on start")
    p.add_argument("--align", action="store_true", help="align the shown subtomogram pair on start (Align & average)")
    p.add_argument("--3d", dest="three_d", action="store_true", help="start in 3-D (volume rendering)")
    p.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window and quit")
    p.set_defaults(func=_cmd_view)
