"""AtomReadout: the light model for pretrained site features: no message passing of our own, each atom's
output read from its node attributes by a small MLP.

The universal potential's features (:mod:`betenet.pretrained`) already describe each atom's chemical
environment within 5 Å over several interaction blocks, so a per-atom readout is enough:

    z_i = [one-hot(Z_i), features_i]                 (the attributes before the site PhDOS; with
                                                      ``read_phdos`` the atom's binned PhDOS too, so the
                                                      coupling can depend on how soft its modes are)
    c_i = MLP(LayerNorm(z_i))                         hidden x depth, SiLU, dropout
    head "coupling": a2F_i = exp(c_i . Legendre(w)) g_i(w)/3  (g_i: the atom's site PhDOS, the last
                      ``out_dim`` attribute columns; betenet/models/heads.py); head "spectrum": ReLU(c_i)
    a2F = mean over the atoms of each graph

With the coupling head the spectrum keeps the support of the phonons, as in the equivariant network.
It reads the same graphs as :class:`~betenet.models.network.BeteNet` (``attr``; ``x`` and the edges
are not used) and has the same output, so the LightningModule, losses, ensembles and prediction treat
both alike. ``num_neighbors`` is accepted for the common interface and not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_geometric.utils import scatter

from betenet.data.attributes import node_width
from betenet.errors import InputError
from betenet.models.heads import HEADS, CouplingHead


class AtomReadout(torch.nn.Module):
    def __init__(self, in_dim: int, attr_dim: int, out_dim: int = 51, hidden: int = 64, depth: int = 2,
                 dropout: float = 0.0, head: str = "coupling", coupling_basis: int = 3,
                 num_neighbors: float | None = None, r_max: float = 4.0, read_phdos: bool = False) -> None:
        super().__init__()
        if head not in HEADS:
            raise InputError("head", f"must be one of {HEADS}, got {head!r}")
        if depth < 1 or hidden < 1:
            raise InputError("readout", f"depth and hidden must be >= 1, got {depth}, {hidden}")
        self.in_dim, self.attr_dim, self.out_dim, self.head, self.r_max = in_dim, attr_dim, out_dim, head, float(r_max)
        self.width = attr_dim - out_dim if head == "coupling" and not read_phdos else attr_dim
        if head == "coupling" and attr_dim - out_dim < node_width():  # one-hot(Z) before the site PhDOS
            raise InputError("head", f"the coupling head reads each atom's {out_dim}-bin site PhDOS from its "
                                     f"attributes: use variant cpd or fpd (attr_dim {attr_dim})")
        self.coupling = CouplingHead(coupling_basis, out_dim) if head == "coupling" else None
        n_out = coupling_basis if head == "coupling" else out_dim
        layers: list[torch.nn.Module] = [torch.nn.LayerNorm(self.width)]
        width = self.width
        for _ in range(depth):
            layers += [torch.nn.Linear(width, hidden), torch.nn.SiLU(), torch.nn.Dropout(dropout)]
            width = hidden
        layers.append(torch.nn.Linear(width, n_out))
        self.mlp = torch.nn.Sequential(*layers)

    def forward(self, data) -> torch.Tensor:
        attr = data.attr
        if attr.dim() != 2 or attr.shape[1] != self.attr_dim:
            raise InputError("data.attr", f"expected shape [N, {self.attr_dim}], got {list(attr.shape)}")
        out = self.mlp(attr[:, : self.width])
        per_atom = self.coupling(out, attr) if self.coupling is not None else F.relu(out)
        batch = getattr(data, "batch", None)
        if batch is None:
            return per_atom.mean(dim=0, keepdim=True)
        num_graphs = getattr(data, "num_graphs", None) or int(batch.max()) + 1
        return scatter(per_atom, batch, dim=0, dim_size=num_graphs, reduce="mean")
