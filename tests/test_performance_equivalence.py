"""The fused evaluation (betenet.models.fused, BeteNet(fused=True)) against the straightforward e3nn one.

Same parameters, same inputs: predictions and every parameter gradient must agree to float tolerance, on real
BETE-NET structures (CSO attributes, many repeated elements and bond lengths), on CPD-like attributes (every
node distinct), on an lmax = 2 network (other Wigner-3j paths), and along several AdamW steps of the
project's training module (the prepared graph is reused from step to step). The graph cache must never
serve a stale graph.
"""

import copy

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from betenet.data.graphs import graph_stats, structure_to_graph
from betenet.data.structures import load_structure
from betenet.errors import InputError
from betenet.models.fused import NodeGroups, ShellProduct, csr, shell_sums, source_side, sparse_dense
from betenet.models.module import BetenetModule
from betenet.models.network import BeteNet

N_STRUCTURES = 30  # the first structures in numeric order: ~100 atoms, ~1,200 edges
PAPER = dict(in_dim=118, attr_dim=118, out_dim=51, em_dim=64, mul=32, lmax=1, layers=2, r_max=4.0,
             number_of_basis=10, radial_layers=1, radial_neurons=100, share_embedding=True)
SMALL = dict(PAPER, em_dim=16, mul=8, radial_neurons=24)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def graphs(structures_dir):
    files = sorted(structures_dir.glob("*.cif"), key=lambda p: int(p.stem))[:N_STRUCTURES]
    rng = np.random.default_rng(0)
    out = []
    for f in files:
        g = structure_to_graph(load_structure(f), r_max=4.0, allow_isolated=True, y=rng.random(51),
                               dtype=torch.float64)
        g.labels = torch.full((1, 4), float("nan"), dtype=torch.float64)
        g.weight = torch.ones(1, dtype=torch.float64)
        out.append(g)
    return out


def pair(seed=0, **kw):
    """A fused network and a straightforward copy with identical parameters (float64)."""
    torch.manual_seed(seed)
    fused = BeteNet(**kw).double()
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


def test_paper_network_on_real_structures_float64(graphs):
    batch = Batch.from_data_list(graphs)
    fused, plain = pair(**PAPER, num_neighbors=graph_stats(graphs)["mean_neighbours"])
    compare(fused, plain, batch, rtol=1e-10)
    # the prepared graph really is smaller than the edge list: distinct attributes, lengths and shells
    cache = fused.evaluator.prepare(batch)
    assert cache.attr_rows.shape[0] < batch.num_nodes and cache.num_shells < cache.num_edges
    # and the first convolution runs on node classes and (radial row, source class) pairs
    assert cache.classes is not None and cache.classes.num_pairs < cache.num_shells
    # layer 2's 0e -> 1o path runs on source pairs (fewer input than output components)
    assert any(source_side(p) for p in fused.evaluator.plans[1].edge) and cache.source_pairs is not None


def test_paper_network_on_real_structures_float32(graphs):
    batch = Batch.from_data_list(graphs)
    for key in ("x", "z", "edge_vec"):
        batch[key] = batch[key].float()
    fused, plain = pair(**PAPER, num_neighbors=graph_stats(graphs)["mean_neighbours"])
    fused.float(), plain.float()
    compare(fused, plain, batch, rtol=2e-4)


def test_distinct_node_attributes_cpd_like(graphs):
    """Site PhDOS makes every node attribute row distinct: the grouped products degenerate to one node each."""
    rng = np.random.default_rng(2)
    gs = []
    for g in graphs[:12]:
        g = g.clone()
        g.z = torch.cat([g.z, torch.as_tensor(rng.random((g.num_nodes, 51)))], dim=1)
        g.x = torch.cat([g.x, torch.ones(g.num_nodes, 51, dtype=g.x.dtype)], dim=1)
        gs.append(g)
    batch = Batch.from_data_list(gs)
    kw = dict(SMALL, in_dim=169, attr_dim=169, num_neighbors=10.0)
    fused, plain = pair(**kw)
    cache = fused.evaluator.prepare(batch)
    assert cache.attr_rows.shape[0] == batch.num_nodes and cache.classes is None
    # x = [mass one-hot, ones] repeats by element: the first node maps contract the input side per element
    assert cache.inputs is not None and cache.inputs.x_rows.shape[0] < batch.num_nodes // 2
    compare(fused, plain, batch, rtol=1e-10)
    # every input row distinct as well: per-node products throughout
    batch.x = batch.x + torch.as_tensor(rng.random(batch.x.shape))
    assert fused.evaluator.prepare(batch).inputs is None
    compare(fused, plain, batch, rtol=1e-10)


def test_node_classes_follow_input_features_too(graphs):
    """Nodes with equal attributes but different input features are different classes (release CPD-like x)."""
    batch = Batch.from_data_list(graphs)
    batch.x = batch.x * (1.0 + (batch.batch % 2 == 0).to(batch.x.dtype))[:, None]  # x doubled in every other graph
    fused, plain = pair(**dict(SMALL, share_embedding=False, num_neighbors=10.0))
    classes = fused.evaluator.prepare(batch).classes
    assert classes is not None and classes.x_rows.shape[0] > fused.evaluator.prepare(batch).attr_rows.shape[0]
    compare(fused, plain, batch, rtol=1e-10)


def test_network_without_gated_layers(graphs):
    """layers = 0: the output convolution is the first one and takes the node classes."""
    batch = Batch.from_data_list(graphs[:8])
    fused, plain = pair(**dict(SMALL, layers=0, num_neighbors=10.0))
    compare(fused, plain, batch, rtol=1e-10)


def test_lmax2_network_separate_embeddings(graphs):
    """Other Wigner-3j couplings (l = 2 harmonics and features) and the non-shared embedding."""
    batch = Batch.from_data_list(graphs[:10])
    fused, plain = pair(**dict(SMALL, lmax=2, share_embedding=False, num_neighbors=12.0))
    compare(fused, plain, batch, rtol=1e-10)


def test_training_steps_match_the_straightforward_path(graphs):
    """BetenetModule + AdamW, full batch: the same parameters after several steps (cache reused every step)."""
    batch = Batch.from_data_list(graphs[:20])
    net = dict(SMALL, num_neighbors=graph_stats(graphs[:20])["mean_neighbours"])
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
    for (name, a), b in zip(modules[0].named_parameters(), modules[1].parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-9 * b.abs().max().item()), name
    moved = [(p - p0).abs().max().item() for p, p0 in zip(modules[0].parameters(), initial)]
    assert min(moved) > 1e-4  # lr 0.005: every parameter tensor moved, so the comparison above is not vacuous


def test_graph_cache_is_reused_rebuilt_and_per_network(graphs, monkeypatch):
    batch = Batch.from_data_list(graphs[:8])
    fused, plain = pair(**dict(SMALL, num_neighbors=10.0))
    calls = []
    original = type(fused.evaluator).prepare
    monkeypatch.setattr(type(fused.evaluator), "prepare", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    first = fused(batch)
    assert torch.equal(fused(batch), first) and len(calls) == 1           # same tensors: prepared once
    torch.manual_seed(5)
    other = BeteNet(**dict(SMALL, num_neighbors=10.0)).double()          # an ensemble member: its own cache,
    other(batch, prepared=fused.evaluator.prepared_graph(batch))          # or a preparation passed explicitly
    assert len(calls) == 1 and len(other.evaluator.graphs) == 0
    batch.edge_vec.mul_(1.02)                                             # moved atoms (in place)
    moved = fused(batch)
    assert len(calls) == 2 and not torch.allclose(moved, first)
    assert torch.allclose(moved, plain(batch), rtol=0, atol=1e-10 * moved.abs().max().item())
    batch.edge_vec = batch.edge_vec.clone()                               # new tensor, same values
    assert torch.equal(fused(batch), moved) and len(calls) == 3


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


def test_inference_mode_then_training_on_the_same_batch(graphs):
    batch = Batch.from_data_list(graphs[:6])
    fused, plain = pair(**dict(SMALL, num_neighbors=10.0))
    with torch.inference_mode():
        pred = fused(batch)
    out = fused(batch)  # a cache built under inference mode must not leak into autograd
    out.sum().backward()
    assert torch.allclose(out.detach(), pred, rtol=0, atol=1e-12)


def test_explicit_cache_is_checked(graphs):
    small, large = Batch.from_data_list(graphs[:3]), Batch.from_data_list(graphs[:5])
    fused, _ = pair(**dict(SMALL, num_neighbors=10.0))
    with pytest.raises(InputError, match="prepared"):
        fused(small, prepared=fused.evaluator.prepare(large))
    other = BeteNet(**dict(SMALL, layers=1, num_neighbors=10.0)).double()
    with pytest.raises(InputError, match="another architecture"):
        fused(small, prepared=other.evaluator.prepare(small))


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


def test_full_batch_moves_to_the_device_once(graphs):
    """Lightning moves every batch to the device at each step. A torch_geometric batch moves in place
    (``Batch.to`` replaces its tensors and returns itself), so the full batch, yielded as the same object every
    epoch, is copied at the first step only, and the prepared graph keyed by its tensors stays valid."""
    module = BetenetModule(net=dict(SMALL, num_neighbors=8.0))
    batch = Batch.from_data_list(graphs[:3])
    device = torch.device("meta")  # a real move (new tensors) without a GPU
    first = module.transfer_batch_to_device(batch, device, 0)
    assert first is batch and batch.x.device.type == "meta"
    tensors = [batch.x, batch.z, batch.edge_vec, batch.edge_index]
    again = module.transfer_batch_to_device(batch, device, 0)
    assert again is batch and all(a is b for a, b in zip(tensors, [batch.x, batch.z, batch.edge_vec,
                                                                    batch.edge_index]))
