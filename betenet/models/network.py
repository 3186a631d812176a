"""The BETE-NET reference network: an E(3)-equivariant gated point convolution network (e3nn) that maps a
periodic crystal graph to a non-negative binned spectrum a2F(w) (the grid of ``bins``; the paper's 51 bins by
default), averaged over atoms.

Architecture (paper Methods + the released ``utils/model.py``, itself Chen et al. 2021's phonon-DOS
network built on e3nn's ``gate_points_2101``):

    x (one-hot(Z) * mass)  --Linear+ReLU-->  h0 : em_dim x 0e          (node features)
    attr (one-hot(Z) [+ PhDOS]) --Linear+ReLU--> a : em_dim x 0e       (node attributes, fixed)
    layers x [Convolution -> Gate]  on hidden irreps  mul x (l, p), l <= lmax, p = +-1
    Convolution -> out_dim x 0e  -> ReLU -> mean over the atoms of each graph      (head "spectrum")
    Convolution -> K x 0e -> a2F_i = exp(c_i . Legendre(w)) g_i(w)/3 -> mean       (head "coupling")

The ``coupling`` head (:mod:`betenet.models.heads`) factorises a2F = α²(ω) F(ω) atom by atom with the
atom's site PhDOS g_i from its attributes (CPD/FPD), so that spectra trained on scalars alone keep
the support of real phonons.

Each convolution (gate_points_2101 "Convolution"):
    s   = FCTP(h, a)                                   self-interaction, conditioned on a
    h'  = FCTP(h, a)
    m_e = TP_uvu(h'[src_e], Y_e ; W(r_e))              W from the radial MLP of the edge length
    n_i = sum_{e: dst_e = i} m_e / sqrt(num_neighbors)
    out = sin(pi/8) s + cos(pi/8) FCTP(n, a)           (channels that s cannot produce: FCTP(n, a) only)
Gate: even/odd scalars through silu/tanh, gates through sigmoid/tanh, l > 0 irreps times their gate.

``num_neighbors`` (the dataset's mean number of edges per atom, self-loops included when the graph
has them) is a buffer, so checkpoints carry it.

The e3nn modules below are the network and own every parameter. ``fused=True`` (the default) evaluates the
same parameters through ``BeteNet.evaluator``, a :class:`~betenet.models.fused.FusedEvaluator` that prepares
the constant parts of a graph once and keeps them while the same graph tensors come back, as in full-batch
training; ``fused=False`` calls the e3nn modules directly.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from torch_geometric.utils import scatter

from betenet.data.attributes import NodeSettings, node_width
from betenet.errors import InputError
from betenet.models.fused import FusedEvaluator, PreparedGraph
from betenet.models.heads import HEADS, CouplingHead
from betenet.models.radial import EdgeFeatures, edge_features

_SCALAR_ACT: Dict[int, Callable] = {1: F.silu, -1: torch.tanh}  # by parity of the scalar
_GATE_ACT: Dict[int, Callable] = {1: torch.sigmoid, -1: torch.tanh}
_REDUCTIONS = ("mean", "sum", "none")
#: Node width without site PhDOS or features: the one-hot(Z) block (betenet/data/attributes/).
CSO_WIDTH = node_width()


def _rename_embed_z(state_dict, prefix, *args) -> None:
    """Load-state-dict pre-hook: checkpoints that call the attribute embedding ``embed_z`` load into
    ``embed_attr``."""
    for key in [k for k in state_dict if k.startswith(f"{prefix}embed_z.")]:
        state_dict[f"{prefix}embed_attr." + key[len(f"{prefix}embed_z."):]] = state_dict.pop(key)


def tp_path_exists(irreps_in1: o3.Irreps, irreps_in2: o3.Irreps, ir_out: o3.Irrep) -> bool:
    """Whether some irrep of ``irreps_in1`` times some irrep of ``irreps_in2`` contains ``ir_out``."""
    return any(ir_out in ir1 * ir2 for _, ir1 in irreps_in1 for _, ir2 in irreps_in2)


class Convolution(torch.nn.Module):
    """Equivariant point convolution with node-attribute-conditioned self-interaction (gate_points_2101 style)."""

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_node_attr: o3.Irreps,
        irreps_edge_attr: o3.Irreps,
        irreps_out: o3.Irreps,
        number_of_basis: int,
        radial_layers: int,
        radial_neurons: int,
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_node_attr = o3.Irreps(irreps_node_attr)
        self.irreps_edge_attr = o3.Irreps(irreps_edge_attr)
        self.irreps_out = o3.Irreps(irreps_out)

        self.sc = o3.FullyConnectedTensorProduct(self.irreps_in, self.irreps_node_attr, self.irreps_out)
        self.lin1 = o3.FullyConnectedTensorProduct(self.irreps_in, self.irreps_node_attr, self.irreps_in)

        # one "uvu" path (weights per input channel, from the radial MLP) for every output irrep reachable
        mid: List = []
        instructions = []
        for i, (mul, ir_in) in enumerate(self.irreps_in):
            for j, (_, ir_edge) in enumerate(self.irreps_edge_attr):
                for ir_out in ir_in * ir_edge:
                    if ir_out in self.irreps_out:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        irreps_mid, perm, _ = o3.Irreps(mid).sort()
        instructions = [(i, j, perm[k], mode, train) for i, j, k, mode, train in instructions]
        self.tp = o3.TensorProduct(
            self.irreps_in,
            self.irreps_edge_attr,
            irreps_mid,
            instructions,
            internal_weights=False,
            shared_weights=False,
        )
        self.fc = FullyConnectedNet(
            [number_of_basis] + radial_layers * [radial_neurons] + [self.tp.weight_numel], F.silu
        )
        self.lin2 = o3.FullyConnectedTensorProduct(irreps_mid, self.irreps_node_attr, self.irreps_out)
        # output channels the self-connection cannot reach get the message part only (weight 1)
        c_x = math.cos(math.pi / 8)
        mask = self.sc.output_mask.to(torch.get_default_dtype())
        self.register_buffer("c_x", (1.0 - mask) + c_x * mask, persistent=False)
        self.c_s = math.sin(math.pi / 8)

    def forward(
        self,
        h: torch.Tensor,
        node_attr: torch.Tensor,
        edge_src: torch.Tensor,
        edge_dst: torch.Tensor,
        edge: EdgeFeatures,
        inv_sqrt_neighbors: torch.Tensor,
    ) -> torch.Tensor:
        weight = self.fc(edge.radial)
        s = self.sc(h, node_attr)
        h = self.lin1(h, node_attr)
        messages = self.tp(h[edge_src], edge.attr, weight)
        h = scatter(messages, edge_dst, dim=0, dim_size=h.shape[0], reduce="sum") * inv_sqrt_neighbors
        h = self.lin2(h, node_attr)
        return self.c_s * s + self.c_x * h


class GatedConvolution(torch.nn.Module):
    """A convolution onto the gate's input irreps followed by the gate nonlinearity."""

    def __init__(self, conv: Convolution, gate: Gate) -> None:
        super().__init__()
        self.conv = conv
        self.gate = gate
        self.irreps_in = conv.irreps_in
        self.irreps_out = gate.irreps_out

    def forward(self, h, node_attr, edge_src, edge_dst, edge, inv_sqrt_neighbors) -> torch.Tensor:
        return self.gate(self.conv(h, node_attr, edge_src, edge_dst, edge, inv_sqrt_neighbors))


class BeteNet(torch.nn.Module):
    """BETE-NET: embedding -> ``layers`` gated equivariant convolutions -> scalar convolution -> ReLU -> pooling.

    Input ``data`` (a torch_geometric Data/Batch): ``x`` [N, in_dim], ``attr`` [N, attr_dim],
    ``edge_index`` [2, E] (row 0 source, row 1 destination), ``edge_vec`` [E, 3] (r_dst - r_src + shift, Å),
    optional ``batch`` [N]. Output: [n_graphs, out_dim] (``reduce_output`` "mean"/"sum") or
    [N, out_dim] per atom (``"none"``), all entries >= 0.

    ``share_embedding=True`` reproduces the release exactly: one Linear applied to both ``x`` and ``attr``
    (requires ``in_dim == attr_dim``; the release's CPD/FPD inputs are x = [mass one-hot, 51 ones] and
    attr = [one-hot, PhDOS], both 169 wide). The default uses separate Linears for ``x`` and ``attr``.

    ``fused=True`` evaluates through ``self.evaluator`` (:class:`~betenet.models.fused.FusedEvaluator`: same
    parameters and result, faster); ``fused=False`` calls the e3nn modules directly. Gradients with respect to
    ``edge_vec``, ``edge_feats`` or ``attr`` always use the e3nn evaluation.

    Parameters are created in torch's default dtype (float32); ``.double()`` gives a float64 model.
    """

    def __init__(
        self,
        in_dim: int = CSO_WIDTH,
        attr_dim: int = CSO_WIDTH,
        out_dim: int = 51,
        em_dim: int = 64,
        mul: int = 32,
        lmax: int = 1,
        layers: int = 2,
        r_max: float = 4.0,
        number_of_basis: int = 10,
        radial_layers: int = 1,
        radial_neurons: int = 100,
        num_neighbors: float = 1.0,
        reduce_output: str = "mean",
        share_embedding: bool = False,
        fused: bool = True,
        head: str = "spectrum",
        coupling_basis: int = 3,
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise InputError("head", f"must be one of {HEADS}, got {head!r}")
        need = node_width(NodeSettings(site_dos="coarse", n_bins=out_dim))  # one-hot(Z) and a site PhDOS
        if head == "coupling" and attr_dim < need:
            raise InputError("head", f"the coupling head reads each atom's {out_dim}-bin site PhDOS from its "
                                     f"attributes: use variant cpd or fpd (attr_dim {attr_dim} < {need})")
        if reduce_output not in _REDUCTIONS:
            raise InputError("reduce_output", f"must be one of {_REDUCTIONS}, got {reduce_output!r}")
        if not num_neighbors > 0:
            raise InputError("num_neighbors", f"must be positive, got {num_neighbors}")
        if share_embedding and in_dim != attr_dim:
            raise InputError("share_embedding",
                             f"a shared embedding needs in_dim == attr_dim, got {in_dim} != {attr_dim}")
        self.in_dim, self.attr_dim, self.out_dim, self.em_dim = in_dim, attr_dim, out_dim, em_dim
        self.lmax, self.r_max, self.number_of_basis = lmax, float(r_max), number_of_basis
        self.reduce_output = reduce_output
        self.share_embedding = share_embedding
        self.fused = fused
        self.register_buffer("num_neighbors", torch.tensor(float(num_neighbors)))

        self.embed_x = torch.nn.Linear(in_dim, em_dim)
        self.embed_attr = self.embed_x if share_embedding else torch.nn.Linear(attr_dim, em_dim)
        self._register_load_state_dict_pre_hook(_rename_embed_z)

        self.irreps_node_attr = o3.Irreps(f"{em_dim}x0e")
        self.irreps_edge_attr = o3.Irreps.spherical_harmonics(lmax)
        self.irreps_hidden = o3.Irreps([(mul, (l, p)) for l in range(lmax + 1) for p in (-1, 1)])
        self.head = head
        self.coupling = CouplingHead(coupling_basis, out_dim) if head == "coupling" else None
        self.irreps_out = o3.Irreps(f"{coupling_basis if head == 'coupling' else out_dim}x0e")
        conv_kw = dict(number_of_basis=number_of_basis, radial_layers=radial_layers, radial_neurons=radial_neurons)

        self._build_layers(em_dim, mul, layers, conv_kw)
        self.evaluator = FusedEvaluator(self)  # plans and prepared graphs of the fused path; no parameters

    def _build_layers(self, em_dim: int, mul: int, layers: int, conv_kw: dict) -> None:
        """Gated convolutions on the hidden irreps reachable from the previous layer, then the scalar output one."""
        irreps = o3.Irreps(f"{em_dim}x0e")
        self.layers = torch.nn.ModuleList()
        for _ in range(layers):
            reachable = [(m, ir) for m, ir in self.irreps_hidden if tp_path_exists(irreps, self.irreps_edge_attr, ir)]
            scalars = o3.Irreps([(m, ir) for m, ir in reachable if ir.l == 0])
            gated = o3.Irreps([(m, ir) for m, ir in reachable if ir.l > 0])
            gate_ir = "0e" if tp_path_exists(irreps, self.irreps_edge_attr, o3.Irrep("0e")) else "0o"
            gates = o3.Irreps([(m, gate_ir) for m, _ in gated])
            gate = Gate(
                scalars, [_SCALAR_ACT[ir.p] for _, ir in scalars],
                gates, [_GATE_ACT[ir.p] for _, ir in gates],
                gated,
            )
            conv = Convolution(irreps, self.irreps_node_attr, self.irreps_edge_attr, gate.irreps_in, **conv_kw)
            self.layers.append(GatedConvolution(conv, gate))
            irreps = gate.irreps_out
        self.output_conv = Convolution(irreps, self.irreps_node_attr, self.irreps_edge_attr, self.irreps_out, **conv_kw)

    @property
    def convolutions(self) -> List[Convolution]:
        """Every convolution in order: the gated layers' ones, then the output convolution."""
        return [layer.conv for layer in self.layers] + [self.output_conv]

    def node_features(self, x: torch.Tensor) -> torch.Tensor:
        """Embedded node inputs: ReLU(Linear(x))."""
        return F.relu(self.embed_x(x))

    def node_attributes(self, attr: torch.Tensor) -> torch.Tensor:
        """Embedded node attributes: ReLU(Linear(attr))."""
        return F.relu(self.embed_attr(attr))

    def edge_features(self, edge_vec: torch.Tensor) -> EdgeFeatures:
        """Geometry-only edge inputs (cutoff-weighted spherical harmonics, radial embedding) of edge vectors [E, 3]."""
        return edge_features(edge_vec, self.lmax, self.r_max, self.number_of_basis)

    def _apply(self, fn, recurse=True):
        """``.to()``, ``.double()``, ...: also empties the evaluator's cache, so that no prepared graph of the
        former device or dtype is kept (a prepared graph has its data's device and dtype)."""
        self.evaluator.graphs.clear()
        return super()._apply(fn, recurse)

    def _check(self, data, edge_feats: Optional[EdgeFeatures]) -> None:
        n = data.x.shape[0]
        for name, t, width in (("x", data.x, self.in_dim), ("attr", data.attr, self.attr_dim)):
            if t.dim() != 2 or t.shape[1] != width or t.shape[0] != n:
                raise InputError(f"data.{name}", f"expected shape [{n}, {width}], got {list(t.shape)}")
        if data.edge_index.dim() != 2 or data.edge_index.shape[0] != 2:
            raise InputError("data.edge_index", f"expected shape [2, E], got {list(data.edge_index.shape)}")
        if edge_feats is not None and edge_feats.attr.shape[0] != data.edge_index.shape[1]:
            raise InputError("edge_feats", f"{edge_feats.attr.shape[0]} edges, edge_index has "
                             f"{data.edge_index.shape[1]}")

    def forward(
        self, data, edge_feats: Optional[EdgeFeatures] = None, prepared: Optional[PreparedGraph] = None
    ) -> torch.Tensor:
        """Predict [n_graphs, out_dim] (or [N, out_dim] with ``reduce_output="none"``); ``data`` is not modified.

        ``edge_feats`` passes precomputed :meth:`edge_features`. With ``fused=True`` the evaluator prepares the
        graph's constant parts on first use and keeps them while the same, unmodified tensors come back;
        ``prepared`` passes a graph prepared by ``evaluator.prepare`` explicitly (for instance one shared by
        the members of an ensemble), whatever ``fused`` says.
        """
        self._check(data, edge_feats)
        if prepared is not None or (self.fused and self.evaluator.serves(data, edge_feats)):
            out = self.evaluator(self, data, edge_feats, prepared)
        else:
            out = self.node_outputs(data, edge_feats)
        per_atom = self.coupling(out, data.attr) if self.coupling is not None else F.relu(out)
        return self._pool(per_atom, data)

    def node_outputs(self, data, edge_feats: Optional[EdgeFeatures] = None) -> torch.Tensor:
        """Per-node outputs before the head ([N, out_dim], or [N, coupling_basis]), through the e3nn modules."""
        edge_src, edge_dst = data.edge_index[0], data.edge_index[1]
        if edge_feats is None:
            edge_feats = self.edge_features(data.edge_vec)
        inv_sqrt_neighbors = self.num_neighbors.rsqrt()
        h = self.node_features(data.x)
        node_attr = self.node_attributes(data.attr)
        for layer in self.layers:
            h = layer(h, node_attr, edge_src, edge_dst, edge_feats, inv_sqrt_neighbors)
        return self.output_conv(h, node_attr, edge_src, edge_dst, edge_feats, inv_sqrt_neighbors)

    def _pool(self, out: torch.Tensor, data) -> torch.Tensor:
        """``reduce_output`` over the atoms of every graph (``data.batch``; one graph without it)."""
        if self.reduce_output == "none":
            return out
        batch = getattr(data, "batch", None)
        if batch is None:
            return out.mean(dim=0, keepdim=True) if self.reduce_output == "mean" else out.sum(dim=0, keepdim=True)
        num_graphs = getattr(data, "num_graphs", None) or int(batch.max()) + 1
        return scatter(out, batch, dim=0, dim_size=num_graphs, reduce=self.reduce_output)
