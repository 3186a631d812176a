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

from betenet.models.fused.evaluator import FusedEvaluator, PreparedGraphs
from betenet.models.fused.graph import PreparedGraph, shell_sums, source_side
from betenet.models.fused.ops import NodeGroups, ShellProduct, SparseMatmul, csr, distinct_rows, sparse_dense

__all__ = ["FusedEvaluator", "PreparedGraph", "PreparedGraphs", "NodeGroups", "ShellProduct", "SparseMatmul", "csr",
           "distinct_rows", "shell_sums", "source_side", "sparse_dense"]
