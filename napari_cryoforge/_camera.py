"""The viewer's camera across the napari versions the plugin supports: ``viewer.scene.camera`` from napari 0.9
(where ``viewer.camera`` is deprecated), ``viewer.camera`` before."""

from __future__ import annotations

from typing import Any


def camera(viewer: Any) -> Any:
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera
