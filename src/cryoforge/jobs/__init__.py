"""Job protocol: a long job is a generator yielding typed events.

``Progress(step, total, message)``, ``Metrics(values)``, ``Preview(name, array, view)``, ``Log(message)``
and finally ``Result(value)``. Consumers — :func:`run_cli` for the terminal, the viewer plugin's worker
adapter for the GUI — render the events. Cancelling closes the generator at its
next yield (``GeneratorExit`` there), so a job that writes files with
:func:`cryoforge.io.atomic.atomic_path` leaves no partial file behind.
"""

from .events import Event, Log, Metrics, Preview, Progress, Result
from .runner import Cancelled, JobError, drive, run_cli, stage

__all__ = ["Event", "Log", "Metrics", "Preview", "Progress", "Result", "Cancelled", "JobError", "drive", "run_cli", "stage"]
