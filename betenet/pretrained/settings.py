"""Settings of pretrained site features (:class:`FeatureSettings`): which model, which interaction
blocks, whether the l > 0 channels enter as norms, and the device. ``model: none`` means no features.
:meth:`FeatureSettings.key` lists what the features depend on (everything but the device), for cache
keys and the run's provenance; :func:`feature_dim` is their width per atom (the config resolver's)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from betenet.errors import InputError
from betenet.phonons.potentials import check_device
from betenet.pretrained.models import get_feature_model

NONE = "none"


@dataclass(frozen=True)
class FeatureSettings:
    model: str = NONE
    layers: tuple[int, ...] = field(default=(-1,))
    norms: bool = False
    device: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(int(k) for k in self.layers))
        check_device(self.device)
        if self.model != NONE:
            get_feature_model(self.model).resolve_layers(self.layers)

    @property
    def enabled(self) -> bool:
        return self.model != NONE

    @property
    def blocks(self) -> tuple[int, ...]:
        return get_feature_model(self.model).resolve_layers(self.layers) if self.enabled else ()

    @property
    def dim(self) -> int:
        """Features per atom (0 without a model)."""
        if not self.enabled:
            return 0
        model = get_feature_model(self.model)
        return sum(model.layer_width(b, self.norms) for b in self.blocks)

    def key(self) -> dict:
        """What the features depend on: model and its package version, blocks, norms (not the device)."""
        if not self.enabled:
            return {"model": NONE}
        return {"model": self.model, "version": get_feature_model(self.model).version(), "blocks": list(self.blocks),
                "norms": self.norms}

    def as_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_mapping(cls, mapping: dict | None, device: str | None = None) -> FeatureSettings:
        """From a ``features`` config mapping (unknown keys such as ``name`` or ``dim`` are ignored)."""
        mapping = dict(mapping or {})
        model = str(mapping.get("model", NONE) or NONE)
        layers = mapping.get("layers", (-1,))
        if isinstance(layers, (int, str)):
            layers = (layers,)
        try:
            return cls(model=model, layers=tuple(layers), norms=bool(mapping.get("norms", False)),
                       device=str(device or mapping.get("device", "cpu")))
        except InputError:
            raise
        except (TypeError, ValueError) as exc:
            raise InputError("features", str(exc)) from None


def feature_dim(model: str, layers, norms) -> int:
    """Width of the features of ``model`` (``none``: 0) at ``layers`` (a list) with ``norms``."""
    return FeatureSettings.from_mapping({"model": model, "layers": layers, "norms": norms}).dim
