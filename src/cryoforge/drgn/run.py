"""Open a trained cryoDRGN run (``config.yaml`` + ``weights.N.pkl`` [+ ``z.N.pkl``]) as a :class:`Manifold`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..io.pickles import load_pickles, load_weights, load_z
from ..latent import Manifold, ManifoldError
from .model import CoordinateDecoder, decode_volumes, ihtn_center, lattice_coords

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..hints import Device, PathLike, Tensorish



def load_config(path: PathLike) -> dict:
    """A cryoDRGN ``config.yaml`` (or the older ``config.pkl``) as a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such cryoDRGN config")
    if path.suffix == ".pkl":
        cfg = load_pickles(path, 1)[0]
    else:
        import yaml

        try:
            cfg = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:  # python tags (!!python/object …) land here: refused, nothing is built
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{path.name}: not a plain YAML cryoDRGN config ({first})") from None
    if not isinstance(cfg, dict) or "model_args" not in cfg or "lattice_args" not in cfg:
        raise ValueError(f"{path.name}: not a cryoDRGN config (needs model_args and lattice_args)")
    return cfg


def _epoch(p: Path) -> int:
    m = re.search(r"\.(\d+)\.pkl$", p.name)
    return int(m.group(1)) if m else 10 ** 9  # the final weights.pkl / z.pkl


def find_run_files(path: PathLike, config: PathLike | None = None,
                   z: PathLike | None = None) -> tuple[Path, Path, Path | None]:
    """``(weights, config, z)`` for a run directory or a weights file: the newest ``weights.N.pkl``, the
    ``config.yaml``/``config.pkl`` beside it (or ``<prefix>_config.yaml``), and the ``z`` file of the same epoch."""
    path = Path(path)
    if path.is_dir():
        weights = sorted(path.glob("weights*.pkl"), key=_epoch)
        if not weights:
            raise ManifoldError(f"{path}: no cryoDRGN weights*.pkl in this folder")
        path = weights[-1]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    folder, prefix = path.parent, path.name.split("weights")[0]
    if config is None:
        for name in (f"{prefix}config.yaml", f"{prefix}config.pkl", "config.yaml", "config.pkl"):
            if (folder / name).is_file():
                config = folder / name
                break
        else:
            raise ManifoldError(f"{path.name}: no config.yaml beside it; give the run's config")
    if z is None:
        m = re.search(r"weights(\.\d+)?\.pkl$", path.name)
        cand = folder / f"{prefix}z{m.group(1) or ''}.pkl" if m else None
        z = cand if cand is not None and cand.is_file() else None
    return path, Path(config), (Path(z) if z is not None else None)


def save_run(folder: PathLike, decoder: CoordinateDecoder, norm: Sequence[float] = (0.0, 1.0), epoch: int = 0,
             extra_state: dict | None = None,
             model_args: dict | None = None) -> tuple[Path, Path]:
    """Write ``decoder`` in cryoDRGN's run layout (``weights.N.pkl`` with ``decoder.*`` keys, ``config.yaml``), as
    :class:`DrgnManifold` reads it; returns ``(weights, config)``. Decoder only: cryoDRGN's own loader also wants
    the encoder's weights and arguments (pass them in ``extra_state`` / ``model_args``)."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"decoder.{k}": v for k, v in decoder.state_dict().items()}
    state.update(extra_state or {})
    weights = folder / f"weights.{epoch}.pkl"
    torch.save({"epoch": epoch, "model_state_dict": state}, weights)
    d = decoder
    cfg = {"lattice_args": {"D": d.D, "extent": 0.5, "ignore_DC": True},
           "dataset_args": {"norm": [float(norm[0]), float(norm[1])]},
           "model_args": {"zdim": d.zdim, "players": d.layers, "pdim": d.dim,
                          "domain": d.domain, "pe_type": d.pe_type, "pe_dim": d.enc_dim,
                          "activation": d.activation, "feat_sigma": d.feat_sigma, **(model_args or {})}}
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return weights, config


def build_decoder(cfg: dict) -> tuple[CoordinateDecoder, int]:
    """The decoder a config describes and its latent dimension (0 for a homogeneous ``train_nn`` run)."""
    m, lat = cfg["model_args"], cfg["lattice_args"]
    zdim = int(m.get("zdim") or 0)
    layers, dim = (m["players"], m["pdim"]) if "players" in m else (m["layers"], m["dim"])
    dec = CoordinateDecoder(lat["D"], zdim, layers, dim, m.get("domain", "fourier"), m.get("pe_type", "geom_lowf"),
                            m.get("pe_dim"), m.get("activation", "relu"), m.get("feat_sigma") or 0.5)
    return dec, zdim


def load_decoder_weights(dec: CoordinateDecoder, state: dict, het: bool, name: str) -> None:
    """Load cryoDRGN weights into ``dec``; a clear message when they do not fit the config."""
    if het:
        state = {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    if dec.pe_type == "none" and dec.domain == "hartley":  # cryoDRGN's bare ResidLinearMLP: no wrapper module
        state = {(k if k.startswith("decoder.") else f"decoder.{k}"): v for k, v in state.items()}
    own = dec.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [f"{k} is {tuple(state[k].shape)} in the weights but {tuple(v.shape)} for the config"
             for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    extra = [k for k in state if k not in own]
    if missing or wrong or extra:
        detail = "; ".join(wrong[:2] + [f"missing {k}" for k in missing[:2]] + [f"unexpected {k}" for k in extra[:2]])
        raise ManifoldError(f"{name}: the weights do not match the config (architecture differs): {detail}")
    dec.load_state_dict({k: v.float() for k, v in state.items()})


class DrgnManifold(Manifold):
    """A heterogeneous cryoDRGN model: ``decode(z)`` evaluates the decoder on the full lattice for many ``z`` at once."""

    kind = "cryodrgn"

    def __init__(self, path: PathLike, config: PathLike | None = None, z: PathLike | None = None,
                 voxel_size: float | None = None, device: Device = "cpu") -> None:
        super().__init__(device)
        weights, cfg_path, z_path = find_run_files(path, config, z)
        self.cfg = load_config(cfg_path)
        self.decoder, self.latent_dim = build_decoder(self.cfg)
        if self.latent_dim < 1:
            raise ManifoldError(f"{weights.name}: a homogeneous cryoDRGN model has no latent space to explore")
        ckpt = load_weights(weights)
        load_decoder_weights(self.decoder, ckpt["model_state_dict"], True, weights.name)
        self.decoder.to(self.device).eval()
        self.epoch = ckpt.get("epoch")
        lat = self.cfg["lattice_args"]
        self.D, self.extent = int(lat["D"]), float(lat.get("extent", 0.5))
        self.box = self.D - 1
        self.norm = tuple(float(x) for x in self.cfg.get("dataset_args", {}).get("norm", (0.0, 1.0)))
        recorded = voxel_size or self.cfg.get("dataset_args", {}).get("Apix")
        self.voxel_size_known = recorded is not None  # else 1 Å, as cryodrgn eval_vol's default --Apix
        self.voxel_size = float(recorded or 1.0)
        self.name = f"cryoDRGN {weights.parent.name}/{weights.name}"
        self.files = {"weights": str(weights), "config": str(cfg_path), "z": str(z_path) if z_path else None}
        self.z_logvar = None
        if z_path is not None:
            mu, self.z_logvar = load_z(z_path)
            if mu.shape[1] != self.latent_dim:
                raise ManifoldError(f"{z_path.name}: latent points have {mu.shape[1]} coordinates but the model's "
                                    f"zdim is {self.latent_dim}")
            self.data_latents = mu
            self.data_labels = [f"image {i}" for i in range(len(mu))]
        self.decode_batch = 16 if self.device.type == "cpu" else 64

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return decode_volumes(self.decoder, z, self.norm, self.extent)

    @torch.no_grad()
    def decode_slicewise(self, z: Tensorish) -> torch.Tensor:
        """The way ``cryodrgn eval_vol`` works: one forward pass per z-slice and per latent point (the speed baseline)."""
        z = self.check_z(z).to(self.device)
        k = lattice_coords(self.D, self.extent, self.device)
        out = []
        for zi in z:
            h = torch.stack([decode_hartley_plane(self.decoder, k[i], zi[None], self.extent) for i in range(self.D)])
            out.append(ihtn_center(h[None, :-1, :-1, :-1] * self.norm[1] + self.norm[0])[0])
        return torch.stack(out).cpu()


def decode_hartley_plane(dec: CoordinateDecoder, plane: torch.Tensor, z: torch.Tensor, extent: float) -> torch.Tensor:
    """Hartley values on one ``(D, D, 3)`` lattice plane (the slice-by-slice path). On the ``z = 0`` plane the
    Fourier domain mirrors the points after the centre, as cryoDRGN's ``forward`` does."""
    k = plane.reshape(-1, 3)
    flip = None
    if float(k[0, 2]) == 0.0:
        flip = torch.arange(len(k), device=k.device) > len(k) // 2
    return dec.hartley(k, z, extent, flip)[0].view(plane.shape[:2])
