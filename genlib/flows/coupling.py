r"""Coupling layers (NICE, RealNVP), their masks, and the networks that condition them.

A coupling layer splits the entries of :math:`x` with a binary mask :math:`m` into a kept part
:math:`x_A = m \odot x` and a changed part. The kept part passes through unchanged and decides,
through a neural network, how the changed part is moved:

- **additive** (NICE): :math:`z = x + (1 - m) \odot t(m \odot x)`;
- **affine** (RealNVP): :math:`z = x \odot e^{\ell} + (1 - m) \odot t`, with
  :math:`\ell = (1 - m) \odot c \tanh(s / c)` and :math:`(s, t) = \mathrm{net}(m \odot x)`.

Ordered kept-entries-first, the Jacobian is block triangular,

.. math:: \frac{\partial z}{\partial x}
          = \begin{pmatrix} I & 0 \\ \ast & \operatorname{diag}(e^{\ell}) \end{pmatrix},

so its determinant is the product of the diagonal, :math:`\log|\det J| = \sum_j \ell_j` (zero for
the additive layer): no :math:`O(D^3)` determinant, however complex the network. The inverse is
as cheap: :math:`m \odot z = m \odot x` gives the network's input back.

Masks have the shape of one event or broadcast to it: ``(D,)`` for vectors, ``(1, H, W)``
(checkerboard) or ``(C, 1, 1)`` (channels) for images; 1 marks a kept entry.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from genlib.flows.base import Transform, check_batch, sum_except_batch
from genlib.validation import check_positive_int, check_tensor

__all__ = [
    "alternating_mask",
    "half_mask",
    "checkerboard_mask",
    "channel_mask",
    "soft_clamp",
    "additive_coupling_forward",
    "additive_coupling_inverse",
    "affine_coupling_forward",
    "affine_coupling_inverse",
    "AdditiveCoupling",
    "AffineCoupling",
    "mlp_conditioner",
    "conv_conditioner",
]

#: The network of an additive coupling: ``m * x -> t``, same shape as ``x``.
ShiftNet = Callable[[Tensor], Tensor]
#: The network of an affine coupling: ``m * x -> (s, t)``, each the shape of ``x``.
ScaleShiftNet = Callable[[Tensor], tuple[Tensor, Tensor]]


# --------------------------------------------------------------------------- masks


def _parity(parity: int) -> int:
    if parity not in (0, 1) or isinstance(parity, bool):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    return parity


def alternating_mask(
    num_features: int,
    parity: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Shape ``(D,)``: 1 at the even entries (``parity=0``) or at the odd ones (``parity=1``)."""
    num_features = check_positive_int(num_features, "num_features")
    j = torch.arange(num_features, device=device)
    return ((j + _parity(parity)) % 2 == 0).to(dtype)


def half_mask(
    num_features: int,
    parity: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Shape ``(D,)``: 1 on the first ``D // 2`` entries (``parity=0``) or on the others (``parity=1``)."""
    num_features = check_positive_int(num_features, "num_features")
    first = torch.arange(num_features, device=device) < num_features // 2
    return (first if _parity(parity) == 0 else ~first).to(dtype)


def checkerboard_mask(
    height: int,
    width: int,
    parity: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Shape ``(1, H, W)``: 1 where ``(row + column + parity)`` is even, the same for every channel."""
    height, width = check_positive_int(height, "height"), check_positive_int(width, "width")
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return ((rows + cols + _parity(parity)) % 2 == 0).to(dtype)[None]


def channel_mask(
    num_channels: int,
    parity: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Shape ``(C, 1, 1)``: 1 on the first ``C // 2`` channels (``parity=0``), or on the rest."""
    if check_positive_int(num_channels, "num_channels") < 2:
        raise ValueError(f"num_channels must be >= 2 to split the channels in two, got {num_channels}")
    return half_mask(num_channels, parity, dtype=dtype, device=device)[:, None, None]


def _check_mask(mask: object, x: Tensor) -> Tensor:
    mask = check_tensor(mask, "mask")
    event = tuple(x.shape[1:])
    shape = tuple(mask.shape)
    fits = len(shape) <= len(event) and all(
        m in (1, e) for m, e in zip(reversed(shape), reversed(event), strict=False)
    )
    if not fits:
        raise ValueError(f"mask must broadcast to one event of shape {event}, got shape {shape}")
    if mask.device != x.device:
        raise ValueError(f"mask is on {mask.device} but x is on {x.device}")
    return mask.to(x.dtype)


def _check_net_output(t: object, x: Tensor, what: str) -> Tensor:
    if not isinstance(t, Tensor) or t.shape != x.shape:
        got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"the network's {what} must have the shape of x, {tuple(x.shape)}, got {got}")
    return t


# --------------------------------------------------------------------------- the couplings as functions


def soft_clamp(s: Tensor, bound: float) -> Tensor:
    r"""Squash a raw log-scale smoothly into :math:`(-c, c)`: :math:`c \tanh(s / c)`.

    Near zero it is the identity (slope 1), so small scales are learned as they are; large raw
    outputs of the network cannot make :math:`e^{\ell}` overflow or collapse to 0.
    """
    return bound * torch.tanh(s / bound)


def additive_coupling_forward(x: Tensor, mask: Tensor, net: ShiftNet) -> tuple[Tensor, Tensor]:
    r"""NICE's additive coupling, :math:`z = x + (1 - m) \odot t(m \odot x)`, :math:`\log|\det J| = 0`.

    Args:
        x: shape ``(B, *event_shape)``, floating.
        mask: 1 on the kept entries, 0 on the changed ones; broadcasts to ``event_shape``.
        net: maps the kept part ``m * x`` to the shift ``t``, shape of ``x``.

    Returns:
        ``(z, ladj)``: ``z`` shaped like ``x``; ``ladj`` zeros of shape ``(B,)``.
    """
    x = check_batch(x)
    mask = _check_mask(mask, x)
    t = _check_net_output(net(x * mask), x, "shift")
    return x + (1 - mask) * t, x.new_zeros(x.shape[0])


def additive_coupling_inverse(z: Tensor, mask: Tensor, net: ShiftNet) -> Tensor:
    r"""The inverse of :func:`~genlib.flows.coupling.additive_coupling_forward`.

    .. math:: x = z - (1 - m) \odot t(m \odot z).
    """
    z = check_batch(z, "z")
    mask = _check_mask(mask, z)
    t = _check_net_output(net(z * mask), z, "shift")
    return z - (1 - mask) * t


def affine_coupling_forward(
    x: Tensor, mask: Tensor, net: ScaleShiftNet, max_log_scale: float = 2.0
) -> tuple[Tensor, Tensor]:
    r"""RealNVP's affine coupling with a soft-clamped log-scale.

    .. math:: (s, t) = \mathrm{net}(m \odot x), \quad
              \ell = (1 - m) \odot c \tanh(s / c), \quad
              z = x \odot e^{\ell} + (1 - m) \odot t, \quad
              \log|\det J| = \textstyle\sum_j \ell_j .

    Args:
        x: shape ``(B, *event_shape)``, floating.
        mask: 1 on the kept entries, 0 on the changed ones; broadcasts to ``event_shape``.
        net: maps the kept part ``m * x`` to the raw log-scale ``s`` and the shift ``t``, each of
            the shape of ``x``.
        max_log_scale: :math:`c > 0`; every :math:`\ell_j` lies in :math:`(-c, c)`.

    Returns:
        ``(z, ladj)``: ``z`` shaped like ``x``; ``ladj`` of shape ``(B,)``.
    """
    x = check_batch(x)
    mask = _check_mask(mask, x)
    if not max_log_scale > 0:
        raise ValueError(f"max_log_scale must be positive, got {max_log_scale}")
    s, t = net(x * mask)
    s, t = _check_net_output(s, x, "log-scale"), _check_net_output(t, x, "shift")
    log_scale = (1 - mask) * soft_clamp(s, max_log_scale)
    z = x * log_scale.exp() + (1 - mask) * t
    return z, sum_except_batch(log_scale)


def affine_coupling_inverse(
    z: Tensor, mask: Tensor, net: ScaleShiftNet, max_log_scale: float = 2.0
) -> Tensor:
    r"""The inverse of :func:`~genlib.flows.coupling.affine_coupling_forward`.

    The kept part is unchanged, :math:`m \odot z = m \odot x`, so the network sees the same input
    and returns the same :math:`(s, t)`; then :math:`x = (z - (1 - m) \odot t) \odot e^{-\ell}`.
    """
    z = check_batch(z, "z")
    mask = _check_mask(mask, z)
    if not max_log_scale > 0:
        raise ValueError(f"max_log_scale must be positive, got {max_log_scale}")
    s, t = net(z * mask)
    s, t = _check_net_output(s, z, "log-scale"), _check_net_output(t, z, "shift")
    log_scale = (1 - mask) * soft_clamp(s, max_log_scale)
    return (z - (1 - mask) * t) * (-log_scale).exp()


# --------------------------------------------------------------------------- the couplings as layers


class AdditiveCoupling(Transform):
    r"""NICE's additive coupling layer (Dinh, Krueger and Bengio, 2014).

    .. math:: z = x + (1 - m) \odot t(m \odot x), \qquad x = z - (1 - m) \odot t(m \odot z),
              \qquad \log|\det J| = 0 .

    Args:
        mask: 1 on the kept entries; broadcasts to the event shape (stored as a buffer).
        net: a module mapping ``(B, *event_shape)`` to the shift of the same shape; its output on
            the kept entries is ignored.
    """

    def __init__(self, mask: Tensor, net: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mask", check_tensor(mask, "mask").float())
        self.net = net

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return additive_coupling_forward(x, self.mask, self.net)

    def inverse(self, z: Tensor) -> Tensor:
        return additive_coupling_inverse(z, self.mask, self.net)


class AffineCoupling(Transform):
    r"""RealNVP's affine coupling layer (Dinh, Sohl-Dickstein and Bengio, 2017).

    .. math:: z = x \odot e^{\ell} + (1 - m) \odot t, \qquad x = (z - (1 - m) \odot t) \odot e^{-\ell},
              \qquad \log|\det J| = \textstyle\sum_j \ell_j ,

    with :math:`(s, t)` the two halves (along dimension 1) of ``net(m * x)`` and
    :math:`\ell = (1 - m) \odot c \tanh(s / c)`; see :func:`~genlib.flows.coupling.affine_coupling_forward`.

    Args:
        mask: 1 on the kept entries; broadcasts to the event shape (stored as a buffer).
        net: a module mapping ``(B, F, ...)`` to ``(B, 2F, ...)``: the raw log-scale, then the shift.
        max_log_scale: the bound :math:`c` of the soft clamp.
    """

    def __init__(self, mask: Tensor, net: nn.Module, max_log_scale: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("mask", check_tensor(mask, "mask").float())
        self.net = net
        self.max_log_scale = max_log_scale

    def scale_and_shift(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The network's output split along dimension 1 into the raw log-scale and the shift."""
        s, t = self.net(h).chunk(2, dim=1)
        return s, t

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return affine_coupling_forward(x, self.mask, self.scale_and_shift, self.max_log_scale)

    def inverse(self, z: Tensor) -> Tensor:
        return affine_coupling_inverse(z, self.mask, self.scale_and_shift, self.max_log_scale)


# --------------------------------------------------------------------------- conditioner networks


def mlp_conditioner(
    in_features: int, out_features: int, hidden_features: int = 64, num_hidden_layers: int = 2
) -> nn.Sequential:
    """An MLP ``(B, in_features) -> (B, out_features)`` with ReLU hidden layers.

    The last layer starts at zero, so a coupling built on it starts as the identity map and
    training begins from the base distribution (as in Glow).
    """
    sizes = [check_positive_int(in_features, "in_features")]
    sizes += [check_positive_int(hidden_features, "hidden_features")] * check_positive_int(
        num_hidden_layers, "num_hidden_layers"
    )
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    last = nn.Linear(sizes[-1], check_positive_int(out_features, "out_features"))
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def conv_conditioner(in_channels: int, out_channels: int, hidden_channels: int = 32) -> nn.Sequential:
    """A small CNN ``(B, in_channels, H, W) -> (B, out_channels, H, W)``: 3x3, 1x1, 3x3 convolutions.

    Padding keeps the spatial size. The last convolution starts at zero (identity coupling).
    """
    in_channels = check_positive_int(in_channels, "in_channels")
    hidden = check_positive_int(hidden_channels, "hidden_channels")
    last = nn.Conv2d(hidden, check_positive_int(out_channels, "out_channels"), 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 1),
        nn.ReLU(),
        last,
    )
