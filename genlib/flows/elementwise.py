r"""Transforms that act on each entry on its own, and permutations of the entries.

An element-wise map :math:`z_j = g_j(x_j)` has a diagonal Jacobian, so its log-determinant is the
sum of the logs of the slopes, :math:`\sum_j \log|g_j'(x_j)|`. A permutation has a Jacobian that
is a permutation matrix, with determinant :math:`\pm 1`: its log-determinant is zero.

The parameters of the element-wise layers have the shape of one event (``(D,)`` or
``(C, H, W)``) unless said otherwise, and are broadcast over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlib.flows.base import Transform, check_batch, sum_except_batch
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = ["ElementwiseAffine", "Scaling", "SinhArcsinh", "Permutation"]


def _event_shape(event_shape: int | Sequence[int]) -> tuple[int, ...]:
    shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    if not shape:
        raise ValueError("event_shape must have at least one dimension, e.g. (2,), got ()")
    for s in shape:
        check_positive_int(s, "event_shape entries")
    return shape


class ElementwiseAffine(Transform):
    r"""An element-wise affine map with a positive slope.

    .. math:: z = x \odot e^{a} + b, \qquad x = (z - b) \odot e^{-a}, \qquad
              \log|\det J| = \textstyle\sum_j a_j .

    Args:
        event_shape: shape of one event; ``a`` (``log_scale``) and ``b`` (``shift``) have this
            shape and start at zero (the identity).
    """

    def __init__(self, event_shape: int | Sequence[int]) -> None:
        super().__init__()
        shape = _event_shape(event_shape)
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.shift = nn.Parameter(torch.zeros(shape))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = check_batch(x)
        z = x * self.log_scale.exp() + self.shift
        return z, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return (z - self.shift) * (-self.log_scale).exp()


class Scaling(Transform):
    r"""NICE's diagonal scaling layer, the last layer of a NICE flow.

    .. math:: z = x \odot e^{s}, \qquad x = z \odot e^{-s}, \qquad \log|\det J| = \textstyle\sum_j s_j .

    Additive couplings have a unit Jacobian determinant, so they cannot make the density more or
    less concentrated; this layer is what lets NICE give each latent direction its own width. Large
    :math:`s_j` mark directions that matter little (they are squeezed into a narrow range of data).

    Args:
        event_shape: shape of one event; ``s`` (``log_scale``) has this shape and starts at zero.
    """

    def __init__(self, event_shape: int | Sequence[int]) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(_event_shape(event_shape)))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = check_batch(x)
        return x * self.log_scale.exp(), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z * (-self.log_scale).exp()


def _log_cosh(u: Tensor) -> Tensor:
    r""":math:`\log\cosh u = |u| + \log(1 + e^{-2|u|}) - \log 2`, without overflow for large :math:`|u|`."""
    a = u.abs()
    return a + F.softplus(-2 * a) - torch.log(torch.tensor(2.0, dtype=u.dtype, device=u.device))


class SinhArcsinh(Transform):
    r"""A monotone element-wise flow that bends the tails and skews: the sinh-arcsinh map.

    .. math:: z = \sinh\big(\delta \operatorname{asinh}(x) - \epsilon\big), \qquad
              x = \sinh\Big(\frac{\operatorname{asinh}(z) + \epsilon}{\delta}\Big),

    .. math:: \log\left|\frac{dz}{dx}\right| = \log\delta
              + \log\cosh\big(\delta \operatorname{asinh}(x) - \epsilon\big) - \tfrac12 \log(1 + x^2),

    with :math:`\delta = e^{\log\delta} > 0`, so the map is strictly increasing on all of
    :math:`\mathbb R` (Jones and Pewsey, 2009). :math:`\delta > 1` makes the data's tails lighter
    than the latent's, :math:`\delta < 1` heavier; :math:`\epsilon \ne 0` skews. With
    :math:`\delta = 1, \epsilon = 0` it is the identity. It is the 1-D monotone flow of the book's
    change-of-variables page and works entry by entry in any dimension.

    Args:
        event_shape: shape of one event; ``log_delta`` and ``epsilon`` have this shape, start at 0.
    """

    def __init__(self, event_shape: int | Sequence[int]) -> None:
        super().__init__()
        shape = _event_shape(event_shape)
        self.log_delta = nn.Parameter(torch.zeros(shape))
        self.epsilon = nn.Parameter(torch.zeros(shape))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = check_batch(x)
        u = self.log_delta.exp() * torch.asinh(x) - self.epsilon
        log_slope = self.log_delta + _log_cosh(u) - 0.5 * torch.log1p(x.square())
        return torch.sinh(u), sum_except_batch(log_slope)

    def inverse(self, z: Tensor) -> Tensor:
        return torch.sinh((torch.asinh(z) + self.epsilon) * (-self.log_delta).exp())


class Permutation(Transform):
    r"""Reorder the features (dimension 1: the entries of a vector, the channels of an image).

    .. math:: z_{j} = x_{\sigma(j)}, \qquad x_{\sigma(j)} = z_j, \qquad \log|\det J| = 0 .

    Stacked couplings leave the masked half unchanged; a permutation between them makes sure every
    entry gets transformed (NICE and RealNVP alternate their masks, Glow learns a 1x1 convolution
    instead).

    Args:
        permutation: shape ``(D,)``, a permutation of ``0 .. D-1`` (any integer dtype).
    """

    def __init__(self, permutation: Tensor) -> None:
        super().__init__()
        permutation = check_tensor(permutation, "permutation", ndim=1, floating=False, min_size=1)
        n = permutation.shape[0]
        if not torch.equal(permutation.sort().values.cpu(), torch.arange(n)):
            raise ValueError(
                f"permutation must hold each of 0..{n - 1} exactly once, got {permutation.tolist()}"
            )
        self.register_buffer("permutation", permutation.long())
        self.register_buffer("inverse_permutation", permutation.long().argsort())

    @classmethod
    def reverse(cls, num_features: int) -> Permutation:
        """The permutation :math:`\\sigma(j) = D - 1 - j` that reverses the features."""
        return cls(torch.arange(check_positive_int(num_features, "num_features") - 1, -1, -1))

    @classmethod
    def random(cls, num_features: int, *, generator: torch.Generator | None = None) -> Permutation:
        """A uniformly random permutation, drawn with ``torch.randperm`` and ``generator`` (on the CPU)."""
        num_features = check_positive_int(num_features, "num_features")
        check_generator(generator, torch.device("cpu"))
        return cls(torch.randperm(num_features, generator=generator))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = check_batch(x)
        if x.shape[1] != self.permutation.shape[0]:
            raise ValueError(
                f"x must have {self.permutation.shape[0]} features in dimension 1, got {x.shape[1]}"
            )
        return x[:, self.permutation], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z[:, self.inverse_permutation]
