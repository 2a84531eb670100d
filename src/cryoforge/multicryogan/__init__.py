"""Multi-CryoGAN (seed 002): likelihood-free reconstruction of a conformation manifold from particle images.

A generator maps a latent point to a volume; a physics simulator (:mod:`.projector`) turns volumes into particle
images (projection at a uniform random pose, shift, CTF drawn from the data's CTFs, noise); a WGAN-GP critic
compares simulated with real images (:mod:`.train`). No poses are estimated and nothing is clustered. FSC
cross-conformation matrices and discrete proportions are in :mod:`.fsccc`.
Importing this package does not import torch (the CLI registers its commands from here); names load on first use.
"""

from ..lazy import lazy_exports

_EXPORTS = {"discrete_proportions": "fsccc", "fsc_area": "fsccc", "fsccc_matrix": "fsccc", "matrix_agreement": "fsccc",
            "Critic": "model", "Generator": "model", "McganConfig": "config", "project_fourier": "projector",
            "project_real": "projector", "McganManifold": "train", "train_mcgan_job": "train"}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
