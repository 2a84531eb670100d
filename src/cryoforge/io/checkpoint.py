"""Checkpoints: ``torch.save`` of a plain dict, loaded with ``weights_only=True``.

Layout: ``{"format": "cryoforge-checkpoint", "format_version": 1, "kind": str, "cryoforge_version": str,
"config": dict, "state_dicts": {name: state_dict}, "metrics": dict, "extra": dict}``. Only tensors,
numbers, strings, lists and dicts go in, so loading never runs pickled code.

A trainer's config holds its configuration dataclasses as sections written by :func:`cryoforge.configs.to_dict`:
``{"architecture": {...}, "train": {...}, ...}`` beside the family's own keys (structures, voxel size, …);
:func:`config_section` reads one back as its dataclass. Format 1 kept the architecture's keys flat in the config
(listed under ``architecture_keys``), Multi-CryoGAN's training keys prefixed ``train_`` and cryoDRGN's and
Multi-CryoGAN's sampling as ``pixel_size``; such checkpoints are read into the format-2 layout on loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from ..configs import ConfigError, from_dict
from .atomic import atomic_path

if TYPE_CHECKING:
    from ..hints import Device, PathLike


FORMAT = "cryoforge-checkpoint"
FORMAT_VERSION = 2

T = TypeVar("T")


class CheckpointError(ValueError):
    """Not a cryoforge checkpoint, a newer format, or a checkpoint of another kind."""


def _cpu(obj):
    """``obj`` with every tensor (nested in dicts, lists, tuples: optimizer states) moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def save_checkpoint(path: PathLike, kind: str, config: dict, state_dicts: dict, metrics: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Save a checkpoint of ``kind`` (e.g. 'wgan3d', 'gumnet') atomically; tensors are stored on the CPU, so a
    checkpoint trained on a GPU opens anywhere."""
    from .. import __version__

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": str(kind),
        "cryoforge_version": __version__,
        "config": dict(config),
        "state_dicts": {k: _cpu(dict(v)) for k, v in state_dicts.items()},
        "metrics": dict(metrics or {}),
        "extra": dict(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: PathLike, kind: str | None = None, map_location: Device = "cpu") -> dict:
    """Load a checkpoint safely; with ``kind`` given, refuse one of another kind with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        from .pickles import refusal_reason

        raise CheckpointError(
            f"{path.name}: not a cryoforge checkpoint, or one holding objects other than plain "
            f"tensors/dicts that cannot be loaded safely ({refusal_reason(err)})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: not a cryoforge checkpoint (no '{FORMAT}' marker)")
    version = payload.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path.name}: checkpoint format {version} is newer than this cryoforge "
                              f"understands ({FORMAT_VERSION}); upgrade cryoforge")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path.name}: is a '{payload.get('kind')}' checkpoint, but a '{kind}' "
                              "checkpoint is needed here")
    if version < 2 and isinstance(payload.get("config"), dict):
        payload = {**payload, "config": _upgrade_config(payload["config"])}
    out = _Section(payload, path.name, "checkpoint")
    for key in ("config", "state_dicts", "metrics", "extra"):
        if isinstance(payload.get(key), dict):
            out[key] = _Section(payload[key], path.name, key)
    return out


def _upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """A format-1 config in the format-2 layout: the keys named by ``architecture_keys`` under ``architecture``,
    Multi-CryoGAN's ``train_*`` keys under ``train``."""
    keys = config.get("architecture_keys")
    if keys is None:
        return config
    out: dict[str, Any] = {"architecture": {k: config[k] for k in keys if k in config}}
    train = {k[len("train_"):]: v for k, v in config.items() if k.startswith("train_")}
    if train:
        out["train"] = train
    out.update({k: v for k, v in config.items()
                if k not in out["architecture"] and k != "architecture_keys" and not k.startswith("train_")})
    if "pixel_size" in out:  # format 2 names the decoded volumes' sampling voxel_size, as everywhere else
        out["voxel_size"] = out.pop("pixel_size")
    return out


def config_section(payload: dict, cls: type[T], section: str = "architecture") -> T:
    """The dataclass ``cls`` stored in a loaded checkpoint's config under ``section`` (see the module's text)."""
    config = payload["config"]
    if section not in config:
        raise CheckpointError(f"{getattr(config, 'file', 'checkpoint')}: its config has no {section!r} section: a "
                              "damaged checkpoint, or one written by other code")
    try:
        return from_dict(cls, config[section], where=f"the checkpoint's {section}")
    except ConfigError as err:
        raise CheckpointError(f"{getattr(config, 'file', 'checkpoint')}: {err}") from None


class _Section(dict):
    """A part of a loaded checkpoint: a key it lacks is a :class:`CheckpointError` naming the file, not a bare
    ``KeyError`` (a damaged checkpoint, or one of the right kind written by other code). ``save_checkpoint``
    stores plain dicts again."""

    def __init__(self, data: dict, file: str, section: str):
        super().__init__(data)
        self.file, self.section = file, section

    def __missing__(self, key):
        raise CheckpointError(f"{self.file}: its {self.section} has no {key!r}: a damaged checkpoint, or one written "
                              "by other code")


def export_checkpoint(src: PathLike, dst: PathLike, kind: str | tuple, half: bool = True) -> Path:
    """Write a slim copy of a training checkpoint: module weights only (fp16 by default), no optimizer state,
    validation history kept. Loaders cast weights back to float32; the copy cannot resume training."""
    payload = load_checkpoint(src)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if payload["kind"] not in kinds:
        raise CheckpointError(f"{Path(src).name}: a '{payload['kind']}' checkpoint, expected {' or '.join(kinds)}")
    states = {name: {k: (v.half() if half and v.is_floating_point() else v) for k, v in sd.items()}
              for name, sd in payload["state_dicts"].items() if not name.startswith("optimizer.")}
    extra = {k: v for k, v in payload["extra"].items() if k != "history"}
    extra.update({"exported_from": Path(src).name, "weights_dtype": "float16" if half else "float32",
                  "history": [h for h in payload["extra"].get("history", []) if any(k.startswith("val_") for k in h)]})
    return save_checkpoint(dst, payload["kind"], payload["config"], states, payload["metrics"], extra)
