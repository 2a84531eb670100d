"""napari-cryoforge: the viewer layer over the cryoforge engine.

Readers, writers, sample data and dock widgets only gather parameters, start engine jobs in a worker
thread and show what the jobs yield. Nothing heavy (torch, matplotlib, Qt) is imported here.
"""

__version__ = "0.1.0"
