"""genlib: the tested reference implementations behind the course on generative models.

Every figure in the book and every graded exercise is computed by this package. Modules are
named for what they do:

- :mod:`genlib.device` -- pick CUDA when it is there, the CPU otherwise.
- :mod:`genlib.sampling` -- the inverse-CDF categorical sampler and the empirical distribution.
- :mod:`genlib.estimators` -- maximum-likelihood estimates, weighted ones included.
- :mod:`genlib.divergences` -- entropy, cross-entropy, KL (exact and by Monte Carlo).
- :mod:`genlib.testing` -- what graded notebooks use to compare a student's function with the
  reference.

Tensors in, tensors out: device and dtype follow the inputs, and randomness comes only from an
explicit :class:`torch.Generator`.
"""

from genlib.device import default_device

__version__ = "0.1.0"
__all__ = ["__version__", "default_device"]
