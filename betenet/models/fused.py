"""Fused evaluation of BETE-NET: the e3nn maps of :class:`~betenet.models.network.BeteNet`, on the e3nn
modules' own parameters, in a few large operations instead of many small ones.

:class:`FusedEvaluator` is the one entry point: a network holds one (``BeteNet.evaluator``), built from its
architecture. It owns the index bookkeeping of every convolution (:class:`ConvolutionPlan`), the
preparation of a graph's constant parts (:meth:`FusedEvaluator.prepare`, giving a :class:`PreparedGraph`)
and a small cache of prepared graphs (:class:`PreparedGraphs`), and evaluates the network it is called with.
It holds no parameters: the e3nn modules own them all, so state dicts and checkpoints do not depend on it.

Nothing here is an approximation; four exact facts of the network and of crystal data remove most of the work:

1. Node attributes are scalars (``em_dim x 0e``) computed row by row from ``attr``, so a fully connected tensor
   product with them, ``FCTP(h, a)_k[n, w, m] = sum_i c_ik sum_u h_i[n, u, m] M_ik[n, u, w]`` with
   ``M_ik[n] = sum_v a[n, v] W_ik[u, v, w]``, is a per-node matrix product whose matrix ``M`` depends on the
   node only through its attribute row. Crystals repeat elements, so a dataset has far fewer distinct rows
   of ``attr`` than atoms: ``M`` is formed once per distinct row and the nodes, sorted by row and cut into equal
   chunks, are multiplied by one batched matmul (:class:`NodeGroups`). With a site PhDOS in ``attr`` (CPD/FPD)
   every row is distinct and one einsum per input group is used instead.
2. The radial MLP sees only the edge length, and crystals repeat bond lengths (exactly equal lengths only):
   it runs on the distinct radial embeddings only.
3. Atoms never move during training, and the radial weights of an edge depend only on its length. Group the
   edges into *shells*: the edges with the same destination atom and the same length. For an
   "uvu" path p of the edge tensor product, with the geometry-only coupling
   ``Z_p[e, a, k] = sum_j C_p[a, j, k] Y[e, j]`` (``C_p`` the path's Wigner-3j block times its normalisation,
   ``Y`` the cutoff-weighted harmonics),

       n_p[i, k, u] = sum_{e: dst(e)=i} w_p[r(e), u] sum_a Z_p[e, a, k] x[src(e), a, u]
                    = sum_{s: dst(s)=i} w_p[r(s), u] T_p[s, k, u],
       T_p[s, k, u] = sum_{e in s} sum_a Z_p[e, a, k] x[src(e), a, u]

   ``T_p = R_p @ x`` with a constant sparse matrix ``R_p`` [d_out*shells, N*d_in], built once per graph
   (:class:`PreparedGraph`), and the sum over shells is a second constant sparse matrix. A message pass is
   thus two sparse matmuls and one product with the radial weights on shells: nothing of size E*mul is formed.
   Shell tensors are laid out ``[d_out, shells, mul]`` (component-major), so the radial weights [shells, mul]
   broadcast over the leading dimension: contiguous inner loops, and a backward without reductions over
   a middle dimension (:class:`ShellProduct`). A path with fewer input than output components (0e -> 1o)
   applies the weights on the source side instead, on the (radial row, source atom) pairs:
   ``n_p = B_p @ (w_p[r(q)] x[src(q)])``, tensors [d_in, pairs, mul] (:func:`source_side`).

4. Before the first convolution a node is known by its input features and attributes alone, and crystals
   repeat elements: nodes with equal rows of ``x`` and ``attr`` form *classes*. The first convolution's node
   maps run once per class, and its messages need only the distinct pairs (radial row, source class):
   ``n_p[i, k, u] = sum_q B_p[(i, k), (a, q)] w_p[r(q), u] x_p[c(q), a, u]`` with a constant sparse ``B_p``
   (:class:`NodeClasses`), so that layer forms no shell tensors at all. With a site PhDOS in ``attr`` every node
   is its own class and the shell evaluation is used; when only the input rows repeat (:class:`InputClasses`),
   the first convolution's node maps contract the input side once per distinct input row.

What these facts save on the BETE-NET data (counts of rows, lengths, shells and classes, and timings) is
recorded in ``benchmarks/RESULTS.md``. ``tests/test_performance_equivalence.py`` checks outputs and
gradients against the e3nn evaluation.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from e3nn import o3

from betenet.errors import InputError
from betenet.models.radial import EdgeFeatures, edge_features

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------- sparse matmul


class SparseMatmul(torch.autograd.Function):
    """``S @ x`` for a constant sparse CSR matrix ``S``; ``S_t`` (its transpose, CSR) serves the backward."""

    @staticmethod
    def forward(ctx, S: Tensor, S_t: Tensor, x: Tensor) -> Tensor:  # noqa: N803 (matrix names)
        ctx.S_t = S_t
        return sparse_dense(S, x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, sparse_dense(ctx.S_t, grad.contiguous())


class ShellProduct(torch.autograd.Function):
    """``t * w`` for shell tensors t [d, P, mul] and radial weights w [P, mul] (broadcast over d).

    The weight gradient is accumulated component by component (``addcmul``) instead of forming ``g * t``
    [d, P, mul] and reducing it.
    """

    @staticmethod
    def forward(ctx, t: Tensor, w: Tensor) -> Tensor:
        ctx.save_for_backward(t, w)
        return t * w[None]  # an explicit leading dimension: a faster CPU kernel than implicit broadcasting

    @staticmethod
    def backward(ctx, grad: Tensor):
        t, w = ctx.saved_tensors
        grad_t = grad * w[None] if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = grad[0] * t[0]
            for k in range(1, t.shape[0]):
                grad_w.addcmul_(grad[k], t[k])
        return grad_t, grad_w


def sparse_dense(S: Tensor, x: Tensor) -> Tensor:  # noqa: N803
    """``S @ x`` written straight into a new dense tensor.

    ``S @ x`` adds a full copy of the result, and ``addmm(out, S, x, beta=0)`` without ``out=`` copies its
    (here uninitialised) input into a fresh result first; with ``out`` as both input and result MKL writes
    once. With beta = 0 MKL ignores the uninitialised values (NaNs included, tested); on other devices the
    buffer starts at zero.
    """
    shape = (S.shape[0], x.shape[1])
    out = x.new_empty(shape) if x.device.type == "cpu" else x.new_zeros(shape)
    return torch.addmm(out, S, x, beta=0, out=out)


def csr(rows: Tensor, cols: Tensor, values: Tensor, shape: Tuple[int, int]) -> Tensor:
    """CSR matrix with ``values`` at (``rows``, ``cols``); entries at the same position are summed."""
    rows, cols, values = rows.reshape(-1), cols.reshape(-1), values.reshape(-1)
    key, inverse = torch.unique(rows * shape[1] + cols, return_inverse=True)  # sorted: row-major order
    summed = values.new_zeros(key.numel()).index_add_(0, inverse, values)
    counts = torch.bincount(key // shape[1], minlength=shape[0])
    crow = torch.zeros(shape[0] + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(counts, 0, out=crow[1:])
    col = key % shape[1]
    if max(shape) < 2**31 and key.numel() < 2**31:  # MKL's sparse BLAS takes 32-bit indices (no per-call copy)
        crow, col = crow.to(torch.int32), col.to(torch.int32)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the one product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, summed, shape, check_invariants=False)


# ---------------------------------------------------------------------------------------------- node groups


def distinct_rows(t: Tensor) -> Tuple[Tensor, Tensor]:
    """(distinct rows of a 2-D tensor, index [n] of each row's distinct row); exact equality, no tolerance."""
    rows, index = torch.unique(t, dim=0, return_inverse=True)
    return rows, index


@dataclass
class NodeGroups:
    """Nodes sorted by their distinct attribute row and cut into chunks of ``size`` slots, one row per chunk.

    ``pos[n]`` is node n's slot in the padded ``[n_chunks * size]`` layout and ``chunk_row[c]`` the attribute
    row of chunk c. With ``size = ceil(N / K)`` for K distinct rows there are at most 2K chunks, so padding
    at most doubles the rows; when every node is distinct (K = N) each node is its own chunk.
    """

    pos: Tensor
    chunk_row: Tensor
    size: int
    index: Tensor    # [N] attribute row of every node

    @classmethod
    def build(cls, index: Tensor, n_rows: int) -> "NodeGroups":
        n = index.numel()
        size = max(1, math.ceil(n / max(n_rows, 1)))
        order = torch.argsort(index, stable=True)
        counts = torch.bincount(index, minlength=n_rows)
        start = torch.cumsum(counts, 0) - counts                       # first sorted position of each row
        rank = torch.empty_like(index)
        rank[order] = torch.arange(n, device=index.device) - start[index[order]]
        chunks_per_row = (counts + size - 1) // size
        first_chunk = torch.cumsum(chunks_per_row, 0) - chunks_per_row
        chunk = first_chunk[index] + rank // size
        pos = chunk * size + rank % size
        chunk_row = torch.repeat_interleave(torch.arange(n_rows, device=index.device), chunks_per_row)
        return cls(pos=pos, chunk_row=chunk_row, size=size, index=index)

    @property
    def distinct(self) -> bool:
        """Most nodes have their own attribute row (site PhDOS): per-row matrices would cost more than they save."""
        return 2 * self.chunk_row.numel() > self.pos.numel()

    @property
    def n_chunks(self) -> int:
        return self.chunk_row.numel()

    def matmul(self, x: Tensor, m: Tensor) -> Tensor:
        """``y[n] = x[n] @ m[row(n)]`` for x [N, R, u] and per-row matrices m [K, u, W]: y [N, R, W]."""
        n, r, u = x.shape
        w = m.shape[-1]
        padded = x.new_zeros(self.n_chunks * self.size, r * u).index_copy_(0, self.pos, x.reshape(n, r * u))
        y = torch.bmm(padded.view(self.n_chunks, self.size * r, u), m.index_select(0, self.chunk_row))
        return y.view(self.n_chunks * self.size, r * w).index_select(0, self.pos).view(n, r, w)


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


# ---------------------------------------------------------------------------------------------- layouts


def to_blocks(h: Tensor, irreps: o3.Irreps) -> List[Tensor]:
    """e3nn layout [N, sum mul*(2l+1)] -> one [N, 2l+1, mul] tensor per block (channels last)."""
    n = h.shape[0]
    return [h[:, sl].reshape(n, mul, ir.dim).transpose(1, 2) for sl, (mul, ir) in zip(irreps.slices(), irreps)]


def from_blocks(blocks: Sequence[Optional[Tensor]], irreps: o3.Irreps, like: Tensor) -> Tensor:
    """Inverse of :func:`to_blocks`; a missing block (no path reaches it) is zero, as in e3nn."""
    n = like.shape[0]
    parts = [like.new_zeros(n, mul * ir.dim) if b is None else b.transpose(1, 2).reshape(n, mul * ir.dim)
             for b, (mul, ir) in zip(blocks, irreps)]
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


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


# ---------------------------------------------------------------------------------------------- the evaluator


def _version(t: Tensor) -> int:
    """The in-place modification counter; inference tensors have none (-1: only identity is checked)."""
    return -1 if t.is_inference() else t._version


class PreparedGraphs:
    """A few prepared graphs, each kept while the very tensors it was built from are alive and unmodified.

    An entry is keyed by the ``id()`` of its source tensors (plus extras) and is served only while those same
    objects, unmodified (``_version``; inference tensors, which keep no counter, by identity only), are passed
    again. Every source tensor is held by a weak reference whose callback drops the entry when the tensor is
    freed, so an entry never outlives its tensors: a later tensor that reuses a freed tensor's ``id()`` finds
    no entry (and the identity check on a hit would refuse one anyway), and a dataset is never kept alive.
    At most ``capacity`` entries are kept, least recently used first out. Copies and pickles start empty.
    """

    def __init__(self, capacity: int = 8) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict = OrderedDict()  # key -> (weak references, versions, value)

    def get(self, tensors: Sequence[Tensor], extra: tuple, build: Callable[[], object]):
        """The value kept for ``tensors`` and ``extra``, or ``build()``'s, then kept."""
        key = tuple(id(t) for t in tensors) + tuple(extra)
        versions = tuple(_version(t) for t in tensors)
        hit = self._entries.get(key)
        if hit is not None and hit[1] == versions and all(ref() is t for ref, t in zip(hit[0], tensors)):
            self._entries.move_to_end(key)
            return hit[2]
        value = build()
        drop = _dropper(weakref.ref(self), key)
        self._entries[key] = ([weakref.ref(t, drop) for t in tensors], versions, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return value

    def _drop(self, key: tuple, ref: weakref.ref) -> None:
        """A source tensor of an entry was freed: drop that entry (not a newer one under the same key)."""
        hit = self._entries.get(key)
        if hit is not None and any(r is ref for r in hit[0]):
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self) -> dict:
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["capacity"])


def _dropper(store: weakref.ref, key: tuple) -> Callable[[weakref.ref], None]:
    """The weak-reference callback of one entry; it holds the store weakly, so a dropped store is freed at once."""

    def drop(ref: weakref.ref) -> None:
        alive = store()
        if alive is not None:
            alive._drop(key, ref)

    return drop


class FusedEvaluator:
    """The fused evaluation of one :class:`~betenet.models.network.BeteNet` architecture (module doc).

    Built from a network, it owns its convolutions' plans, the preparation of graphs (:meth:`prepare`) and a
    cache of prepared graphs (:class:`PreparedGraphs`, ``capacity`` entries). Calling it with the network
    evaluates that network's own parameters; it holds none itself (nor any reference to the network), so it
    adds nothing to state dicts, and copies or pickles of the network carry its plans with an empty cache.
    """

    def __init__(self, net, capacity: int = 8) -> None:
        convs = net.convolutions
        self.lmax, self.r_max, self.number_of_basis = net.lmax, net.r_max, net.number_of_basis
        self.irreps_edge_attr = net.irreps_edge_attr
        self.plans = [convolution_plan(c) for c in convs]
        #: What a prepared graph depends on: the geometry settings and the irreps of every convolution.
        self.signature = (self.lmax, self.r_max, self.number_of_basis, net.attr_dim, tuple(
            (str(c.irreps_in), str(c.irreps_node_attr), str(c.irreps_out)) for c in convs))
        self.graphs = PreparedGraphs(capacity)

    @staticmethod
    def serves(data, edge_feats: Optional[EdgeFeatures] = None) -> bool:
        """Whether the fused evaluation applies: not when gradients with respect to the geometry (``edge_vec``
        or ``edge_feats``) or the node attributes ``attr`` are wanted, which a prepared graph holds as constants."""
        geometry = [data.edge_vec] if edge_feats is None else [edge_feats.attr, edge_feats.radial]
        return not any(t.requires_grad for t in geometry + [data.attr])

    def prepare(self, data, edge_feats: Optional[EdgeFeatures] = None) -> PreparedGraph:
        """Everything the fused evaluation needs from a graph (batch) that training never changes (not cached).

        Distinct node-attribute rows and radial embeddings, shells, the sparse coupling matrices of every
        convolution's edge paths and the first convolution's node classes; built without gradients, in the
        dtype and on the device of ``data``.
        """
        with torch.no_grad():
            edge_src, edge_dst = data.edge_index[0], data.edge_index[1]
            if edge_feats is None:
                edge_feats = edge_features(data.edge_vec, self.lmax, self.r_max, self.number_of_basis)
            n = data.x.shape[0]
            attr_rows, attr_index = distinct_rows(data.attr)
            radial_rows, radial_index = distinct_rows(edge_feats.radial)
            shell, shell_dst, shell_radial = shells(edge_dst, radial_index, radial_rows.shape[0])
            n_shells = shell_dst.numel()
            groups = NodeGroups.build(attr_index, attr_rows.shape[0])
            pair_key, source_pair = torch.unique(radial_index * n + edge_src, return_inverse=True)
            classes = node_classes(data.x, data.attr, attr_index, attr_rows.shape[0], radial_index, edge_src)
            # pairs of every path of a convolution: the class pairs for the first one when there are classes
            class_pairs = [(classes.edge_pair, classes.num_pairs) if i == 0 and classes is not None else None
                           for i in range(len(self.plans))]
            dims = [p.dim_out for plan, every in zip(self.plans, class_pairs) for p in plan.edge
                    if every is None and not source_side(p)]
            return PreparedGraph(
                signature=self.signature, num_nodes=n, num_edges=edge_src.shape[0], num_shells=n_shells,
                attr_rows=attr_rows, groups=groups,
                radial_rows=radial_rows, shell_radial=shell_radial,
                shell_sum=shell_sums(shell_dst, n, dims, radial_rows.dtype),
                couplings=[build_couplings(plan, edge_feats.attr, self.irreps_edge_attr, edge_src, shell, n_shells,
                                           n, edge_dst, (source_pair, pair_key.numel()), every)
                           for plan, every in zip(self.plans, class_pairs)],
                source_pairs=(pair_key // n, pair_key % n),
                classes=classes,
                inputs=None if classes is not None else input_classes(data.x, groups),
            )

    def prepared_graph(self, data, edge_feats: Optional[EdgeFeatures] = None) -> PreparedGraph:
        """The prepared graph of ``data`` from the cache, prepared on first use.

        Keyed by the geometry tensors (``edge_vec``, or ``edge_feats``), ``edge_index``, ``attr`` and ``x`` (the
        first convolution's node classes), the node count, and whether inference mode is on: tensors made in
        inference mode cannot enter autograd later, so such a preparation is kept apart.
        """
        geometry = [data.edge_vec] if edge_feats is None else [edge_feats.attr, edge_feats.radial]
        tensors = geometry + [data.edge_index, data.attr, data.x]
        extra = (data.x.shape[0], torch.is_inference_mode_enabled())
        return self.graphs.get(tensors, extra, lambda: self.prepare(data, edge_feats))

    def check(self, graph: PreparedGraph, data) -> None:
        """Refuse a prepared graph of another architecture or of a graph of another size than ``data``."""
        if graph.signature != self.signature:
            raise InputError("prepared", "prepared for a network of another architecture")
        n, e = data.x.shape[0], data.edge_index.shape[1]
        if graph.num_nodes != n or graph.num_edges != e:
            raise InputError("prepared", f"prepared for {graph.num_nodes} nodes and {graph.num_edges} edges, "
                             f"data has {n} and {e}")

    def __call__(self, net, data, edge_feats: Optional[EdgeFeatures] = None,
                 prepared: Optional[PreparedGraph] = None) -> Tensor:
        """Per-node outputs [N, out_dim] of ``net`` (the network this evaluator was built from, or a copy of it)
        before its final ReLU: the same function of the same parameters as its e3nn evaluation.

        ``prepared`` passes a prepared graph explicitly (checked against ``data``); by default it comes from
        :meth:`prepared_graph`. Inputs that need gradients it would drop (:meth:`serves`) are refused.
        """
        if not self.serves(data, edge_feats):
            raise InputError("prepared" if prepared is not None else "data", "the fused evaluation holds the "
                             "geometry and attr as constants: gradients with respect to them need the e3nn evaluation")
        if prepared is None:
            prepared = self.prepared_graph(data, edge_feats)
        else:
            self.check(prepared, data)
        attr_rows = net.node_attributes(prepared.attr_rows)
        # the first convolution runs per node class, or its node maps per input row (module doc)
        classes, inputs = prepared.classes, prepared.inputs
        x_rows = classes.x_rows if classes is not None else inputs.x_rows if inputs is not None else data.x
        h = net.node_features(x_rows)
        inv_sqrt_neighbors = net.num_neighbors.rsqrt()
        for i, (conv, plan, couplings) in enumerate(zip(net.convolutions, self.plans, prepared.couplings)):
            first = dict(classes=classes, inputs=inputs) if i == 0 else {}
            h = convolution_forward(conv, plan, couplings, h, attr_rows, prepared, inv_sqrt_neighbors, **first)
            if i < len(net.layers):
                h = net.layers[i].gate(h)
        return h
