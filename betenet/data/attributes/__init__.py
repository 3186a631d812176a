"""Node attributes: the parts of each atom's vector (one-hot(Z) and mass, pretrained features, site PhDOS,
and any registered later), each registered once in :mod:`.registry` with its width and how it is filled.

Every module of this package is imported here, so a new attribute module registers itself without an
edit elsewhere (README.md, Contributing); a module outside the package registers by being imported.
"""

import importlib
import pkgutil

from betenet.data.attributes.registry import (NodeAttribute, NodeSettings, active, attribute_names, block_slice,
                                              entry_values, get_attribute, node_vectors, node_width,
                                              register_attribute, registered, unregister_attribute)


def _import_attribute_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "registry":
            importlib.import_module(f"{__name__}.{module.name}")


_import_attribute_modules()

__all__ = ["NodeAttribute", "NodeSettings", "active", "attribute_names", "block_slice", "entry_values",
           "get_attribute", "node_vectors", "node_width", "register_attribute", "registered", "unregister_attribute"]
