r"""Flows for discrete data: uniform dequantization, the logit pre-processing, bits per dimension.

A flow is a density on :math:`\mathbb R^D`; pixels take one of :math:`K` values. Fitting a density
to the integers themselves is meaningless (it can pile infinite density on them). Uniform
dequantization spreads each value over a cube of side :math:`1/K`,

.. math:: x = (b + u) / K, \qquad u \sim \mathcal U[0, 1)^D, \qquad x \in [0, 1)^D ,

and a density :math:`p` of :math:`x` defines a discrete model
:math:`P(b) = \int_{\text{cube of } b} p(x)\,dx`. By Jensen's inequality

.. math:: -\log P(b) \le \mathbb E_u\big[-\log p\big((b + u)/K\big)\big] + D \log K ,

so the continuous negative log-likelihood of dequantized data, plus :math:`D \log K`, bounds the
discrete one from above (Theis, van den Oord and Bethge, 2016). Averaging the density over
:math:`S` draws of :math:`u` *inside* the log gives a tighter estimate of the model's own
:math:`\log P(b)` (see :func:`~genlib.flows.dequantization.dequantized_log_prob`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlib.flows.base import Flow, Transform, check_batch, sum_except_batch
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = ["uniform_dequantize", "Logit", "dequantized_bits_per_dim", "dequantized_log_prob"]


def uniform_dequantize(
    x: Tensor,
    num_levels: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r""":math:`(b + u) / K` with :math:`u \sim \mathcal U[0, 1)` for each entry: integers to :math:`[0, 1)`.

    Args:
        x: integer tensor of any shape with values in ``0 .. num_levels - 1``.
        num_levels: :math:`K`.
        generator: draws ``u = torch.rand(x.shape, generator=generator, dtype=dtype)`` on ``x``'s device.
        dtype: floating dtype of the result.

    Returns:
        Shape of ``x``, ``dtype``, on ``x``'s device.
    """
    x = check_tensor(x, "x", floating=False)
    k = check_positive_int(num_levels, "num_levels")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= k):
        raise ValueError(
            f"x must hold values in 0..{k - 1}, got values from {int(x.min())} to {int(x.max())}"
        )
    check_generator(generator, x.device)
    u = torch.rand(x.shape, generator=generator, dtype=dtype, device=x.device)
    return (x.to(dtype) + u) / k


class Logit(Transform):
    r"""Map :math:`[0, 1)` to :math:`\mathbb R`, away from the edges: RealNVP's pre-processing.

    .. math:: y = \alpha + (1 - 2\alpha) x, \qquad z = \log y - \log(1 - y),
    .. math:: \log|\det J| = \textstyle\sum_j \big[\log(1 - 2\alpha) - \log y_j - \log(1 - y_j)\big] .

    The shrink by :math:`\alpha` keeps :math:`z` finite at :math:`x = 0`. Put it first in a flow for
    data in :math:`[0, 1)`: the flow's density is then a density on :math:`[0, 1)^D`.

    Args:
        alpha: in :math:`[0, 1/2)`.
    """

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
        self.alpha = alpha

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = check_batch(x)
        y = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(y) - torch.log1p(-y)
        ladj = sum_except_batch(math.log1p(-2 * self.alpha) - torch.log(y) - torch.log1p(-y))
        return z, ladj

    def inverse(self, z: Tensor) -> Tensor:
        return (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)


def dequantized_bits_per_dim(nll: Tensor | float, num_dims: int, num_levels: int) -> Tensor | float:
    r"""Bits per dimension of the discrete data from the NLL of its dequantized version in :math:`[0, 1)^D`.

    .. math:: \text{bits/dim} = \frac{\mathrm{NLL}_{\text{continuous}} + D \log K}{D \log 2},

    an upper bound on the discrete model's :math:`-\log_2 P(b) / D` (see the module's docstring).

    Args:
        nll: mean negative log-density (nats per sample) of the dequantized data, a float or tensor.
        num_dims: :math:`D`, entries per sample.
        num_levels: :math:`K`.
    """
    d, k = check_positive_int(num_dims, "num_dims"), check_positive_int(num_levels, "num_levels")
    return (nll + d * math.log(k)) / (d * math.log(2))


@torch.no_grad()
def dequantized_log_prob(
    flow: Flow, x: Tensor, num_levels: int, *, num_samples: int = 1, generator: torch.Generator | None = None
) -> Tensor:
    r"""Estimate :math:`\log P(b)`, the probability a flow on :math:`[0, 1)^D` gives to the integers ``x``.

    .. math:: \log P(b) = \log \mathbb E_u\big[p\big((b + u)/K\big)\big] - D \log K
              \approx \log \frac1S \sum_{s=1}^S p\big((b + u^s)/K\big) - D \log K .

    With :math:`S = 1` this is (in expectation) the Jensen lower bound of the module's docstring;
    it rises with :math:`S` towards the model's exact :math:`\log P(b)` (an importance-sampling
    estimate with the uniform proposal, whose expectation is a lower bound for every :math:`S`,
    as for the IWAE bound of Burda et al., 2016).

    Args:
        flow: a density on :math:`[0, 1)^D` (e.g. a :class:`~genlib.flows.base.Flow` starting with
            :class:`~genlib.flows.dequantization.Logit`).
        x: integers in ``0 .. num_levels - 1``, shape ``(B, *event_shape)``.
        num_levels: :math:`K`.
        num_samples: :math:`S`, dequantization draws per sample, taken one batch at a time with
            :func:`~genlib.flows.dequantization.uniform_dequantize` and ``generator``.

    Returns:
        Shape ``(B,)``, in the flow's dtype.
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a genlib.flows Flow, got {type(flow).__name__}")
    x = check_tensor(x, "x", floating=False, min_size=1)
    s = check_positive_int(num_samples, "num_samples")
    d = x[0].numel()
    log_densities = torch.stack(
        [
            flow.log_prob(uniform_dequantize(x, num_levels, generator=generator, dtype=flow.dtype))
            for _ in range(s)
        ]
    )  # (S, B)
    return torch.logsumexp(log_densities, dim=0) - math.log(s) - d * math.log(num_levels)
