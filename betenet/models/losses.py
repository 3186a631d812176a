"""Training losses on predicted a2F: binned MSE, 1-D Wasserstein, curvature, and physics-property terms.

Every term is masked: an entry contributes to the bin terms only where it carries a binned a2F
target, and to a property term only where that property's reference is known (mixed supervision).
The reference of a property is the property of the binned a2F target when the entry has one (the
same quantity, on the same grid and at the same μ*, as the prediction's), otherwise the value the
dataset reports (e.g. a Tc-only entry). Bootstrap weights (duplicate counts of a resample) multiply
each entry's contribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from betenet.physics.eliashberg import mcmillan_lambda_for_tc_torch
from betenet.physics.properties import PROPERTIES, TYPICAL_RANGES, properties_torch
from betenet.physics.units import MU_STAR_DEFAULT, PAPER_GRID, BinGrid

#: Scale of each property's error inside the loss (the error is divided by it before squaring).
DEFAULT_PROPERTY_SCALES = {"lambda": 1.0, "omega_log_K": 100.0, "omega_2_K": 100.0, "tc_K": 10.0, "tc_log_K": 1.0}
#: How a Tc error is measured: ``squared`` ((Tc - Tc_ref) / 10 K)², or ``log`` (ln(1 + Tc/T0) - ln(1 + Tc_ref/T0))²
#: with T0 = ``property_scales["tc_log_K"]`` (1 K): relative above T0, absolute below, so that the few
#: high-Tc materials do not dominate the fit of the many near 0 K; ``mixed``: the sum of the two.
TC_ERRORS = ("squared", "log", "mixed")


def _weighted_mean(per_entry: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of per-entry values over masked entries, weighted; 0 (with a graph) when nothing is masked in."""
    w = weight * mask.to(per_entry.dtype)
    total = w.sum()
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, (w * torch.nan_to_num(per_entry)).sum() / safe, total * 0.0)


def property_matrix(a2f: torch.Tensor, omega_meV: torch.Tensor, mu_star: float) -> torch.Tensor:
    """[N, 4] :data:`~betenet.physics.properties.PROPERTIES` of spectra [N, B], the column order of
    a graph's ``labels``."""
    props = properties_torch(omega_meV, a2f, mu_star)
    return torch.stack([props[k] for k in PROPERTIES], dim=-1)


def wasserstein_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-entry 1-D Wasserstein distance (in bins) between spectra normalised to unit area."""
    p = pred / (pred.sum(-1, keepdim=True) + eps)
    t = target / (target.sum(-1, keepdim=True) + eps)
    return (torch.cumsum(p, -1) - torch.cumsum(t, -1)).abs().sum(-1)


def curvature(pred: torch.Tensor) -> torch.Tensor:
    """Per-entry mean squared second difference of adjacent bins (smoothness penalty)."""
    d2 = pred[..., 2:] - 2 * pred[..., 1:-1] + pred[..., :-2]
    return (d2**2).mean(-1)


@dataclass
class BetenetLoss:
    """Weighted sum of the configured terms; weights of 0 switch a term off. A subclass adds a term with a field
    for its weight, a ``term_<name>`` method and ``TERMS = BetenetLoss.TERMS + ("<name>",)``, and is chosen by
    ``model.loss._target_``."""

    #: The weighted terms besides the property terms, in the order they are summed (``term_<name>`` methods).
    TERMS: ClassVar[tuple[str, ...]] = ("mse", "wasserstein", "curvature", "lambda_prior", "omega_log_prior")

    mse: float = 1.0
    wasserstein: float = 0.0
    curvature: float = 0.0
    properties: dict[str, float] = field(default_factory=dict)
    property_scales: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PROPERTY_SCALES))
    mu_star: float = MU_STAR_DEFAULT
    grid: BinGrid = PAPER_GRID
    lambda_prior: float = 0.0
    lambda_range: tuple[float, float] = TYPICAL_RANGES["lambda"]
    omega_log_prior: float = 0.0
    tc_error: str = "squared"
    #: Each entry's Tc error is multiplied by (1 + Tc_ref / ``tc_weight_scale_K``) ** ``tc_weight_power``: 0 weighs
    #: every entry alike; 1 weighs a 30 K material 7 times a 0 K one (scale 5 K), so the few superconductors a
    #: screen is for are not averaged away by the many near 0 K.
    tc_weight_power: float = 0.0
    tc_weight_scale_K: float = 5.0

    def __post_init__(self):
        unknown = set(self.properties) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"unknown property loss terms {sorted(unknown)}; known: {PROPERTIES}")
        if self.tc_error not in TC_ERRORS:
            raise ValueError(f"tc_error must be one of {TC_ERRORS}, got {self.tc_error!r}")
        if self.tc_weight_scale_K <= 0:
            raise ValueError(f"tc_weight_scale_K must be positive, got {self.tc_weight_scale_K}")

    def tc_threshold_guide(self, props: torch.Tensor, tc_true: torch.Tensor) -> torch.Tensor:
        """Squared shortfall of lambda below the McMillan lambda that would give the target Tc.

        Below the Allen–Dynes threshold the predicted Tc is exactly 0 and flat, so a Tc-only label
        would give no gradient; lambda still does. The guide is zero once the prediction reaches
        the target Tc (Allen–Dynes Tc >= McMillan Tc at equal lambda and w_log, as f1, f2 >= 1).
        """
        lam, wlog, tc_pred = props[:, 0], props[:, 1], props[:, 3]
        lam_needed = mcmillan_lambda_for_tc_torch(tc_true, wlog.detach(), self.mu_star)
        short = torch.relu(lam_needed - lam) * (tc_pred < tc_true)
        return (short / self.property_scales["lambda"]) ** 2

    def omega(self, like: torch.Tensor) -> torch.Tensor:
        """The bin centres (meV) as a tensor of ``like``'s dtype and device."""
        return torch.as_tensor(self.grid.centres, dtype=like.dtype, device=like.device)

    def reference(self, y: torch.Tensor, reported: torch.Tensor | None) -> torch.Tensor:
        """[N, 4] reference properties: those of the binned target ``y`` where an entry has one,
        else the ``reported`` values (NaN = unknown)."""
        has_y = torch.isfinite(y).all(-1)
        from_y = property_matrix(torch.where(has_y[:, None], y, torch.zeros_like(y)), self.omega(y), self.mu_star)
        other = torch.full_like(from_y, float("nan")) if reported is None else reported.to(from_y.dtype)
        return torch.where(has_y[:, None], from_y, other)

    # ---- the terms: one method each, ``term(pred, batch, weight, cache) -> per-batch value`` -----------
    # A new term is a method here plus its weight (a field above and a key in conf/model); every input it
    # needs per graph comes from the batch (an attribute of each graph, collated by PyG).
    def _properties(self, pred: torch.Tensor, cache: dict) -> torch.Tensor:
        if "props" not in cache:
            cache["props"] = property_matrix(pred, self.omega(pred), self.mu_star)
        return cache["props"]

    def _target(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        y = batch.y
        has_y = torch.isfinite(y).all(-1)
        return torch.where(has_y[:, None], y, torch.zeros_like(y)), has_y

    def term_mse(self, pred, batch, weight, cache):
        y0, has_y = self._target(batch)
        return _weighted_mean(((pred - y0) ** 2).mean(-1), has_y, weight)

    def term_wasserstein(self, pred, batch, weight, cache):
        y0, has_y = self._target(batch)
        return _weighted_mean(wasserstein_1d(pred, y0), has_y, weight)

    def term_curvature(self, pred, batch, weight, cache):
        everyone = torch.ones(pred.shape[0], dtype=torch.bool, device=pred.device)
        return _weighted_mean(curvature(pred), everyone, weight)

    def term_lambda_prior(self, pred, batch, weight, cache):
        lo, hi = self.lambda_range
        lam = self._properties(pred, cache)[:, 0]
        outside = torch.relu(lam - hi) + torch.relu(lo - lam)
        return _weighted_mean(outside**2, torch.ones_like(lam, dtype=torch.bool), weight)

    def term_omega_log_prior(self, pred, batch, weight, cache):
        ref = _field(batch, "phonon_omega_log_K")
        if ref is None:
            return None
        ref = ref.to(pred.dtype).view(-1)
        known = torch.isfinite(ref) & (ref > 0)
        wlog = self._properties(pred, cache)[:, 1].clamp(min=1.0)
        log_ratio = torch.log(wlog) - torch.log(torch.where(known, ref, torch.ones_like(ref)))
        return _weighted_mean(log_ratio**2, known, weight)

    def property_term(self, name: str, pred, batch, weight, cache):
        """Error of property ``name`` of the predicted a2F against its reference (:meth:`reference`)."""
        j = PROPERTIES.index(name)
        props = self._properties(pred, cache)
        labels = self.reference(batch.y, _field(batch, "reported"))
        known = torch.isfinite(labels[:, j])
        target = torch.where(known, labels[:, j], torch.zeros_like(labels[:, j]))
        squared = ((props[:, j] - target) / self.property_scales[name]) ** 2
        if name == "tc_K" and self.tc_error in ("log", "mixed"):
            scale = self.property_scales.get("tc_log_K", 1.0)
            err = (torch.log1p(props[:, j] / scale) - torch.log1p(target / scale)) ** 2
            if self.tc_error == "mixed":
                err = err + squared
        else:
            err = squared
        if name == "tc_K":
            err = err + self.tc_threshold_guide(props, target)
            if self.tc_weight_power:
                err = err * (1.0 + target.clamp(min=0.0) / self.tc_weight_scale_K) ** self.tc_weight_power
        return _weighted_mean(err, known, weight)

    def __call__(self, pred: torch.Tensor, batch,
                 weighted: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of ``pred`` [N, B] on ``batch``: the graphs' batch (a PyG ``Batch``, or any object with these
        attributes): ``y`` [N, B] binned a2F targets (rows of NaN where none); optionally ``reported`` [N, 4]
        (:data:`PROPERTIES` order) scalars the dataset gives (NaN = unknown), ``weight`` [N] bootstrap duplicate
        counts (used when ``weighted``), ``phonon_omega_log_K`` [N] ω_log of each structure's phonon DOS (NaN =
        unknown; the reference of ``omega_log_prior``: (ln ω_log^pred − ln ω_log^ph)², the prediction's ω_log
        floored at 1 K). Returns the weighted sum and its parts (each already multiplied by its weight)."""
        n = pred.shape[0]
        weight = _field(batch, "weight") if weighted else None
        if weight is None:
            weight = torch.ones(n, dtype=pred.dtype, device=pred.device)
        weight = weight.to(pred.dtype).view(-1)
        cache: dict = {}
        parts: dict[str, torch.Tensor] = {}
        for name in self.TERMS:
            w = getattr(self, name)
            if w:
                value = getattr(self, f"term_{name}")(pred, batch, weight, cache)
                if value is not None:
                    parts[name] = w * value
        for name, w in self.properties.items():
            if w:
                parts[name] = w * self.property_term(name, pred, batch, weight, cache)
        if not parts:
            raise ValueError("all loss terms are switched off")
        return sum(parts.values()), parts


#: The weighted terms besides the property terms, in the order they are summed (``term_<name>`` methods).
TERMS = BetenetLoss.TERMS


def _field(batch, name: str):
    """``batch.<name>``, or None where the batch has no such attribute."""
    try:
        return getattr(batch, name)
    except (AttributeError, KeyError):
        return None
