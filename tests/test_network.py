"""Tests of the BETE-NET e3nn network: shapes, E(3) and permutation invariance, batching, self-loops, parameter count.

Graphs are built here from small periodic crystals with ASE's neighbour list (release convention:
edge_vec = pos[j] - pos[i] + S @ cell, self-loops with zero vectors), independent of betenet.data.
"""

import copy
import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.data import atomic_masses
from ase.neighborlist import neighbor_list
from e3nn import o3
from torch_geometric.data import Batch, Data

from betenet.errors import InputError
from betenet.models.network import BeteNet
from betenet.models.radial import edge_features, radial_embedding, smooth_cutoff

R_MAX = 4.0
N_BINS = 51
SMALL = dict(em_dim=8, mul=4, lmax=1, layers=2, r_max=R_MAX, number_of_basis=10, radial_layers=1, radial_neurons=16)


def crystal_graph(atoms: Atoms, dtype=torch.float64, phdos_dim: int = 0, seed: int = 0) -> Data:
    """Release-style graph: x = one-hot(Z)*mass (+ ones), z = one-hot(Z) (+ site PhDOS), all neighbours within R_MAX."""
    i, j, S = neighbor_list("ijS", atoms, R_MAX, self_interaction=True)
    pos = atoms.get_positions()
    edge_vec = pos[j] - pos[i] + S @ atoms.get_cell().array
    numbers = atoms.get_atomic_numbers()
    onehot = np.zeros((len(atoms), 118))
    onehot[np.arange(len(atoms)), numbers - 1] = 1.0
    x, z = onehot * atomic_masses[numbers][:, None], onehot
    if phdos_dim:
        x = np.ones((len(atoms), phdos_dim))
        rng = np.random.default_rng(seed + numbers.sum())
        z = np.concatenate([onehot, rng.random((len(atoms), phdos_dim))], axis=1)
    t = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    return Data(
        x=t(x), attr=t(z), edge_vec=t(edge_vec), edge_index=torch.tensor(np.stack([i, j]), dtype=torch.long),
        num_nodes=len(atoms),
    )


def rocksalt() -> Atoms:
    a = 4.2  # NaCl-like fcc primitive cell, 2 atoms
    cell = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    return Atoms("NaCl", positions=[[0, 0, 0], [0.5 * a, 0, 0]], cell=cell, pbc=True)


def triclinic(seed: int = 1) -> Atoms:
    rng = np.random.default_rng(seed)
    cell = np.diag([3.1, 3.6, 4.0]) + 0.4 * rng.standard_normal((3, 3))
    frac = np.array([[0.0, 0.0, 0.0], [0.52, 0.31, 0.12], [0.23, 0.74, 0.61]])
    return Atoms("MgB2", scaled_positions=frac, cell=cell, pbc=True)


def num_neighbors(*graphs: Data) -> float:
    return sum(g.edge_index.shape[1] for g in graphs) / sum(g.num_nodes for g in graphs)


def small_model(seed=0, **kw) -> BeteNet:
    """A small float64 network (default float32 parameters cast by .double(), as users would)."""
    torch.manual_seed(seed)
    g = crystal_graph(triclinic())
    return BeteNet(**{**SMALL, "num_neighbors": num_neighbors(g), **kw}).double()


@pytest.fixture(scope="module")
def model() -> BeteNet:
    """One small float64 network shared by the tests that only evaluate it (e3nn construction is the slow part)."""
    return small_model()


def moved(atoms: Atoms, rot: np.ndarray, shift: np.ndarray) -> Atoms:
    """Rigidly rotate (possibly improperly) and translate positions and cell (row vectors: r -> r R^T + t)."""
    out = atoms.copy()
    out.set_cell(atoms.get_cell().array @ rot.T, scale_atoms=False)
    out.set_positions(atoms.get_positions() @ rot.T + shift)
    return out


# ---------------------------------------------------------------------------------------------- edge geometry


def test_smooth_cutoff_hand_values():
    # u = 2(r/r_max - 1): r <= 2 -> 1; r = 3 -> u = -1/2 -> (1 - cos(-pi/2))/2 = 1/2; r >= 4 -> 0
    r = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    expected = torch.tensor([1.0, 1.0, 1.0, 0.5, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(smooth_cutoff(r, 4.0), expected, atol=1e-15)
    # r = 3.5 -> u = -1/4 -> (1 - cos(pi/4))/2
    assert smooth_cutoff(torch.tensor([3.5], dtype=torch.float64), 4.0).item() == pytest.approx(
        (1 - math.cos(math.pi / 4)) / 2, abs=1e-15
    )


def test_radial_embedding_peaks_on_its_centres():
    n = 10
    centres = torch.linspace(0.0, R_MAX, n, dtype=torch.float64)  # c_k = k r_max / (n - 1)
    emb = radial_embedding(centres, R_MAX, n)
    assert emb.shape == (n, n)
    assert torch.equal(emb.argmax(dim=1), torch.arange(n))
    # peak value sqrt(n) * exp(0) / 1.12 (e3nn's Gaussian normalisation times the release's sqrt(n))
    assert torch.allclose(emb.diagonal(), torch.full((n,), math.sqrt(n) / 1.12, dtype=torch.float64))


def test_self_loop_edge_features_finite_with_bounded_gradient():
    vec = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [0.3, 0.1, -3.2]], dtype=torch.float64, requires_grad=True)
    ef = edge_features(vec, lmax=2, r_max=R_MAX, number_of_basis=10)
    # zero vector: Y^0 = 1 (component normalisation), Y^1 = Y^2 = 0, cutoff(0) = 1
    assert torch.equal(ef.attr[0], torch.tensor([1.0] + [0.0] * 8, dtype=torch.float64))
    # non-zero vectors: identical to e3nn's own normalize=True harmonics times the cutoff
    sh = o3.spherical_harmonics(o3.Irreps.spherical_harmonics(2), vec[1:], True, normalization="component")
    assert torch.allclose(ef.attr[1:], sh * smooth_cutoff(vec[1:].norm(dim=1), R_MAX)[:, None], atol=1e-14)
    (ef.attr.sum() + ef.radial.sum()).backward()
    assert torch.isfinite(vec.grad).all()
    assert torch.equal(vec.grad[0], torch.zeros(3, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------- the network


def test_output_shape_nonnegative_and_gradients_finite_with_self_loops(model):
    graphs = [crystal_graph(rocksalt()), crystal_graph(triclinic())]
    for g in graphs:  # the release graphs contain self-loops with zero vectors
        assert (g.edge_vec.norm(dim=1) == 0).sum() == g.num_nodes
    model.zero_grad()
    out = model(Batch.from_data_list(graphs))
    assert out.shape == (2, N_BINS)
    assert torch.isfinite(out).all() and (out >= 0).all() and (out > 0).any()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_invariance_under_rotation_reflection_translation(model, dtype, rtol):
    atoms = triclinic()
    model = copy.deepcopy(model).to(dtype)
    ref = model(crystal_graph(atoms, dtype))
    scale = ref.abs().max().item()
    assert scale > 0
    torch.manual_seed(3)
    rot = o3.rand_matrix(dtype=torch.float64).numpy()  # drawn in float64: orthogonal to ~1e-16
    for r in (rot, -rot):  # proper and improper (rotation times inversion)
        out = model(crystal_graph(moved(atoms, r, np.array([0.7, -1.3, 2.9])), dtype))
        assert torch.allclose(out, ref, rtol=0, atol=rtol * scale), (out - ref).abs().max() / scale


def test_permutation_of_atoms_does_not_change_output(model):
    atoms = triclinic()
    ref = model(crystal_graph(atoms))
    out = model(crystal_graph(atoms[[2, 0, 1]]))
    assert ref.abs().max() > 0
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)


def test_batch_equals_separate_graphs_and_per_atom_mean(model):
    g1, g2 = crystal_graph(rocksalt()), crystal_graph(triclinic())
    batched = model(Batch.from_data_list([g1, g2]))
    separate = torch.cat([model(g1), model(g2)])
    assert separate.abs().max() > 0
    assert torch.allclose(batched, separate, rtol=0, atol=1e-12)
    # reduce_output="none" gives per-atom spectra whose mean is the pooled output
    per_atom_model = copy.deepcopy(model)
    per_atom_model.reduce_output = "none"
    per_atom = per_atom_model(g2)
    assert per_atom.shape == (g2.num_nodes, N_BINS)
    assert torch.allclose(per_atom.mean(dim=0), separate[1], atol=1e-12)


def test_precomputed_edge_features_give_same_output(model):
    g = crystal_graph(triclinic())
    assert torch.equal(model(g, model.edge_features(g.edge_vec)), model(g))
    with pytest.raises(InputError, match="edge_feats"):
        model(g, model.edge_features(g.edge_vec[:-1]))


def test_cpd_dimensions():
    graphs = [crystal_graph(rocksalt(), phdos_dim=N_BINS), crystal_graph(triclinic(), phdos_dim=N_BINS)]
    assert graphs[0].x.shape[1] == N_BINS and graphs[0].attr.shape[1] == 118 + N_BINS
    model = small_model(in_dim=N_BINS, attr_dim=118 + N_BINS, layers=1)
    out = model(Batch.from_data_list(graphs))
    assert out.shape == (2, N_BINS) and torch.isfinite(out).all() and (out >= 0).all()


def test_shared_embedding_release_mode():
    g = crystal_graph(triclinic())
    shared = small_model(share_embedding=True, layers=0)
    separate = small_model(layers=0)
    assert shared.embed_x is shared.embed_attr
    n_linear = 118 * SMALL["em_dim"] + SMALL["em_dim"]
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in shared.parameters()) == n_linear
    assert shared(g).shape == (1, N_BINS)
    with pytest.raises(InputError, match="share_embedding"):
        BeteNet(in_dim=N_BINS, attr_dim=169, share_embedding=True)


def test_num_neighbors_is_a_checkpointed_buffer(model):
    g = crystal_graph(triclinic())
    other = copy.deepcopy(model)  # same weights, different neighbour normalisation
    other.num_neighbors.fill_(2.0 * model.num_neighbors.item())
    assert not torch.allclose(other(g), model(g))
    assert "num_neighbors" in model.state_dict()
    other.load_state_dict(model.state_dict())
    assert other.num_neighbors.item() == model.num_neighbors.item()
    assert torch.equal(other(g), model(g))


def test_bad_inputs_name_the_input(model):
    g = crystal_graph(triclinic())
    g.x = g.x[:, :100]
    with pytest.raises(InputError, match="data.x"):
        model(g)
    with pytest.raises(InputError, match="reduce_output"):
        BeteNet(reduce_output="max")


# ---------------------------------------------------------------------------------------------- parameter count


def fctp_numel(in1: o3.Irreps, in2: o3.Irreps, out: o3.Irreps) -> int:
    """Weights of a fully connected tensor product: one mul1*mul2*mul_out block per allowed path."""
    return sum(m1 * m2 * m3 for m1, i1 in in1 for m2, i2 in in2 for m3, i3 in out if i3 in i1 * i2)


def conv_numel(irreps_in, irreps_out, attr, sh, n_basis, radial_neurons) -> int:
    """gate_points_2101 convolution: sc + lin1 + lin2 (fully connected TPs) + radial MLP feeding the uvu TP."""
    mid = o3.Irreps([(m1, i3) for m1, i1 in irreps_in for _, i2 in sh for i3 in i1 * i2 if i3 in irreps_out])
    uvu = mid.num_irreps  # "uvu" with a single edge channel: one weight per input channel and path
    fc = n_basis * radial_neurons + radial_neurons * uvu  # e3nn FullyConnectedNet has no biases
    return fctp_numel(irreps_in, attr, irreps_out) + fctp_numel(irreps_in, attr, irreps_in) + fctp_numel(
        mid, attr, irreps_out
    ) + fc


def test_parameter_count_of_reference_network():
    model = BeteNet()  # paper: em_dim 64, mul 32, lmax 1, 2 layers, 10 basis, 1x100 radial MLP, 51 outputs
    em, attr, sh = 64, o3.Irreps("64x0e"), o3.Irreps("0e + 1o")
    # hand derivation of the irreps (selection rules with the edge harmonics 0e + 1o):
    # layer 1: 64x0e (x) {0e,1o} reaches 0e, 1o -> scalars 32x0e, gated 32x1o, gates 32x0e
    # layer 2: 32x0e+32x1o (x) {0e,1o} reaches 0e, 1o, 1e (1o x 1o = 0e+1e+2e; 0o unreachable)
    #          -> scalars 32x0e, gated 32x1o+32x1e, gates 64x0e
    conv_in = ["64x0e", "32x0e + 32x1o", "32x0e + 32x1o + 32x1e"]
    conv_out = ["64x0e + 32x1o", "96x0e + 32x1o + 32x1e", "51x0e"]
    convs = [layer.conv for layer in model.layers] + [model.output_conv]
    for conv, i, o in zip(convs, conv_in, conv_out):
        assert conv.irreps_in == o3.Irreps(i) and conv.irreps_out == o3.Irreps(o)
    expected = (118 * em + em) * 2 + sum(
        conv_numel(o3.Irreps(i), o3.Irreps(o), attr, sh, 10, 100) for i, o in zip(conv_in, conv_out)
    )
    n_params = sum(p.numel() for p in model.parameters())
    print(f"BeteNet reference parameters: {n_params}")
    assert n_params == expected


# ---------------------------------------------------------------------------------------------- checkpoints

#: state_dict keys and shapes of BeteNet(**TINY), recorded from the code before the fused evaluation had its own
#: object (commit a50d1a4): a checkpoint saved then loads strictly now.
TINY = dict(in_dim=5, attr_dim=7, out_dim=3, em_dim=4, mul=2, layers=1, radial_neurons=6)
TINY_CHECKPOINT = {
    "num_neighbors": (), "embed_x.weight": (4, 5), "embed_x.bias": (4,), "embed_z.weight": (4, 7),
    "embed_z.bias": (4,),
    "layers.0.conv.sc.weight": (64,), "layers.0.conv.sc.output_mask": (10,),
    "layers.0.conv.lin1.weight": (64,), "layers.0.conv.lin1.output_mask": (4,),
    "layers.0.conv.tp.weight": (0,), "layers.0.conv.tp.output_mask": (16,),
    "layers.0.conv.fc.layer0.weight": (10, 6), "layers.0.conv.fc.layer1.weight": (6, 8),
    "layers.0.conv.lin2.weight": (96,), "layers.0.conv.lin2.output_mask": (10,),
    "layers.0.gate.mul.weight": (0,), "layers.0.gate.mul.output_mask": (6,),
    "output_conv.sc.weight": (24,), "output_conv.sc.output_mask": (3,),
    "output_conv.lin1.weight": (32,), "output_conv.lin1.output_mask": (8,),
    "output_conv.tp.weight": (0,), "output_conv.tp.output_mask": (4,),
    "output_conv.fc.layer0.weight": (10, 6), "output_conv.fc.layer1.weight": (6, 4),
    "output_conv.lin2.weight": (48,), "output_conv.lin2.output_mask": (3,),
}


@pytest.mark.parametrize("fused", [True, False])
def test_state_dict_keys_are_those_of_saved_checkpoints(fused):
    torch.manual_seed(0)
    net = BeteNet(**TINY, fused=fused)
    renamed = {k.replace("embed_z.", "embed_attr."): v for k, v in TINY_CHECKPOINT.items()}  # the attribute embedding
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == renamed
    torch.manual_seed(1)
    saved = {k: v.clone() for k, v in BeteNet(**TINY, num_neighbors=3.0).state_dict().items()}
    net.load_state_dict(saved, strict=True)
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())
    # a checkpoint that names the attribute embedding embed_z loads strictly into embed_attr
    old = {k.replace("embed_attr.", "embed_z."): v for k, v in saved.items()}
    assert set(old) == set(TINY_CHECKPOINT)
    fresh = BeteNet(**TINY, fused=fused)
    fresh.load_state_dict(old, strict=True)
    assert all(torch.equal(v, saved[k]) for k, v in fresh.state_dict().items())


# ------------------------------------------------------------------------------------------
# the coupling head: a2F = alpha^2(w) x site PhDOS
# ------------------------------------------------------------------------------------------
def coupling_model(n_terms=3, **kw):
    return small_model(in_dim=N_BINS, attr_dim=118 + N_BINS, head="coupling", coupling_basis=n_terms, **kw)


def test_coupling_head_is_alpha2_times_site_phdos():
    from numpy.polynomial import legendre

    g = crystal_graph(triclinic(), phdos_dim=N_BINS)
    model = coupling_model()
    # the head's input: the network's per-atom outputs, here through the plain e3nn evaluation
    c = model.node_outputs(g).detach().numpy()
    assert c.shape == (3, 3)
    x = np.linspace(-1, 1, N_BINS)
    log_alpha2 = np.stack([legendre.legval(x, ci) for ci in c])  # sum_k c_k P_k(x), per atom
    expected = (np.exp(log_alpha2) * g.attr[:, 118:].numpy() / 3).mean(axis=0)
    np.testing.assert_allclose(model(g)[0].detach().numpy(), expected, rtol=1e-10)
    # where an atom has no phonon states, it contributes nothing: the support is the phonons'
    g.attr[:, 118 + 30:] = 0.0
    assert torch.all(model(g)[0, 30:] == 0)


def test_coupling_head_invariant_and_fused_equal():
    atoms = triclinic()
    fused, plain = coupling_model(), coupling_model(fused=False)
    plain.load_state_dict(fused.state_dict())
    ref = fused(crystal_graph(atoms, phdos_dim=N_BINS))
    assert torch.allclose(plain(crystal_graph(atoms, phdos_dim=N_BINS)), ref, rtol=0, atol=1e-12)
    torch.manual_seed(5)
    rot = o3.rand_matrix(dtype=torch.float64).numpy()
    for r in (rot, -rot):
        out = fused(crystal_graph(moved(atoms, r, np.array([0.3, 1.1, -0.4])), phdos_dim=N_BINS))
        assert torch.allclose(out, ref, rtol=0, atol=1e-9 * ref.abs().max().item())


def test_coupling_head_needs_site_phdos():
    with pytest.raises(InputError, match="cpd or fpd"):
        small_model(head="coupling")  # CSO attributes: one-hot(Z) only
    with pytest.raises(InputError, match="head"):
        small_model(head="bins")
