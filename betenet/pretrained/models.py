"""The feature models: a universal potential whose interaction layers give each atom a vector of
invariant features, read from one forward pass (no forces, no phonons).

* ``sevennet`` — SevenNet-0 (11Jul2024; e3nn, 5 interaction blocks, 5 Å cutoff, 89 elements). The
  output of block ``b`` (after its gate) has irreps ``128x0e+64x1e+32x2e`` for b < 4 and ``128x0e``
  for the last block, b = 4 (= -1).
* ``sevennet_l3i5`` — SevenNet-l3i5 (l ≤ 3, 5 blocks): ``128x0e+64x1e+32x2e+32x3e`` for b < 4, ``128x0e``
  for the last.
* ``chgnet`` — CHGNet 0.3.0: the 64 atom features after its last graph convolution (``atom_fea``);
  one layer only (``layers: [-1]``).

Features per atom: for every chosen layer its scalar (0e) channels, and with ``norms`` the Euclidean
norm of every l > 0 channel (rotation invariant). Both weights files ship inside the wheels
(``sevenn``, ``chgnet``): nothing is downloaded. :data:`FEATURE_MODELS` is the one table of widths,
checked against the loaded models by ``tests/test_pretrained.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from betenet.errors import InputError
from betenet.phonons.potentials import POTENTIALS, PotentialUnavailable, get_potential


@dataclass(frozen=True)
class FeatureModel:
    """A registered feature model: the potential it reads (``betenet.phonons.potentials``) and the
    irreps of each interaction block's output (index = block)."""

    name: str
    potential: str
    checkpoint: str | None  # sevenn's constant naming the checkpoint in its wheel; None for CHGNet
    block_irreps: tuple[str, ...]
    description: str

    def resolve_layers(self, layers) -> tuple[int, ...]:
        """Block indices (negative from the end) → sorted non-negative indices; refuses out-of-range ones."""
        n = len(self.block_irreps)
        out = set()
        for layer in layers:
            k = int(layer)
            if not -n <= k < n:
                raise InputError(f"features.layers={list(layers)}", f"{self.name} has blocks 0..{n - 1} (or -{n}..-1)")
            out.add(k % n)
        if not out:
            raise InputError("features.layers", "choose at least one block")
        return tuple(sorted(out))

    def layer_width(self, block: int, norms: bool) -> int:
        """Features one block gives per atom: its scalar channels, plus one norm per l > 0 channel."""
        from e3nn import o3

        irreps = o3.Irreps(self.block_irreps[block])
        scalars = sum(mul for mul, ir in irreps if ir.l == 0)
        return scalars + (sum(mul for mul, ir in irreps if ir.l > 0) if norms else 0)

    def version(self) -> str:
        return POTENTIALS[self.potential].version() + ("" if self.checkpoint is None else f", {self.checkpoint}")

    def load(self, device: str = "cpu"):
        """The extractor: a callable ``structure -> {block: [n_atoms, irreps dim] array}``."""
        get_potential(self.potential)
        if self.potential == "chgnet":
            return _CHGNetExtractor(device)
        return _SevenNetExtractor(self.checkpoint, device)


def _sevenn_checkpoint(name: str) -> str:
    import os

    try:
        from sevenn import _const
    except ImportError as exc:
        raise PotentialUnavailable("features", f"need the sevenn package ({exc}); install it with "
                                   "pip install 'betenet[phonons]'") from None
    path = getattr(_const, name)
    if not os.path.isfile(path):
        raise PotentialUnavailable("features", f"checkpoint {name} missing from the sevenn wheel ({path})")
    return path


class _SevenNetExtractor:
    """Runs a SevenNet model block by block up to the last block asked for, keeping each gate's output."""

    def __init__(self, checkpoint: str, device: str):
        from betenet.phonons.potentials import _quiet

        with _quiet():
            from sevenn.calculator import SevenNetCalculator

            self.calc = SevenNetCalculator(_sevenn_checkpoint(checkpoint), device=device)
        self.model = self.calc.model.eval()
        self.device = device
        self.elements = POTENTIALS["sevenn"].elements(self.calc)

    def __call__(self, structure, blocks: tuple[int, ...]) -> dict[int, np.ndarray]:
        import torch
        from pymatgen.io.ase import AseAtomsAdaptor
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        atoms = AseAtomsAdaptor.get_atoms(structure)
        data = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.calc.cutoff, with_shift=False))
        data.to(self.device)
        out, last = {}, max(blocks)
        with torch.no_grad():
            data = self.model._preprocess(data)
            for name, module in self.model._modules.items():
                data = module(data)
                if name.endswith("_equivariant_gate"):
                    block = int(name.split("_")[0])
                    if block in blocks:
                        out[block] = data["x"].detach().cpu().double().numpy()
                    if block == last:
                        break
        return out


class _CHGNetExtractor:
    def __init__(self, device: str):
        from betenet.phonons.potentials import _quiet

        with _quiet():
            from chgnet.model import CHGNet

            self.model = CHGNet.load(model_name="0.3.0", use_device=device, verbose=False)
        from ase.data import chemical_symbols

        n = int(self.model.atom_embedding.embedding.num_embeddings)
        self.elements = frozenset(chemical_symbols[1 : n + 1])

    def __call__(self, structure, blocks: tuple[int, ...]) -> dict[int, np.ndarray]:
        from betenet.phonons.potentials import _quiet

        with _quiet():
            result = self.model.predict_structure(structure, return_atom_feas=True, task="e")
        return {0: np.asarray(result["atom_fea"], dtype=float)}


FEATURE_MODELS: dict[str, FeatureModel] = {
    m.name: m
    for m in (
        FeatureModel("sevennet", "sevenn", "SEVENNET_0_11Jul2024", ("128x0e+64x1e+32x2e",) * 4 + ("128x0e",),
                     "SevenNet-0 (11Jul2024): 5 e3nn interaction blocks, trained on MPtrj (PBE), 89 elements"),
        FeatureModel("sevennet_l3i5", "sevenn", "SEVENNET_l3i5", ("128x0e+64x1e+32x2e+32x3e",) * 4 + ("128x0e",),
                     "SevenNet-l3i5: 5 blocks with l <= 3, trained on MPtrj (PBE), 89 elements"),
        FeatureModel("chgnet", "chgnet", None, ("64x0e",),
                     "CHGNet 0.3.0: 64 atom features after the last graph convolution, elements up to Pu"),
    )
}


def get_feature_model(name: str) -> FeatureModel:
    try:
        return FEATURE_MODELS[name]
    except KeyError:
        raise InputError(f"features.model={name!r}", f"unknown; use one of {', '.join(FEATURE_MODELS)}") from None


def invariants(array: np.ndarray, irreps: str, norms: bool) -> np.ndarray:
    """[n, width] invariant features of [n, irreps dim] e3nn features: the 0e channels, then (``norms``)
    the norm of every l > 0 channel, in the irreps' order."""
    from e3nn import o3

    irreps = o3.Irreps(irreps)
    if array.shape[1] != irreps.dim:
        raise ValueError(f"features of width {array.shape[1]} do not match irreps {irreps} ({irreps.dim})")
    scalars, vectors = [], []
    for (mul, ir), part in zip(irreps, irreps.slices()):
        block = array[:, part].reshape(len(array), mul, ir.dim)
        if ir.l == 0:
            scalars.append(block[:, :, 0])
        elif norms:
            vectors.append(np.linalg.norm(block, axis=2))
    return np.concatenate(scalars + vectors, axis=1)
