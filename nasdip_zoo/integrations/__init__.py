"""Drop-in NAS-DIP generators for other projects (paper Sec. 4.3-4.5).

Import the submodule you need; this package imports nothing itself so ``import nasdip_zoo`` stays light:

* :mod:`nasdip_zoo.integrations.cyclegan`: ``NASDIPGenerator`` and ``define_G`` with the generator
  contract of pytorch-CycleGAN-and-pix2pix.
* :mod:`nasdip_zoo.integrations.doubledip`: ``DoubleDIPDehazer``, DoubleDIP's dehazing with NAS-DIP
  generators for the clear image and the transmission map.
* :mod:`nasdip_zoo.integrations.compmirror`: ``DeepMatrixFactorization``, CompMirror's deep matrix
  factorization with a searched upsampling cell.
"""

__all__ = ["cyclegan", "doubledip", "compmirror"]
