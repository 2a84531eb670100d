"""File formats: MRC/MRCS maps and stacks, RELION STAR metadata, tomogram particle lists, checkpoints; atomic
writes."""

from .atomic import atomic_path
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .mrc import MrcError, MrcInfo, read_mrc, write_mrc
from .star import ParticleMetadata, read_particles_star, write_particles_star
from .tomo_particles import ParticleListError, TomoParticles, read_particle_list, write_dynamo, write_relion5

__all__ = [
    "atomic_path", "CheckpointError", "load_checkpoint", "save_checkpoint", "MrcError", "MrcInfo",
    "read_mrc", "write_mrc", "ParticleMetadata", "read_particles_star", "write_particles_star",
    "ParticleListError", "TomoParticles", "read_particle_list", "write_dynamo", "write_relion5",
]
