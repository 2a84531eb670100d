"""Multi-CryoGAN (seed 002): likelihood-free reconstruction of a conformation manifold from particle images.

A generator maps a latent point to a volume; a physics simulator (:mod:`.projector`) turns volumes into particle
images (projection at a uniform random pose, shift, CTF drawn from the data's CTFs, noise); a WGAN-GP critic
compares simulated with real images (:mod:`.train`). No poses are estimated and nothing is clustered. FSC
cross-conformation matrices and discrete proportions are in :mod:`.fsccc`.
Importing this package does not import torch (the CLI registers its commands from here); names load on first use.
"""

_EXPORTS = {"discrete_proportions": "fsccc", "fsc_area": "fsccc", "fsccc_matrix": "fsccc", "matrix_agreement": "fsccc",
            "Critic": "model", "Generator": "model", "McganConfig": "model", "project_fourier": "projector",
            "project_real": "projector", "McganManifold": "train", "train_mcgan_job": "train"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
