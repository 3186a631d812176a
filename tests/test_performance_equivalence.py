"""The fused evaluation (betenet.models.fused, BeteNet(fused=True)) against the straightforward e3nn one.

Same parameters, same inputs: predictions and every parameter gradient must agree to float tolerance, on
generated crystals (the demo prototypes decorated with repeated elements, supercells, a rattled copy with
distinct bond lengths, atoms with only their self-edge), with CSO attributes (repeated elements and bond
lengths), CPD-like attributes (every node distinct), an lmax = 2 network (other Wigner-3j paths), a network
without gated layers, and along several AdamW steps of the project's training module (the prepared graph is
reused from step to step). One test repeats the comparison on real BETE-NET structures when ../shared is there.
The evaluator's cache of prepared graphs must never serve a stale graph, must not outlive its data, and must
stay out of state dicts, copies and pickles.
"""

import copy
import gc
import io
import pickle

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from torch_geometric.data import Batch

from betenet.data.graphs import graph_stats, structure_to_graph
from betenet.data.prototypes import decorate, prototypes
from betenet.data.structures import load_structure
from betenet.errors import InputError
from betenet.models.fused import (NodeGroups, PreparedGraphs, ShellProduct, csr, shell_sums, source_side,
                                  sparse_dense)
from betenet.models.module import BetenetModule
from betenet.models.network import BeteNet

PAPER = dict(in_dim=118, attr_dim=118, out_dim=51, em_dim=64, mul=32, lmax=1, layers=2, r_max=4.0,
             number_of_basis=10, radial_layers=1, radial_neurons=100, share_embedding=True)
SMALL = dict(PAPER, em_dim=16, mul=8, radial_neurons=24)
#: (prototype, one element per role, supercell): elements repeat across structures (Nb, Cu, Mg, Ni, ...)
DECORATIONS = (
    ("A15", ("Nb", "Sn"), (1, 1, 1)),
    ("C15", ("Zr", "V"), (1, 1, 1)),
    ("L2_1", ("Cu", "Ni", "Al"), (1, 1, 1)),
    ("E2_1", ("Mg", "C", "Ni"), (1, 1, 1)),
    ("B1", ("Nb", "C"), (1, 1, 1)),
    ("C32", ("Mg", "B"), (1, 1, 1)),
    ("B2", ("Cu", "Zn"), (2, 2, 1)),
    ("A3", ("Mg",), (1, 1, 2)),
    ("L1_2", ("Cu", "Au"), (1, 1, 1)),
)
N_REAL = 30  # real structures of the one test on shared data: the first in numeric order, ~100 atoms

pytestmark = pytest.mark.usefixtures("one_thread")


def generated_structures(seed: int = 0) -> list:
    """Decorated demo prototypes, a rattled copy of the first (every bond length distinct), a cell whose Cs
    atom has no neighbour within 4 Å, and a lone Cs atom (a graph of one node and its self-edge)."""
    by_name = {p.name.split()[0]: p for p in prototypes()}
    out = [decorate(by_name[name], elements) * cells for name, elements, cells in DECORATIONS]
    rattled = out[0].copy()
    rng = np.random.default_rng(seed)
    for i in range(len(rattled)):
        rattled.translate_sites([i], rng.normal(scale=0.05, size=3), frac_coords=False)
    out.append(rattled)
    out.append(Structure(Lattice.cubic(9.0), ["Cu", "Cu", "Cs"], [[0, 0, 0], [2.5, 0, 0], [4.5, 4.5, 4.5]],
                         coords_are_cartesian=True))
    out.append(Structure(Lattice.cubic(5.0), ["Cs"], [[0, 0, 0]]))
    return out


def to_graphs(structures, seed: int = 0) -> list:
    """float64 graphs at 4 Å with self-edges, random targets, no reported values (as training sees them)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in structures:
        g = structure_to_graph(s, r_max=4.0, allow_isolated=True, y=rng.random(51), dtype=torch.float64)
        g.reported = torch.full((1, 4), float("nan"), dtype=torch.float64)
        g.weight = torch.ones(1, dtype=torch.float64)
        out.append(g)
    return out


@pytest.fixture(scope="module")
def graphs():
    return to_graphs(generated_structures())


def as_dtype(batch, dtype):
    for key in ("x", "attr", "edge_vec", "y", "reported", "weight"):
        batch[key] = batch[key].to(dtype)
    return batch


def with_site_dos(graphs, seed: int = 2) -> list:
    """CPD-like graphs: a random 51-bin site PhDOS appended to z (every attribute row distinct) and 51 ones to x,
    the release's layout."""
    rng = np.random.default_rng(seed)
    out = []
    for g in graphs:
        g = g.clone()
        g.attr = torch.cat([g.attr, torch.as_tensor(rng.random((g.num_nodes, 51)), dtype=g.attr.dtype)], dim=1)
        g.x = torch.cat([g.x, torch.ones(g.num_nodes, 51, dtype=g.x.dtype)], dim=1)
        out.append(g)
    return out


def pair(seed=0, dtype=torch.float64, **kw):
    """A fused network and a straightforward copy with identical parameters."""
    torch.manual_seed(seed)
    fused = BeteNet(**kw).to(dtype)
    plain = copy.deepcopy(fused)
    plain.fused = False
    return fused, plain


def compare(fused, plain, batch, rtol):
    """Outputs and all parameter gradients of a nonlinear loss agree to rtol of their scale."""
    out_f, out_p = fused(batch), plain(batch)
    scale = out_p.abs().max().item()
    assert scale > 0
    assert torch.allclose(out_f, out_p, rtol=0, atol=rtol * scale), ((out_f - out_p).abs().max() / scale).item()
    target = torch.rand(out_p.shape, generator=torch.Generator().manual_seed(1), dtype=out_p.dtype) * scale
    for model, out in ((fused, out_f), (plain, out_p)):
        model.zero_grad()
        ((out - target) ** 2).mean().backward()
    for (name, p_f), p_p in zip(fused.named_parameters(), plain.parameters()):
        g_scale = p_p.grad.abs().max()
        assert g_scale > 0, name
        err = (p_f.grad - p_p.grad).abs().max() / g_scale
        assert err < rtol, f"{name}: relative gradient error {err.item():.2e}"


# ---------------------------------------------------------------------------------------------- equivalence


def test_generated_graphs_cover_the_cases(graphs):
    """Repeated elements, graphs of different sizes, and atoms whose only edge is their self-edge."""
    sizes = {g.num_nodes for g in graphs}
    assert len(sizes) >= 5 and min(sizes) == 1
    src, dst = zip(*((g.edge_index[0], g.edge_index[1]) for g in graphs))
    with_neighbours = sum(len(set(s[s != d].tolist())) for s, d in zip(src, dst))
    assert sum(g.num_nodes for g in graphs) - with_neighbours == 2  # the two Cs atoms: self-edge only
    elements = [tuple(g.attr.argmax(1).tolist()) for g in graphs]
    assert len({e for el in elements for e in el}) < sum(len(set(el)) for el in elements)  # shared elements


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_paper_network(graphs, dtype, rtol):
    batch = as_dtype(Batch.from_data_list(graphs), dtype)
    fused, plain = pair(dtype=dtype, **PAPER, num_neighbors=graph_stats(graphs)["num_neighbors"])
    compare(fused, plain, batch, rtol=rtol)
    # the prepared graph really is smaller than the edge list: distinct attributes, lengths and shells
    prepared = fused.evaluator.prepare(batch)
    assert prepared.attr_rows.shape[0] < batch.num_nodes and prepared.num_shells < prepared.num_edges
    assert prepared.radial_rows.shape[0] < prepared.num_shells
    # the first convolution runs on node classes and (radial row, source class) pairs
    assert prepared.classes is not None and prepared.classes.num_pairs < prepared.num_shells
    # layer 2's 0e -> 1o path runs on source pairs (fewer input than output components)
    assert any(source_side(p) for p in fused.evaluator.plans[1].edge) and prepared.source_pairs is not None


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_distinct_node_attributes_cpd_like(graphs, dtype, rtol):
    """Site PhDOS makes every node attribute row distinct: the grouped products degenerate to one node each."""
    batch = as_dtype(Batch.from_data_list(with_site_dos(graphs)), dtype)
    fused, plain = pair(dtype=dtype, **dict(SMALL, in_dim=169, attr_dim=169, num_neighbors=10.0))
    prepared = fused.evaluator.prepare(batch)
    assert prepared.attr_rows.shape[0] == batch.num_nodes and prepared.classes is None
    # x = [mass one-hot, ones] repeats by element: the first node maps contract the input side per element
    assert prepared.inputs is not None and prepared.inputs.x_rows.shape[0] < batch.num_nodes // 2
    compare(fused, plain, batch, rtol=rtol)
    # every input row distinct as well: per-node products throughout
    batch.x = batch.x + torch.as_tensor(np.random.default_rng(3).random(batch.x.shape), dtype=dtype)
    assert fused.evaluator.prepare(batch).inputs is None
    compare(fused, plain, batch, rtol=rtol)


def test_node_classes_follow_input_features_too(graphs):
    """Nodes with equal attributes but different input features are different classes (release CPD-like x)."""
    batch = Batch.from_data_list(graphs)
    batch.x = batch.x * (1.0 + (batch.batch % 2 == 0).to(batch.x.dtype))[:, None]  # x doubled in every other graph
    fused, plain = pair(**dict(SMALL, share_embedding=False, num_neighbors=10.0))
    prepared = fused.evaluator.prepare(batch)
    assert prepared.classes is not None and prepared.classes.x_rows.shape[0] > prepared.attr_rows.shape[0]
    compare(fused, plain, batch, rtol=1e-10)


def test_network_without_gated_layers(graphs):
    """layers = 0: the output convolution is the first one and takes the node classes."""
    batch = Batch.from_data_list(graphs)
    fused, plain = pair(**dict(SMALL, layers=0, num_neighbors=10.0))
    assert fused.evaluator.prepare(batch).classes is not None
    compare(fused, plain, batch, rtol=1e-10)


def test_lmax2_network_separate_embeddings(graphs):
    """Other Wigner-3j couplings (l = 2 harmonics and features) and the non-shared embedding."""
    batch = Batch.from_data_list(graphs)
    fused, plain = pair(**dict(SMALL, lmax=2, share_embedding=False, num_neighbors=12.0))
    compare(fused, plain, batch, rtol=1e-10)


def test_training_steps_match_the_straightforward_path(graphs):
    """BetenetModule + AdamW, full batch: the same parameters after several steps (cache reused every step)."""
    batch = Batch.from_data_list(graphs)
    net = dict(SMALL, num_neighbors=graph_stats(graphs)["num_neighbors"])
    modules = []
    for fused in (True, False):
        torch.manual_seed(0)
        modules.append(BetenetModule(net=dict(net, fused=fused), dtype="float64"))
    initial = [p.detach().clone() for p in modules[0].parameters()]
    for module in modules:
        opt = module.configure_optimizers()
        for _ in range(4):
            opt.zero_grad()
            module.training_step(batch, 0).backward()
            opt.step()
    assert len(modules[0].net.evaluator.graphs) == 1  # prepared once, reused by every step
    for (name, a), b in zip(modules[0].named_parameters(), modules[1].parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-9 * b.abs().max().item()), name
    moved = [(p - p0).abs().max().item() for p, p0 in zip(modules[0].parameters(), initial)]
    assert min(moved) > 1e-4  # lr 0.005: every parameter tensor moved, so the comparison above is not vacuous


def test_paper_network_on_real_structures(structures_dir):
    """The one test on shared data: real BETE-NET structures (skips without ../shared)."""
    files = sorted(structures_dir.glob("*.cif"), key=lambda p: int(p.stem))[:N_REAL]
    graphs = to_graphs([load_structure(f) for f in files])
    batch = Batch.from_data_list(graphs)
    fused, plain = pair(**PAPER, num_neighbors=graph_stats(graphs)["num_neighbors"])
    compare(fused, plain, batch, rtol=1e-10)
    prepared = fused.evaluator.prepare(batch)
    assert prepared.classes is not None and prepared.classes.num_pairs < prepared.num_shells < prepared.num_edges


# ---------------------------------------------------------------------------------------------- the cache


def test_prepared_graph_is_reused_and_rebuilt(graphs, monkeypatch):
    batch = Batch.from_data_list(graphs[:8])
    fused, plain = pair(**dict(SMALL, num_neighbors=10.0))
    calls = []
    original = type(fused.evaluator).prepare
    monkeypatch.setattr(type(fused.evaluator), "prepare",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    first = fused(batch)
    assert torch.equal(fused(batch), first) and len(calls) == 1           # same tensors: prepared once
    batch.edge_vec.mul_(1.02)                                             # moved atoms (in place)
    moved = fused(batch)
    assert len(calls) == 2 and not torch.allclose(moved, first)
    assert len(fused.evaluator.graphs) == 1                               # the stale entry was replaced
    assert torch.allclose(moved, plain(batch), rtol=0, atol=1e-10 * moved.abs().max().item())
    batch.edge_vec = batch.edge_vec.clone()                               # new tensor, same values
    assert torch.equal(fused(batch), moved) and len(calls) == 3


def test_each_network_has_its_own_cache_and_members_can_share_a_preparation(graphs):
    batch = Batch.from_data_list(graphs[:8])
    fused, _ = pair(**dict(SMALL, num_neighbors=10.0))
    torch.manual_seed(5)
    member = BeteNet(**dict(SMALL, num_neighbors=10.0)).double()         # another member, same architecture
    fused(batch)
    assert len(fused.evaluator.graphs) == 1 and len(member.evaluator.graphs) == 0
    prepared = fused.evaluator.prepared_graph(batch)                      # the cached one, shared explicitly
    assert torch.equal(member(batch, prepared=prepared), member(batch))
    assert len(member.evaluator.graphs) == 1                              # the call without it prepared its own


def test_freed_batch_drops_its_preparation(graphs):
    fused, _ = pair(**dict(SMALL, num_neighbors=10.0))
    batch = Batch.from_data_list(graphs[:6])
    fused(batch)
    assert len(fused.evaluator.graphs) == 1
    del batch
    gc.collect()
    assert len(fused.evaluator.graphs) == 0


def test_new_tensor_with_a_recycled_id_is_prepared_afresh(graphs):
    """The old edge vectors are freed first; of many new tensors (moved atoms) the one that CPython places at
    their address, so with the same ``id()``, becomes the new ``edge_vec``."""
    fused, plain = pair(**dict(SMALL, num_neighbors=10.0))
    batch = Batch.from_data_list(graphs[:6])
    first = fused(batch)
    old_id, vec = id(batch.edge_vec), batch.edge_vec.numpy() * 0.97  # held outside torch
    batch.edge_vec = None
    candidates = [torch.from_numpy(vec) for _ in range(1000)]
    recycled = [t for t in candidates if id(t) == old_id]
    assert recycled, "no new tensor reused the freed address (CPython normally reuses it at once)"
    batch.edge_vec = recycled[0]
    out = fused(batch)
    assert not torch.allclose(out, first)
    assert torch.allclose(out, plain(batch), rtol=0, atol=1e-10 * out.abs().max().item())


def test_store_refuses_a_tensor_at_a_freed_tensors_address():
    store = PreparedGraphs(capacity=4)
    keep, gone = torch.zeros(3), torch.ones(3)
    assert store.get([keep, gone], ("extra",), lambda: "old") == "old"
    assert store.get([keep, gone], ("extra",), lambda: "rebuilt") == "old"
    old_id = id(gone)
    del gone
    assert len(store) == 0  # dropped when one of its tensors was freed (not only the first)
    candidates = [torch.ones(3) for _ in range(256)]
    recycled = [t for t in candidates if id(t) == old_id]
    assert recycled, "no new tensor reused the freed address (CPython normally reuses it at once)"
    assert store.get([keep, recycled[0]], ("extra",), lambda: "new") == "new"


def test_store_is_bounded_least_recently_used_first_out():
    store = PreparedGraphs(capacity=2)
    a, b, c = torch.zeros(1), torch.zeros(1), torch.zeros(1)
    store.get([a], (), lambda: "a")
    store.get([b], (), lambda: "b")
    store.get([a], (), lambda: "a again")     # a is now the most recently used
    store.get([c], (), lambda: "c")           # evicts b
    assert len(store) == 2
    assert store.get([a], (), lambda: "a rebuilt") == "a" and store.get([b], (), lambda: "b rebuilt") == "b rebuilt"
    with pytest.raises(ValueError):
        PreparedGraphs(capacity=0)


def test_a_dropped_network_frees_its_cache_while_the_data_lives(graphs):
    """The weak references' callbacks hold the store weakly: the data never keeps a network's cache alive."""
    import weakref

    batch = Batch.from_data_list(graphs[:4])
    fused, _ = pair(**dict(SMALL, num_neighbors=10.0))
    fused(batch)
    prepared = weakref.ref(fused.evaluator.prepared_graph(batch))
    del fused
    gc.collect()
    assert prepared() is None


def test_gradient_with_respect_to_geometry_uses_the_e3nn_path(graphs):
    batch = Batch.from_data_list(graphs[:4])
    fused, plain = pair(**dict(SMALL, num_neighbors=10.0))
    vec = batch.edge_vec.clone().requires_grad_()
    batch.edge_vec = vec
    fused(batch).sum().backward()
    grad = vec.grad.clone()
    vec.grad = None
    plain(batch).sum().backward()
    assert torch.isfinite(grad).all() and grad.abs().max() > 0 and torch.equal(grad, vec.grad)
    assert len(fused.evaluator.graphs) == 0
    with pytest.raises(InputError, match="prepared"):  # a prepared graph would silently drop that gradient
        fused(batch, prepared=fused.evaluator.prepare(batch))


def test_inference_mode_then_training_on_the_same_batch(graphs):
    batch = Batch.from_data_list(graphs[:6])
    fused, plain = pair(**dict(SMALL, num_neighbors=10.0))
    with torch.inference_mode():
        pred = fused(batch)
    out = fused(batch)  # a cache built under inference mode must not leak into autograd
    out.sum().backward()
    assert torch.allclose(out.detach(), pred, rtol=0, atol=1e-12)
    assert len(fused.evaluator.graphs) == 2


def test_explicit_preparation_is_checked(graphs):
    small, large = Batch.from_data_list(graphs[:3]), Batch.from_data_list(graphs[:5])
    fused, _ = pair(**dict(SMALL, num_neighbors=10.0))
    with pytest.raises(InputError, match="prepared"):
        fused(small, prepared=fused.evaluator.prepare(large))
    other = BeteNet(**dict(SMALL, layers=1, num_neighbors=10.0)).double()
    with pytest.raises(InputError, match="another architecture"):
        fused(small, prepared=other.evaluator.prepare(small))


# ---------------------------------------------------------------------------------------------- copies, moves


def test_copies_and_pickles_carry_no_prepared_graph_and_evaluate_the_same(graphs):
    batch = Batch.from_data_list(graphs[:6])
    fused, _ = pair(**dict(SMALL, num_neighbors=10.0))
    expected = fused(batch)
    assert len(fused.evaluator.graphs) == 1
    buffer = io.BytesIO()
    torch.save(fused, buffer)
    buffer.seek(0)
    copies = [copy.deepcopy(fused), pickle.loads(pickle.dumps(fused)), torch.load(buffer, weights_only=False)]
    for other in copies:
        assert other.evaluator is not fused.evaluator and len(other.evaluator.graphs) == 0
        assert torch.equal(other(batch), expected)
        assert len(other.evaluator.graphs) == 1
    assert len(fused.evaluator.graphs) == 1  # the original keeps its own
    keys = set(fused.state_dict())
    assert not any("evaluator" in k or "plan" in k for k in keys)
    assert keys == set(copies[0].state_dict())


def test_dtype_change_empties_the_cache_and_the_network_follows(graphs):
    batch = Batch.from_data_list(graphs[:6])
    fused, plain = pair(dtype=torch.float32, **dict(SMALL, num_neighbors=10.0))
    batch32 = as_dtype(batch.clone(), torch.float32)
    fused(batch32)
    assert len(fused.evaluator.graphs) == 1
    fused.double()
    plain.double()
    assert len(fused.evaluator.graphs) == 0
    out = fused(batch)
    assert out.dtype == torch.float64
    assert torch.allclose(out, plain(batch), rtol=0, atol=1e-10 * out.abs().max().item())


def test_full_batch_moves_to_the_device_once(graphs):
    """Lightning moves every batch to the device at each step. A torch_geometric batch moves in place
    (``Batch.to`` replaces its tensors and returns itself), so the full batch, yielded as the same object every
    epoch, is copied at the first step only, and the prepared graph keyed by its tensors stays valid."""
    module = BetenetModule(net=dict(SMALL, num_neighbors=8.0))
    batch = Batch.from_data_list(graphs[:3])
    device = torch.device("meta")  # a real move (new tensors) without a GPU
    first = module.transfer_batch_to_device(batch, device, 0)
    assert first is batch and batch.x.device.type == "meta"
    tensors = [batch.x, batch.attr, batch.edge_vec, batch.edge_index]
    again = module.transfer_batch_to_device(batch, device, 0)
    assert again is batch and all(a is b for a, b in zip(tensors, [batch.x, batch.attr, batch.edge_vec,
                                                                    batch.edge_index]))


# ---------------------------------------------------------------------------------------------- building blocks


def test_node_groups_matmul_equals_per_node_products():
    gen = torch.Generator().manual_seed(0)
    for n, k in ((50, 7), (50, 50), (50, 1), (3, 2)):
        index = torch.randint(0, k, (n,), generator=gen)
        index[:k] = torch.arange(k)[: min(k, n)]  # every row used
        x = torch.randn(n, 3, 5, generator=gen, dtype=torch.float64)
        m = torch.randn(k, 5, 4, generator=gen, dtype=torch.float64)
        expected = torch.stack([x[i] @ m[index[i]] for i in range(n)])
        assert torch.allclose(NodeGroups.build(index, k).matmul(x, m), expected, atol=1e-13)


def test_csr_sums_duplicate_entries():
    rows, cols = torch.tensor([0, 2, 0, 1, 2]), torch.tensor([1, 0, 1, 3, 0])
    vals = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    dense = torch.zeros(3, 4, dtype=torch.float64)
    dense.index_put_((rows, cols), vals, accumulate=True)  # (0,1): 1+3, (2,0): 2+5, (1,3): 4
    assert torch.equal(csr(rows, cols, vals, (3, 4)).to_dense(), dense)


def test_sparse_dense_ignores_uninitialised_output_and_matches_dense():
    """The product writes into an uninitialised buffer (beta = 0): empty rows must come out 0, never garbage."""
    gen = torch.Generator().manual_seed(1)
    rows, cols = torch.tensor([0, 0, 3, 4]), torch.tensor([1, 2, 0, 2])  # rows 1 and 2 empty
    vals = torch.randn(4, generator=gen, dtype=torch.float64)
    S = csr(rows, cols, vals, (5, 3))
    x = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    for _ in range(3):  # fresh buffers may reuse freed memory holding NaNs
        torch.full((5, 6), float("nan"), dtype=torch.float64)
        out = sparse_dense(S, x)
        assert torch.isfinite(out).all()
        assert torch.allclose(out, S.to_dense() @ x, atol=1e-14)


def test_shell_product_gradients():
    gen = torch.Generator().manual_seed(2)
    t = torch.randn(3, 7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.equal(ShellProduct.apply(t, w), t * w)
    assert torch.autograd.gradcheck(ShellProduct.apply, (t, w))


def test_shell_sums_add_component_major_shells_into_node_major_rows():
    shell_dst = torch.tensor([0, 0, 2, 1, 2])  # 5 shells into 3 atoms
    sums = shell_sums(shell_dst, 3, [1, 3, 3], torch.float64)
    assert sorted(sums) == [1, 3]
    n_shells, d = 5, 3
    m = torch.arange(d * n_shells * 2, dtype=torch.float64).view(d, n_shells, 2)  # [d, P, mul]
    S, S_t = sums[d]
    got = (S.to_dense() @ m.reshape(d * n_shells, 2)).view(3, d, 2)
    expected = torch.zeros(3, d, 2, dtype=torch.float64)
    for s, i in enumerate(shell_dst.tolist()):
        expected[i] += m[:, s, :]
    assert torch.equal(got, expected)
    assert torch.equal(S_t.to_dense(), S.to_dense().T)
