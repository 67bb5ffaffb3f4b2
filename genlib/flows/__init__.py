r"""Normalizing flows: invertible maps with cheap Jacobian determinants, trained by maximum likelihood.

- :mod:`genlib.flows.base` -- the :class:`~genlib.flows.base.Transform` interface
  (``call_and_ladj``, ``inverse``), :class:`~genlib.flows.base.Compose`, the standard normal
  log-density, the change of variables (:func:`~genlib.flows.base.flow_log_prob`) and the
  :class:`~genlib.flows.base.Flow` with ``log_prob`` and ``sample``.
- :mod:`genlib.flows.elementwise` -- element-wise affine and scaling layers, the 1-D monotone
  sinh-arcsinh flow, permutations.
- :mod:`genlib.flows.coupling` -- additive (NICE) and affine (RealNVP) couplings, their masks and
  conditioner networks.
- :mod:`genlib.flows.glow` -- ActNorm, the invertible 1x1 convolution (plain and LU), squeezing.
- :mod:`genlib.flows.dequantization` -- uniform dequantization, the logit pre-processing, bits/dim.
- :mod:`genlib.flows.models` -- NICE, RealNVP and Glow assembled for vectors and images.
- :mod:`genlib.flows.training` -- the maximum-likelihood training loop and the held-out NLL.

Direction: ``forward`` maps data :math:`x` to latent :math:`z = f(x)`; sampling uses ``inverse``.
"""

from genlib.flows.base import Compose, Flow, Transform, flow_log_prob, standard_normal_log_prob
from genlib.flows.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    half_mask,
)
from genlib.flows.dequantization import (
    Logit,
    dequantized_bits_per_dim,
    dequantized_log_prob,
    uniform_dequantize,
)
from genlib.flows.elementwise import ElementwiseAffine, Permutation, Scaling, SinhArcsinh
from genlib.flows.glow import ActNorm, InvertibleConv1x1, LUInvertibleConv1x1, Squeeze, Unsqueeze
from genlib.flows.models import build_glow, build_nice, build_realnvp
from genlib.flows.training import TrainingHistory, fit_flow, mean_nll

__all__ = [
    "Transform",
    "Compose",
    "Flow",
    "flow_log_prob",
    "standard_normal_log_prob",
    "ElementwiseAffine",
    "Scaling",
    "SinhArcsinh",
    "Permutation",
    "AdditiveCoupling",
    "AffineCoupling",
    "alternating_mask",
    "half_mask",
    "checkerboard_mask",
    "channel_mask",
    "ActNorm",
    "InvertibleConv1x1",
    "LUInvertibleConv1x1",
    "Squeeze",
    "Unsqueeze",
    "Logit",
    "uniform_dequantize",
    "dequantized_bits_per_dim",
    "dequantized_log_prob",
    "build_nice",
    "build_realnvp",
    "build_glow",
    "fit_flow",
    "mean_nll",
    "TrainingHistory",
]
