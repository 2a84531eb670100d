"""``python -m cryoforge``: the command line, also as ``torchrun --nproc-per-node N -m cryoforge …``."""

import sys

from .cli import main

sys.exit(main())
