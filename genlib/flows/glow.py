r"""Glow's layers (Kingma and Dhariwal, 2018): ActNorm, the invertible 1x1 convolution, squeezing.

A step of Glow is ActNorm, then an invertible 1x1 convolution, then an affine coupling. The
layers here act on channels: dimension 1 of ``(B, C)`` or ``(B, C, H, W)``; a vector of ``D``
features is treated as ``D`` channels at a single position (``H = W = 1``). Every entry at every
position gets the same per-channel map, so each log-determinant is the number of positions
:math:`H W` times a per-channel one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genlib.flows.base import Transform, check_batch
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = [
    "actnorm_initialize",
    "actnorm_forward",
    "actnorm_inverse",
    "conv1x1_forward",
    "conv1x1_inverse",
    "lu_weight",
    "random_rotation",
    "ActNorm",
    "InvertibleConv1x1",
    "LUInvertibleConv1x1",
    "Squeeze",
    "Unsqueeze",
]


def _num_positions(x: Tensor) -> int:
    """:math:`H W` for ``(B, C, H, W)``, 1 for ``(B, C)``: the positions sharing one channel map."""
    return math.prod(x.shape[2:])


def _per_channel(p: Tensor, x: Tensor) -> Tensor:
    """Reshape a ``(C,)`` parameter to broadcast along dimension 1 of ``x``: ``(1, C, 1, ...)``."""
    return p.reshape(1, -1, *([1] * (x.dim() - 2)))


def _check_channel_param(p: object, name: str, x: Tensor) -> Tensor:
    p = check_tensor(p, name, ndim=1, floating=True)
    if p.shape[0] != x.shape[1]:
        raise ValueError(
            f"{name} must have shape ({x.shape[1]},), one entry per channel of x, got {tuple(p.shape)}"
        )
    return p


# --------------------------------------------------------------------------- ActNorm


def actnorm_initialize(x: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    r"""ActNorm's data-dependent initialization: the parameters that standardise ``x`` per channel.

    .. math:: \mu_c = \operatorname{mean}(x_{\cdot c \cdot}), \quad
              \sigma_c = \sqrt{\operatorname{mean}\big((x_{\cdot c \cdot} - \mu_c)^2\big)}, \quad
              b_c = -\mu_c, \quad \ell_c = -\log(\sigma_c + \varepsilon),

    the mean and the (biased, divide-by-count) standard deviation over the batch and all positions.
    Then :func:`~genlib.flows.glow.actnorm_forward` maps this batch to zero mean and (nearly) unit
    variance per channel.

    Args:
        x: shape ``(B, C)`` or ``(B, C, H, W)``, floating, ``B >= 1``.
        eps: keeps :math:`\ell_c` finite for a constant channel.

    Returns:
        ``(bias, log_scale)``, each of shape ``(C,)``, dtype and device of ``x``.
    """
    x = check_batch(x)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    per_channel = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, B*H*W)
    mean = per_channel.mean(dim=1)
    std = (per_channel - mean[:, None]).square().mean(dim=1).sqrt()
    return -mean, -torch.log(std + eps)


def actnorm_forward(x: Tensor, bias: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
    r"""ActNorm: a per-channel affine map.

    .. math:: z_{\cdot c \cdot} = (x_{\cdot c \cdot} + b_c)\, e^{\ell_c}, \qquad
              \log|\det J| = H W \textstyle\sum_c \ell_c .

    Args:
        x: shape ``(B, C)`` or ``(B, C, H, W)``, floating.
        bias, log_scale: shape ``(C,)``.

    Returns:
        ``(z, ladj)``: ``z`` shaped like ``x``, ``ladj`` of shape ``(B,)``.
    """
    x = check_batch(x)
    bias, log_scale = _check_channel_param(bias, "bias", x), _check_channel_param(log_scale, "log_scale", x)
    z = (x + _per_channel(bias, x)) * _per_channel(log_scale, x).exp()
    ladj = _num_positions(x) * log_scale.sum()
    return z, ladj.expand(x.shape[0])


def actnorm_inverse(z: Tensor, bias: Tensor, log_scale: Tensor) -> Tensor:
    r"""The inverse of :func:`~genlib.flows.glow.actnorm_forward`.

    .. math:: x_{\cdot c \cdot} = z_{\cdot c \cdot} e^{-\ell_c} - b_c .

    Shapes as in :func:`~genlib.flows.glow.actnorm_forward`.
    """
    z = check_batch(z, "z")
    bias, log_scale = _check_channel_param(bias, "bias", z), _check_channel_param(log_scale, "log_scale", z)
    return z * _per_channel(-log_scale, z).exp() - _per_channel(bias, z)


class ActNorm(Transform):
    r"""Activation normalization: a per-channel affine layer initialized from the first batch.

    .. math:: z = (x + b) \odot e^{\ell} \text{ per channel}, \qquad
              \log|\det J| = H W \textstyle\sum_c \ell_c .

    The first call of :meth:`call_and_ladj` (or an explicit :meth:`initialize`) sets :math:`b` and
    :math:`\ell` so that this batch comes out with zero mean and unit variance per channel
    (:func:`~genlib.flows.glow.actnorm_initialize`); afterwards they are ordinary trainable
    parameters. Unlike batch normalization it does not depend on the batch after that, so it is a
    fixed invertible map.

    Args:
        num_channels: :math:`C`, the size of dimension 1.
        eps: see :func:`~genlib.flows.glow.actnorm_initialize`.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        c = check_positive_int(num_channels, "num_channels")
        self.bias = nn.Parameter(torch.zeros(c))
        self.log_scale = nn.Parameter(torch.zeros(c))
        self.eps = eps
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set the parameters from the batch ``x`` (shape ``(B, C, ...)``) and mark the layer initialized."""
        bias, log_scale = actnorm_initialize(x, self.eps)
        self.bias.copy_(bias)
        self.log_scale.copy_(log_scale)
        self.initialized.fill_(True)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not bool(self.initialized):
            self.initialize(x)
        return actnorm_forward(x, self.bias, self.log_scale)

    def inverse(self, z: Tensor) -> Tensor:
        return actnorm_inverse(z, self.bias, self.log_scale)


# --------------------------------------------------------------------------- the 1x1 convolution


def _check_weight(weight: object, x: Tensor) -> Tensor:
    weight = check_tensor(weight, "weight", ndim=2, floating=True)
    c = x.shape[1]
    if tuple(weight.shape) != (c, c):
        raise ValueError(
            f"weight must have shape ({c}, {c}) for x with {c} channels, got {tuple(weight.shape)}"
        )
    return weight


def conv1x1_forward(x: Tensor, weight: Tensor, log_abs_det: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""The invertible 1x1 convolution: the same linear map of the channels at every position.

    .. math:: z_{b, \cdot, h, w} = W x_{b, \cdot, h, w}, \qquad \log|\det J| = H W \log|\det W| .

    The Jacobian is block diagonal with :math:`H W` copies of :math:`W`. :math:`\log|\det W|` is
    taken from ``torch.linalg.slogdet`` (:math:`O(C^3)`, and correct for a negative determinant)
    unless the caller knows it already (the LU parameterization does, in :math:`O(C)`).

    Args:
        x: shape ``(B, C)`` or ``(B, C, H, W)``, floating.
        weight: :math:`W`, shape ``(C, C)``, invertible.
        log_abs_det: optional :math:`\log|\det W|`, a 0-d tensor.

    Returns:
        ``(z, ladj)``: ``z`` shaped like ``x``, ``ladj`` of shape ``(B,)``.
    """
    x = check_batch(x)
    weight = _check_weight(weight, x)
    if log_abs_det is None:
        log_abs_det = torch.linalg.slogdet(weight).logabsdet
    z = torch.einsum("ij,bj...->bi...", weight, x)
    return z, (_num_positions(x) * log_abs_det).expand(x.shape[0])


def conv1x1_inverse(z: Tensor, weight: Tensor, inverse_weight: Tensor | None = None) -> Tensor:
    r"""The inverse of :func:`~genlib.flows.glow.conv1x1_forward`: :math:`x = W^{-1} z` at every position.

    ``inverse_weight`` (:math:`W^{-1}`, shape ``(C, C)``) may be given if it is known already.
    """
    z = check_batch(z, "z")
    weight = _check_weight(weight, z)
    if inverse_weight is None:
        inverse_weight = torch.linalg.inv(weight)
    return torch.einsum("ij,bj...->bi...", inverse_weight, z)


def lu_weight(
    permutation: Tensor, lower: Tensor, upper: Tensor, log_scale: Tensor, sign: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Assemble :math:`W = P L U` from its LU parameterization, with its log-determinant for free.

    .. math:: L = I + \operatorname{strictly\,lower}(\mathtt{lower}), \quad
              U = \operatorname{strictly\,upper}(\mathtt{upper})
                  + \operatorname{diag}(\mathrm{sign} \odot e^{\ell}),
    .. math:: W = P L U, \qquad \log|\det W| = \textstyle\sum_c \ell_c ,

    because :math:`|\det P| = 1`, :math:`\det L = 1`, and the determinant of the triangular
    :math:`U` is the product of its diagonal. Only the strictly lower part of ``lower`` and the
    strictly upper part of ``upper`` are used.

    Args:
        permutation: :math:`P`, shape ``(C, C)``, a permutation matrix (fixed during training).
        lower, upper: shape ``(C, C)``.
        log_scale: :math:`\ell`, shape ``(C,)``.
        sign: shape ``(C,)``, entries :math:`\pm 1` (fixed during training).

    Returns:
        ``(weight, log_abs_det)``: shape ``(C, C)`` and a 0-d tensor, in the dtype of ``lower``.
    """
    lower = check_tensor(lower, "lower", ndim=2, floating=True)
    c = lower.shape[0]
    for name, m in (("permutation", permutation), ("upper", upper)):
        check_tensor(m, name, ndim=2, floating=True)
        if tuple(m.shape) != (c, c):
            raise ValueError(f"{name} must have shape ({c}, {c}) like lower, got {tuple(m.shape)}")
    if tuple(lower.shape) != (c, c):
        raise ValueError(f"lower must be square, got shape {tuple(lower.shape)}")
    for name, v in (("log_scale", log_scale), ("sign", sign)):
        check_tensor(v, name, ndim=1, floating=True)
        if v.shape[0] != c:
            raise ValueError(f"{name} must have shape ({c},), got {tuple(v.shape)}")
    eye = torch.eye(c, dtype=lower.dtype, device=lower.device)
    l_factor = torch.tril(lower, diagonal=-1) + eye
    u_factor = torch.triu(upper, diagonal=1) + torch.diag(sign * log_scale.exp())
    return permutation @ l_factor @ u_factor, log_scale.sum()


def random_rotation(num_channels: int, *, generator: torch.Generator | None = None) -> Tensor:
    """A random orthogonal ``(C, C)`` matrix (float32, CPU): Q of the QR factorization of a Gaussian matrix.

    Glow's initialization of the 1x1 convolution: a rotation (or reflection) has :math:`|\\det W| = 1`.
    """
    c = check_positive_int(num_channels, "num_channels")
    check_generator(generator, torch.device("cpu"))
    q, r = torch.linalg.qr(torch.randn(c, c, generator=generator))
    return q * torch.sign(torch.diagonal(r))[None, :]  # a unique Q: the same seed, the same matrix


class InvertibleConv1x1(Transform):
    r"""Glow's invertible 1x1 convolution with a free weight matrix.

    .. math:: z = W x \text{ at every position}, \qquad \log|\det J| = H W \log|\det W|,

    :math:`\log|\det W|` computed by ``slogdet`` in :math:`O(C^3)` per call (see
    :class:`~genlib.flows.glow.LUInvertibleConv1x1` for the :math:`O(C)` version). Initialized to a
    random rotation.

    Args:
        num_channels: :math:`C`.
        generator: draws the initial rotation (CPU).
    """

    def __init__(self, num_channels: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(random_rotation(num_channels, generator=generator))

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return conv1x1_forward(x, self.weight)

    def inverse(self, z: Tensor) -> Tensor:
        return conv1x1_inverse(z, self.weight)


class LUInvertibleConv1x1(Transform):
    r"""Glow's invertible 1x1 convolution, LU-parameterized: :math:`W = P L (U + \operatorname{diag}(s))`.

    .. math:: z = W x \text{ at every position}, \qquad \log|\det J| = H W \textstyle\sum_c \ell_c ,

    with :math:`s = \mathrm{sign} \odot e^{\ell}` (see :func:`~genlib.flows.glow.lu_weight`).
    :math:`P` and the signs are fixed buffers; :math:`L`, :math:`U` and :math:`\ell` are trained.
    The log-determinant costs :math:`O(C)` and the inverse two triangular solves. Initialized to
    the LU factorization of a random rotation.

    Args:
        num_channels: :math:`C`.
        generator: draws the initial rotation (CPU).
    """

    def __init__(self, num_channels: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        p, l_factor, u_factor = torch.linalg.lu(random_rotation(num_channels, generator=generator))
        diagonal = torch.diagonal(u_factor)
        self.register_buffer("permutation", p)
        self.register_buffer("sign", torch.sign(diagonal))
        self.lower = nn.Parameter(torch.tril(l_factor, diagonal=-1))
        self.upper = nn.Parameter(torch.triu(u_factor, diagonal=1))
        self.log_scale = nn.Parameter(diagonal.abs().log())

    def weight(self) -> tuple[Tensor, Tensor]:
        """``(W, log|det W|)`` from the current parameters."""
        return lu_weight(self.permutation, self.lower, self.upper, self.log_scale, self.sign)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        weight, log_abs_det = self.weight()
        return conv1x1_forward(x, weight, log_abs_det)

    def inverse(self, z: Tensor) -> Tensor:
        c = self.log_scale.shape[0]
        eye = torch.eye(c, dtype=self.lower.dtype, device=self.lower.device)
        l_factor = torch.tril(self.lower, diagonal=-1) + eye
        u_factor = torch.triu(self.upper, diagonal=1) + torch.diag(self.sign * self.log_scale.exp())
        # W^{-1} = U^{-1} L^{-1} P^T: two triangular solves instead of a general inverse.
        l_inv = torch.linalg.solve_triangular(l_factor, eye, upper=False, unitriangular=True)
        u_inv = torch.linalg.solve_triangular(u_factor, eye, upper=True)
        weight = self.permutation @ l_factor @ u_factor
        return conv1x1_inverse(z, weight, u_inv @ l_inv @ self.permutation.T)


# --------------------------------------------------------------------------- squeezing


class Squeeze(Transform):
    r"""Trade space for channels: each :math:`f \times f` patch becomes :math:`f^2` channels.

    ``(B, C, H, W) -> (B, C f^2, H / f, W / f)``, a fixed permutation of the entries, so
    :math:`\log|\det J| = 0`. It lets channel masks and 1x1 convolutions mix neighbouring pixels.

    Args:
        factor: :math:`f`; ``H`` and ``W`` must be divisible by it.
    """

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = check_positive_int(factor, "factor")

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return _squeeze(x, self.factor, "x"), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return _unsqueeze(z, self.factor, "z")


class Unsqueeze(Transform):
    r"""The inverse of :class:`~genlib.flows.glow.Squeeze`: ``(B, C f^2, H, W) -> (B, C, H f, W f)``.

    A permutation of the entries, :math:`\log|\det J| = 0`.

    Put at the end of a flow that squeezed, so that the latent :math:`z` has the shape of the data.
    """

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = check_positive_int(factor, "factor")

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return _unsqueeze(x, self.factor, "x"), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return _squeeze(z, self.factor, "z")


def _squeeze(x: Tensor, f: int, name: str) -> Tensor:
    x = check_tensor(x, name, ndim=4, floating=True, min_size=1)
    b, c, h, w = x.shape
    if h % f or w % f:
        raise ValueError(f"{name}'s height and width must be divisible by factor={f}, got {h}x{w}")
    z = x.reshape(b, c, h // f, f, w // f, f).permute(0, 1, 3, 5, 2, 4)  # (B, C, f, f, H/f, W/f)
    return z.reshape(b, c * f * f, h // f, w // f)


def _unsqueeze(z: Tensor, f: int, name: str) -> Tensor:
    z = check_tensor(z, name, ndim=4, floating=True, min_size=1)
    b, c, h, w = z.shape
    if c % (f * f):
        raise ValueError(f"{name}'s channels must be divisible by factor**2={f * f}, got {c}")
    x = z.reshape(b, c // (f * f), f, f, h, w).permute(0, 1, 4, 2, 5, 3)  # (B, C, H, f, W, f)
    return x.reshape(b, c // (f * f), h * f, w * f)
