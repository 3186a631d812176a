"""Per-atom features from universal interatomic potentials: what SevenNet-0 (or SevenNet-l3i5, CHGNet)
learned about chemistry from about 1.5 million DFT calculations, as node attributes of our graphs.

Modules: :mod:`.models` (the feature models: name → extractor, the width of each layer's features),
:mod:`.settings` (:class:`FeatureSettings`: model, layers, l > 0 norms, device), :mod:`.cache`
(content-keyed on-disk cache) and :mod:`.provider` (features of dataset entries and new structures,
cache first, one line of reason per structure that cannot be done). The potentials come with the
optional extra ``pip install 'betenet[phonons]'``; importing this package does not import them.
"""

from betenet.pretrained.cache import FeatureCache, feature_key
from betenet.pretrained.models import FEATURE_MODELS, FeatureModel, get_feature_model
from betenet.pretrained.provider import FeatureProvider, FeatureReport, features_for_entries
from betenet.pretrained.settings import FeatureSettings, feature_dim

__all__ = ["FEATURE_MODELS", "FeatureCache", "FeatureModel", "FeatureProvider", "FeatureReport", "FeatureSettings",
           "feature_dim", "feature_key", "features_for_entries", "get_feature_model"]
