"""nasdip-zoo: NAS-DIP's searched deep image priors (Chen et al., ECCV 2020) as a model zoo.

>>> from nasdip_zoo import build_nasdip
>>> net = build_nasdip("nasdip-denoise")   # any Genotype, zoo name or JSON path
"""

__version__ = "0.1.0"

from .cells import upsampling_cell
from .genotype import Backbone, Connections, Genotype, UpsamplingCell
from .network import NASDIPNet, build_nasdip, count_parameters
from .space import Decision, SearchSpace
from .zoo import Card, DIPSettings, get_card, get_genotype, list_genotypes

from . import hub  # registers the local-dir: and hf-hub: references (imports huggingface_hub only when used)
from .hub import from_pretrained, push_to_hub, save_pretrained

__all__ = [
    "Backbone",
    "Card",
    "Connections",
    "DIPSettings",
    "Decision",
    "Genotype",
    "NASDIPNet",
    "SearchSpace",
    "UpsamplingCell",
    "build_nasdip",
    "count_parameters",
    "from_pretrained",
    "get_card",
    "get_genotype",
    "list_genotypes",
    "push_to_hub",
    "save_pretrained",
    "upsampling_cell",
]
