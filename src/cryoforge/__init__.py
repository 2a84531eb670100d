"""cryoforge — the headless torch engine of the cryoforge viewer plugin (no GUI imports, ever).

Conventions for axes, units and rotations: :mod:`cryoforge.conventions`.
"""

__version__ = "0.1.0"
