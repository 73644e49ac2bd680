"""nasdip-zoo: NAS-DIP's searched deep image priors (Chen et al., ECCV 2020) as a model zoo.

>>> from nasdip_zoo import build_nasdip
>>> net = build_nasdip("nasdip-denoise")   # any Genotype, zoo name or JSON path
>>> from nasdip_zoo import DIPRestorer, load_image
>>> result = DIPRestorer("nasdip-denoise").restore(load_image("noisy.png"))  # doctest: +SKIP
"""

__version__ = "0.1.0"

from . import metrics, operators
from .cells import upsampling_cell
from .genotype import Backbone, Connections, Genotype, UpsamplingCell
from .network import NASDIPNet, build_nasdip, count_parameters
from .space import Decision, SearchSpace
from .imageio import load_image, save_image
from .metrics import psnr, psnr_y, ssim
from .restore import DIPRestorer, RestorationDiverged, RestoreResult
from .zoo import Card, DIPSettings, get_card, get_genotype, list_genotypes

from . import hub  # registers the local-dir: and hf-hub: references (imports huggingface_hub only when used)
from .hub import from_pretrained, push_to_hub, save_pretrained

__all__ = [
    "Backbone",
    "Card",
    "Connections",
    "DIPSettings",
    "DIPRestorer",
    "Decision",
    "Genotype",
    "NASDIPNet",
    "RestorationDiverged",
    "RestoreResult",
    "SearchSpace",
    "UpsamplingCell",
    "build_nasdip",
    "count_parameters",
    "from_pretrained",
    "get_card",
    "get_genotype",
    "list_genotypes",
    "load_image",
    "metrics",
    "operators",
    "psnr",
    "psnr_y",
    "save_image",
    "ssim",
    "push_to_hub",
    "save_pretrained",
    "upsampling_cell",
]
