"""Index plans of the e3nn tensor products: which weights, paths and Wigner blocks each convolution uses, built
once per network (:mod:`betenet.models.fused`, facts 1 and 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from e3nn import o3


Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class AttrPath:
    """The paths of an FCTP with scalar attributes from one group of same-irrep input blocks to an output block."""

    tp: int                    # which of the fused FCTPs
    views: Tuple[int, ...]     # per input block of the group: index of the path's weight view
    coeffs: Tuple[float, ...]  # per input block: path normalisation times Wigner-3j (l, 0, l) = delta/sqrt(2l+1)
    i_out: int                 # output block
    mul_out: int


#: Input blocks of equal irrep (stacked along the channels, one matrix product) and the paths leaving them.
AttrPlan = List[Tuple[List[int], List[AttrPath]]]


def same_irrep_groups(irreps: o3.Irreps) -> List[List[int]]:
    """Indices of the blocks of ``irreps`` grouped by irrep, in order of first appearance."""
    groups: dict = {}
    for i, (_, ir) in enumerate(irreps):
        groups.setdefault(ir, []).append(i)
    return list(groups.values())


def attr_linear_plan(tps: Sequence[o3.TensorProduct], groups: Optional[List[List[int]]] = None) -> AttrPlan:
    """Paths of FCTPs that share ``irreps_in1`` and scalar ``irreps_in2``, by group of input blocks.

    ``groups`` (default: one block each) must hold blocks of one irrep: an FCTP connects every such block to
    the same outputs, so their channels can be stacked.
    """
    irreps_in, irreps_attr = tps[0].irreps_in1, tps[0].irreps_in2
    if any(ir.l != 0 or ir.p != 1 for _, ir in irreps_attr) or len(irreps_attr) != 1:
        raise ValueError(f"fused FCTP needs one block of even scalar attributes, got {irreps_attr}")
    groups = groups or [[i] for i in range(len(irreps_in))]
    found = {}  # (tp, i_in, i_out) -> (weight view, coefficient)
    for t, tp in enumerate(tps):
        if tp.irreps_in1 != irreps_in or tp.irreps_in2 != irreps_attr:
            raise ValueError("fused FCTPs must share their inputs")
        views = 0
        for ins in tp.instructions:
            if not ins.has_weight or ins.connection_mode != "uvw":
                raise ValueError(f"fused FCTP supports weighted 'uvw' paths only, got {ins}")
            ir = irreps_in[ins.i_in1].ir
            w3j = o3.wigner_3j(ir.l, 0, ir.l, dtype=torch.float64)[:, 0, :]  # [d, d] = delta / sqrt(d)
            c = float(w3j[0, 0])
            if not torch.allclose(w3j, c * torch.eye(ir.dim, dtype=torch.float64), atol=1e-12):
                raise ValueError(f"unexpected Wigner-3j block for {ir} x 0e -> {ir}")
            found[(t, ins.i_in1, ins.i_out)] = (views, ins.path_weight * c)
            views += 1
    plan: AttrPlan = []
    for group in groups:
        if len({irreps_in[i].ir for i in group}) != 1:
            raise ValueError(f"blocks {group} of {irreps_in} do not share one irrep")
        paths = []
        for t, tp in enumerate(tps):
            for k, (mul_out, _) in enumerate(tp.irreps_out):
                hits = [found.get((t, i, k)) for i in group]
                if all(hit is None for hit in hits):
                    continue
                if any(hit is None for hit in hits):
                    raise ValueError(f"blocks {group} do not all reach output {k}")
                paths.append(AttrPath(t, tuple(v for v, _ in hits), tuple(c for _, c in hits), k, mul_out))
        plan.append((list(group), paths))
    return plan


@dataclass(frozen=True)
class EdgePath:
    """One "uvu" path of the edge tensor product: node block ``i_in`` x harmonic block ``i_sh`` -> mid block."""

    offset: int      # first column of its weights in the radial MLP output
    i_in: int
    i_sh: int
    i_out: int
    mul: int
    dim_in: int
    dim_out: int
    coupling: Tensor  # [dim_in, dim_sh, dim_out] float64: path weight times Wigner-3j


def edge_plan(tp: o3.TensorProduct) -> List[EdgePath]:
    """The weighted "uvu" paths of the convolution's edge tensor product, in weight order."""
    out, offset = [], 0
    for ins in tp.instructions:
        if ins.connection_mode != "uvu" or not ins.has_weight:
            raise ValueError(f"fused edge tensor product supports weighted 'uvu' paths only, got {ins}")
        m1, ir1 = tp.irreps_in1[ins.i_in1]
        ir2 = tp.irreps_in2[ins.i_in2].ir
        ir3 = tp.irreps_out[ins.i_out].ir
        coupling = ins.path_weight * o3.wigner_3j(ir1.l, ir2.l, ir3.l, dtype=torch.float64)
        out.append(EdgePath(offset, ins.i_in1, ins.i_in2, ins.i_out, m1, ir1.dim, ir3.dim, coupling))
        offset += m1
    return out


@dataclass(frozen=True)
class ConvolutionPlan:
    """What the fused evaluation of one :class:`~betenet.models.network.Convolution` needs besides its weights:
    which weight views, coefficients and Wigner-3j couplings every path uses (no parameters)."""

    pre: AttrPlan    # self-connection and lin1 fused (they share input and attributes), one block per group
    post: AttrPlan   # lin2, its input blocks (edge tensor product outputs) grouped by irrep
    edge: List[EdgePath]  # the edge tensor product's paths (one sparse matrix each)


def convolution_plan(conv) -> ConvolutionPlan:
    return ConvolutionPlan(
        pre=attr_linear_plan([conv.sc, conv.lin1]),
        post=attr_linear_plan([conv.lin2], same_irrep_groups(conv.tp.irreps_out)),
        edge=edge_plan(conv.tp),
    )
