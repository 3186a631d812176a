"""Build the periodic crystal graph the network reads: neighbours within r_max, node inputs/attributes.

Edges come from pymatgen's ``Structure.get_neighbor_list`` (periodic images included), plus one
self-edge i→i with zero vector per atom when ``self_loops`` (as the release, which called ASE's
``neighbor_list(..., self_interaction=True)``). Edge k runs from ``edge_index[0, k]`` (source) to
``edge_index[1, k]`` (destination); its vector is

    edge_vec = pos[dst] - pos[src] + edge_shift @ lattice        (Å)

i.e. from the source atom to the destination atom's periodic image ``edge_shift`` (integer cell
offsets). Edges are sorted by (src, dst, shift), so the graph is deterministic.

Node encodings (as the release's ``build_data``): the blocks of the registered node attributes
(:mod:`betenet.data.attributes`, where each is registered with its width), in column order:

* CSO: ``x`` = one-hot(Z) × atomic mass (amu) [n, 118]; ``attr`` = one-hot(Z) [n, 118].
* CPD/FPD (``site_dos`` [n, 51] given): ``attr`` = [one-hot(Z), site PhDOS] [n, 169] and
  ``x`` = [one-hot(Z) × mass, 51 ones] [n, 169]. The network embeds x and attr with the same Linear
  layer, so both carry the same width.
* Pretrained site features (``features`` [n, F] given, :mod:`betenet.pretrained`) sit between the
  one-hot block and the PhDOS in both: ``attr`` = [one-hot(Z), features, site PhDOS] and ``x`` =
  [one-hot(Z) × mass, features, ones], so the PhDOS stay the last columns (the coupling head reads them there).
* Any other registered attribute (``attributes={name: [n, w]}``) goes where its ``position`` puts it.
"""

from __future__ import annotations

import numpy as np
import torch
from pymatgen.core import Structure
from torch_geometric.data import Data

from betenet.data.attributes import node_vectors
from betenet.data.spectra import validate_binned
from betenet.data.structures import validate_structure
from betenet.errors import InputError
from betenet.physics.units import N_BINS

#: Default neighbour cutoff (Å), paper Methods.
R_MAX_DEFAULT = 4.0

def structure_to_graph(
    structure: Structure,
    r_max: float = R_MAX_DEFAULT,
    self_loops: bool = True,
    site_dos=None,
    y=None,
    id=None,
    *,
    allow_isolated: bool = False,
    dtype: torch.dtype | None = None,
    n_bins: int = N_BINS,
    features=None,
    attributes=None,
) -> Data:
    """Return the graph of ``structure`` as a ``torch_geometric.data.Data``.

    Attributes: ``pos`` [n,3], ``lattice`` [1,3,3], ``edge_index`` [2,E] (long), ``edge_shift``
    [E,3], ``edge_vec`` [E,3], ``x`` (node inputs), ``attr`` (node attributes; see module doc),
    ``y`` [1, n_bins] when given, ``id`` and ``formula`` (reduced). ``site_dos`` and ``y`` must already be
    binned (``n_bins`` bins, ≥ 0); ``attributes`` maps other registered node attributes to their values.

    An atom with no neighbour within ``r_max`` other than itself raises ``InputError`` unless
    ``allow_isolated`` (then it keeps only its self-edge, as the release did for e.g. bcc Cs at 4 Å).
    Atoms closer than half the sum of their covalent radii raise ``InputError``
    (:mod:`betenet.data.plausibility`). ``dtype`` defaults to torch's default.
    """
    label = "structure" if id is None else str(id)
    if r_max <= 0:
        raise ValueError(f"r_max must be positive, got {r_max}")
    dtype = dtype or torch.get_default_dtype()
    validate_structure(structure, label)  # non-empty, ordered, real elements, 3-D cell, no overlapping atoms
    n = len(structure)

    src, dst, shift = _neighbours(structure, r_max)
    lonely = np.flatnonzero(np.bincount(src, minlength=n) == 0)
    if lonely.size and not allow_isolated:
        k = int(lonely[0])
        raise InputError(
            label,
            f"atom {k} ({structure[k].specie.symbol}) has no neighbour within {r_max} Å "
            "(the data setting allow_isolated=true keeps it with only its self-edge, as the release did)",
        )
    if self_loops:
        idx = np.arange(n)
        src, dst = np.concatenate([src, idx]), np.concatenate([dst, idx])
        shift = np.concatenate([shift, np.zeros((n, 3), dtype=int)])
    order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], dst, src))
    src, dst, shift = src[order], dst[order], shift[order]

    pos = np.array(structure.cart_coords, dtype=float)
    lattice = np.array(structure.lattice.matrix, dtype=float)
    edge_vec = pos[dst] - pos[src] + shift @ lattice

    given = dict(attributes or {})
    given.update({k: v for k, v in (("features", features), ("site_dos", site_dos)) if v is not None})
    x, attr = node_vectors(structure, given, label, n_bins)

    data = Data(
        pos=torch.as_tensor(pos, dtype=dtype),
        lattice=torch.as_tensor(lattice, dtype=dtype).unsqueeze(0),
        edge_index=torch.as_tensor(np.stack([src, dst]), dtype=torch.long),
        edge_shift=torch.as_tensor(shift, dtype=dtype),
        edge_vec=torch.as_tensor(edge_vec, dtype=dtype),
        x=torch.as_tensor(x, dtype=dtype),
        attr=torch.as_tensor(attr, dtype=dtype),
        id=id,
        formula=structure.composition.reduced_formula,
    )
    if y is not None:
        data.y = torch.as_tensor(validate_binned(y, f"{label} target", n_bins=n_bins), dtype=dtype).unsqueeze(0)
    return data


def isolated_atoms(graph: Data) -> list[int]:
    """Atoms of ``graph`` without a neighbour: no edge other than their own self-edge."""
    src, dst = graph.edge_index
    shift = graph.edge_shift
    real = (src != dst) | torch.any(shift != 0, dim=1)
    linked = torch.zeros(int(graph.num_nodes), dtype=torch.bool)
    linked[src[real]] = True
    return torch.nonzero(~linked).flatten().tolist()


def graph_stats(graphs) -> dict:
    """Count graphs, atoms and directed edges; ``num_neighbors`` = edges / atoms.

    Every edge present counts, self-edges included: this is the average in-degree of a node as
    the network's message passing sees it, the number it divides neighbour sums by.
    """
    graphs = list(graphs)
    atoms = sum(int(g.num_nodes) for g in graphs)
    edges = sum(int(g.edge_index.shape[1]) for g in graphs)
    return {
        "graphs": len(graphs),
        "atoms": atoms,
        "edges": edges,
        "num_neighbors": edges / atoms if atoms else float("nan"),
    }


def _neighbours(structure: Structure, r_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periodic neighbour pairs (i, j, image) with 0 < |d| < r_max, self image excluded."""
    src, dst, images, _ = structure.get_neighbor_list(r_max, exclude_self=True)
    shift = np.rint(np.asarray(images, dtype=float).reshape(-1, 3)).astype(int)
    return np.asarray(src, dtype=int), np.asarray(dst, dtype=int), shift
