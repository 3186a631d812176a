"""The fused evaluator a network holds, and its small cache of prepared graphs (:mod:`betenet.models.fused`)."""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Callable, Optional, Sequence

import torch

from betenet.errors import InputError
from betenet.models.fused.graph import (PreparedGraph, build_couplings, convolution_forward, input_classes,
                                        node_classes, shell_sums, shells, source_side)
from betenet.models.fused.ops import NodeGroups, distinct_rows
from betenet.models.fused.plans import convolution_plan
from betenet.models.radial import EdgeFeatures, edge_features

Tensor = torch.Tensor


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
