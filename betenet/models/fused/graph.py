"""A graph's constant parts, prepared once: shells, couplings, node classes, and one convolution evaluated on
them (:mod:`betenet.models.fused`, facts 1 to 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from e3nn import o3

from betenet.models.fused.ops import NodeGroups, ShellProduct, SparseMatmul, csr, distinct_rows, from_blocks, to_blocks
from betenet.models.fused.plans import AttrPlan, ConvolutionPlan, EdgePath

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------- evaluation


def _cat(tensors: Sequence[Tensor], dim: int) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=dim)


def attr_linear(tps: Sequence[o3.TensorProduct], plan: AttrPlan, blocks: Sequence[Optional[Tensor]],
                attr_rows: Tensor, groups: NodeGroups, input_groups: Optional[NodeGroups] = None
                ) -> List[List[Optional[Tensor]]]:
    """FCTP_t(h, a) for every t, with ``h`` as one [N, 2l+1, channels] tensor per group of the plan (None: zero)
    and ``a`` as distinct attribute rows [K, v].

    ``input_groups`` (distinct attributes only): ``h`` holds one row per distinct input row instead of one per
    node, and ``input_groups`` maps the nodes to them. The input side is contracted first, once per input
    row (``H[k] = sum_u h[k, u] W[u, :, :]``), leaving v*w multiply-adds per node instead of u*v*w.

    Returns, per FCTP, one [N, 2l+1, mul_out] tensor (or None) per output block.
    """
    views = [list(tp.weight_views()) for tp in tps]
    mats, used = [], []
    for (_, paths), x in zip(plan, blocks):
        if paths and x is not None:  # [v, sum u, sum w]: every path leaving the group, side by side
            mats.append(_cat([_cat([views[p.tp][i].transpose(0, 1) * c for i, c in zip(p.views, p.coeffs)], 1)
                              for p in paths], 2))
            used.append((x, paths))
    outs: List[List[Optional[Tensor]]] = [[None] * len(tp.irreps_out) for tp in tps]
    if not mats:
        return outs
    v, k = attr_rows.shape[1], attr_rows.shape[0]
    if input_groups is not None and not groups.distinct:
        raise ValueError("input_groups serve distinct attributes only")
    if input_groups is not None:
        per_node = attr_rows.index_select(0, groups.index)[:, None, :]  # [N, 1, v]
        ys = []
        for mat, (x, _) in zip(mats, used):
            rows, d, w = x.shape[0], x.shape[1], mat.shape[2]
            per_input = torch.einsum("kdu,vuw->kvdw", x, mat).reshape(rows, v, d * w)
            ys.append(input_groups.matmul(per_node, per_input).view(-1, d, w))
    elif groups.distinct:
        per_node = attr_rows.index_select(0, groups.index)
        ys = [torch.einsum("ndu,nv,vuw->ndw", x, per_node, mat) for mat, (x, _) in zip(mats, used)]
    else:
        # one matrix per distinct attribute row and group: [K, sum over groups of (sum u) * (sum w)]
        per_row = attr_rows @ _cat([m.reshape(v, -1) for m in mats], 1)
        sizes = [m.shape[1] * m.shape[2] for m in mats]
        ys = [groups.matmul(x, m.view(k, mat.shape[1], mat.shape[2]))  # [N, 2l+1, sum w]
              for m, mat, (x, _) in zip(per_row.split(sizes, dim=1), mats, used)]
    for y, (x, paths) in zip(ys, used):
        for p, part in zip(paths, y.split([p.mul_out for p in paths], dim=2)):
            prev = outs[p.tp][p.i_out]
            outs[p.tp][p.i_out] = part if prev is None else prev + part
    return outs


@dataclass
class InputClasses:
    """Nodes with equal input features, for a first convolution whose attributes are all distinct (CPD/FPD)."""

    x_rows: Tensor              # [K, in_dim] distinct input rows
    groups: NodeGroups          # the nodes by input row


@dataclass
class NodeClasses:
    """Nodes with equal input features and attributes, and the (radial row, source class) pairs of the edges."""

    node_class: Tensor          # [N] class of every node
    x_rows: Tensor              # [C, in_dim] input features of every class
    groups: NodeGroups          # the classes by attribute row (node maps evaluated per class)
    pair_radial: Tensor         # [Q] radial row of every distinct (radial row, source class) pair of an edge
    pair_class: Tensor          # [Q] source class of every pair
    edge_pair: Tensor           # [E] pair of every edge

    @property
    def num_pairs(self) -> int:
        return self.pair_class.numel()


@dataclass
class PreparedGraph:
    """Everything of a graph (batch) that the fused evaluation needs and that training never changes.

    Built by :meth:`FusedEvaluator.prepare`. It depends on the architecture (``signature``: the couplings depend
    on irreps and normalisations) but never on trained weights, so networks of one architecture, such as the
    members of an ensemble, can share one (``BeteNet.forward(..., prepared=...)``).
    """

    signature: tuple            # the architecture it was built for (FusedEvaluator.signature)
    num_nodes: int
    num_edges: int
    num_shells: int
    attr_rows: Tensor           # [K, attr_dim] distinct rows of the node attributes attr
    groups: NodeGroups
    radial_rows: Tensor         # [U, number_of_basis] distinct radial embeddings
    shell_radial: Tensor        # [P] radial row of every shell (edges with one destination and one length)
    shell_sum: Dict[int, Tuple[Tensor, Tensor]]  # per d: [N*d, d*P] 0/1 sum of shells into their atoms, transpose
    couplings: List[List[Tuple[Tensor, Tensor]]]  # per convolution, per edge path: (R_p, R_p^T) or (B_p, B_p^T)
    source_pairs: Optional[Tuple[Tensor, Tensor]] = None  # [Q] radial row and source atom of the pairs of
    #                                                        source_side paths
    classes: Optional[NodeClasses] = None  # when nodes repeat (CSO): the first convolution per class
    inputs: Optional[InputClasses] = None  # else, when input rows repeat: its node maps per input row


def shells(edge_dst: Tensor, radial_index: Tensor, n_radial: int) -> Tuple[Tensor, Tensor, Tensor]:
    """(shell of every edge [E], destination [P] and radial row [P] of every shell), shells sorted by destination."""
    key, shell = torch.unique(edge_dst * n_radial + radial_index, return_inverse=True)
    return shell, key // n_radial, key % n_radial


def shell_sums(shell_dst: Tensor, num_nodes: int, dims: Sequence[int], dtype: torch.dtype
               ) -> Dict[int, Tuple[Tensor, Tensor]]:
    """Per component count d: the 0/1 matrix [N*d, d*P] summing the shells (component-major, ``k*P + s``) into
    their destination atom (node-major, ``i*d + k``), and its transpose."""
    n_shells = shell_dst.numel()
    ids = torch.arange(n_shells, device=shell_dst.device)
    out = {}
    for d in sorted(set(dims)):
        k = torch.arange(d, device=shell_dst.device)
        rows = (shell_dst[None, :] * d + k[:, None]).reshape(-1)   # [d, P] -> node-major rows
        cols = (k[:, None] * n_shells + ids[None, :]).reshape(-1)  # component-major columns
        ones = torch.ones(rows.numel(), dtype=dtype, device=shell_dst.device)
        shape = (num_nodes * d, d * n_shells)
        out[d] = (csr(rows, cols, ones, shape), csr(cols, rows, ones, shape[::-1]))
    return out


def path_entries(p: EdgePath, edge_attr: Tensor, irreps_sh: o3.Irreps) -> Tuple[Tensor, Tensor, Tensor]:
    """The structural non-zeros (a, k) of ``Z_p[e, a, k]`` and its values [E, nnz] on every edge."""
    c = p.coupling.to(device=edge_attr.device, dtype=edge_attr.dtype)
    a_idx, k_idx = (c.abs().sum(1) > 0).nonzero(as_tuple=True)
    values = edge_attr[:, irreps_sh.slices()[p.i_sh]] @ c[a_idx, :, k_idx].T
    return a_idx, k_idx, values


def build_couplings(plan: ConvolutionPlan, edge_attr: Tensor, irreps_sh: o3.Irreps, edge_src: Tensor,
                    shell: Tensor, num_shells: int, num_nodes: int, edge_dst: Tensor,
                    source_pairs: Tuple[Tensor, int], class_pairs: Optional[Tuple[Tensor, int]] = None
                    ) -> List[Tuple[Tensor, Tensor]]:
    """Per edge path p, ``R_p`` [d_out*P, N*d_in] (module doc; rows component-major) and its transpose, or
    ``B_p`` (:func:`pair_coupling`) over the (radial row, source atom) pairs for a :func:`source_side` path,
    and over the (radial row, source class) pairs for every path when ``class_pairs`` is given (the first
    convolution with :class:`NodeClasses`). Pairs: (pair of every edge [E], number of pairs)."""
    out = []
    for p in plan.edge:
        pairs = class_pairs or (source_pairs if source_side(p) else None)
        if pairs is not None:
            out.append(pair_coupling(p, edge_attr, irreps_sh, edge_dst, pairs[0], pairs[1], num_nodes))
            continue
        a_idx, k_idx, values = path_entries(p, edge_attr, irreps_sh)
        rows = k_idx[None, :] * num_shells + shell[:, None]
        cols = edge_src[:, None] * p.dim_in + a_idx[None, :]
        shape = (p.dim_out * num_shells, num_nodes * p.dim_in)
        out.append((csr(rows, cols, values, shape), csr(cols, rows, values, shape[::-1])))
    return out


def pair_coupling(p: EdgePath, edge_attr: Tensor, irreps_sh: o3.Irreps, edge_dst: Tensor, pair: Tensor,
                  n_pairs: int, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """``B_p`` [N*d_out, d_in*Q] (rows node-major, columns component-major) summing every edge's coupling into
    its destination from its (radial row, source) pair, and its transpose."""
    a_idx, k_idx, values = path_entries(p, edge_attr, irreps_sh)
    rows = edge_dst[:, None] * p.dim_out + k_idx[None, :]
    cols = a_idx[None, :] * n_pairs + pair[:, None]
    shape = (num_nodes * p.dim_out, p.dim_in * n_pairs)
    return csr(rows, cols, values, shape), csr(cols, rows, values, shape[::-1])


def source_side(p: EdgePath) -> bool:
    """Paths with fewer input than output components (0e -> 1o, ...) run on source pairs: [d_in, Q, mul]
    tensors instead of [d_out, P, mul] shells."""
    return p.dim_in < p.dim_out


def input_classes(x: Tensor, groups: NodeGroups) -> Optional[InputClasses]:
    """:class:`InputClasses` when the attributes are distinct (``groups.distinct``: products per node) and the
    input rows repeat (at most half as many as nodes); otherwise None."""
    n = x.shape[0]
    if not groups.distinct:
        return None  # repeated attributes: the per-attribute-row products serve
    x_rows, x_index = distinct_rows(x)
    if 2 * x_rows.shape[0] > n:
        return None
    return InputClasses(x_rows=x_rows, groups=NodeGroups.build(x_index, x_rows.shape[0]))


def node_classes(x: Tensor, attr: Tensor, attr_index: Tensor, n_attr_rows: int, radial_index: Tensor,
                 edge_src: Tensor) -> Optional[NodeClasses]:
    """The classes of :class:`NodeClasses` and the (radial row, source class) pairs of the edges; None when
    fewer than two nodes share a class on average."""
    class_rows, node_class = distinct_rows(torch.cat([x, attr.to(x.dtype)], dim=1))
    n_classes, n = class_rows.shape[0], x.shape[0]
    if 2 * n_classes > n:
        return None
    class_attr = torch.empty(n_classes, dtype=attr_index.dtype, device=attr_index.device)
    class_attr[node_class] = attr_index  # equal attr within a class: any node's attribute row
    key, pair = torch.unique(radial_index * n_classes + node_class[edge_src], return_inverse=True)
    return NodeClasses(node_class=node_class, x_rows=class_rows[:, :x.shape[1]],
                       groups=NodeGroups.build(class_attr, n_attr_rows), pair_radial=key // n_classes,
                       pair_class=key % n_classes, edge_pair=pair)


def convolution_forward(conv, plan: ConvolutionPlan, couplings: List[Tuple[Tensor, Tensor]], h: Tensor,
                        attr_rows: Tensor, graph: PreparedGraph, inv_sqrt_neighbors: Tensor,
                        classes: Optional[NodeClasses] = None, inputs: Optional[InputClasses] = None) -> Tensor:
    """The fused equivalent of ``Convolution.forward`` (same parameters, same result).

    With ``classes`` (first convolution only), ``h`` holds one row per class and ``couplings`` are the
    ``B_p`` of the class pairs; with ``inputs`` (first convolution, distinct attributes), one row per distinct input
    row. The result has one row per node in every case.

    Every tensor with one row per shell is made and consumed by one path (no splits or concatenations of
    them, whose backward would copy them again); joins happen on nodes, which are fewer.
    """
    n, n_shells = graph.num_nodes, graph.num_shells
    weight_rows = conv.fc(graph.radial_rows)  # [U, weight_numel]: the radial MLP on the distinct lengths only
    sc_out, lin1_out = attr_linear([conv.sc, conv.lin1], plan.pre, to_blocks(h, conv.irreps_in), attr_rows,
                                   graph.groups if classes is None else classes.groups,
                                   None if inputs is None else inputs.groups)
    messages = {}  # mid block -> [N, d_out, mul]
    for p, (R, R_t) in zip(plan.edge, couplings):
        x = lin1_out[p.i_in]
        if x is None:  # lin1 reaches every block it reads; kept for generality
            x = h.new_zeros(n if classes is None else h.shape[0], p.dim_in, p.mul)
        weights = weight_rows[:, p.offset:p.offset + p.mul]
        pairs = (classes.pair_radial, classes.pair_class) if classes is not None else \
            graph.source_pairs if source_side(p) else None
        if pairs is None:  # destination shells: [d_out, P, mul]
            t = SparseMatmul.apply(R, R_t, x.reshape(n * p.dim_in, p.mul)).view(p.dim_out, n_shells, p.mul)
            m = ShellProduct.apply(t, weights.index_select(0, graph.shell_radial)).view(-1, p.mul)
            shell_sum, shell_sum_t = graph.shell_sum[p.dim_out]
            messages[p.i_out] = SparseMatmul.apply(shell_sum, shell_sum_t, m).view(n, p.dim_out, p.mul)
        else:  # [d_in, Q, mul]: source features times radial weights on the (radial row, source) pairs
            xq = x.transpose(0, 1).index_select(1, pairs[1])
            g = ShellProduct.apply(xq, weights.index_select(0, pairs[0])).view(-1, p.mul)
            messages[p.i_out] = SparseMatmul.apply(R, R_t, g).view(n, p.dim_out, p.mul)
    # one [N, d, sum mul] block per group of equal-irrep mid blocks (the order of plan.post)
    mid = [_cat([messages[i] for i in group], 2) * inv_sqrt_neighbors for group, _ in plan.post]
    (lin2_out,) = attr_linear([conv.lin2], plan.post, mid, attr_rows, graph.groups)
    s = from_blocks(sc_out, conv.irreps_out, h if classes is not None else mid[0])
    if classes is not None:
        s = s.index_select(0, classes.node_class)
    return conv.c_s * s + conv.c_x * from_blocks(lin2_out, conv.irreps_out, mid[0])
