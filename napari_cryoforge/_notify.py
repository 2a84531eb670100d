"""User-facing messages: one clear line in napari's notification area, never a traceback."""

from __future__ import annotations


def report_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def report_warning(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


def report_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


def describe(err: BaseException) -> str:
    """A one-line description of ``err`` without the traceback."""
    lines = str(err).strip().splitlines()
    return lines[0][:500] if lines else type(err).__name__
