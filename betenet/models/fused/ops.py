"""Exact building blocks of the fused evaluation: sparse matmuls with their own backward, the shell product,
the grouping of nodes by distinct attribute rows, and the irreps block layout (:mod:`betenet.models.fused`)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from e3nn import o3


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
