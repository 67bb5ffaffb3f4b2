r"""The flow interface: a transform with its log-determinant, composition, and the flow itself.

A normalizing flow models data :math:`x` through an invertible, differentiable map
:math:`z = f(x)` onto a latent variable with a simple density, here the standard normal
:math:`\mathcal N(0, I)`. The change of variables gives the density of :math:`x`,

.. math:: \log P(x \mid \theta) = \log \mathcal N\big(f(x); 0, I\big)
          + \log \left|\det \frac{\partial f(x)}{\partial x}\right| ,

and sampling runs the map backwards: :math:`z \sim \mathcal N(0, I)`, :math:`x = f^{-1}(z)`.

Conventions of every transform in ``genlib.flows``:

- ``forward`` goes from data to latent (:math:`x \to z`), ``inverse`` from latent to data;
- a batch has shape ``(B, *event_shape)``: ``(B, D)`` for vectors, ``(B, C, H, W)`` for images;
- ``call_and_ladj(x)`` returns ``(z, ladj)``, ``z`` shaped like ``x`` and ``ladj`` of shape ``(B,)``:
  :math:`\log|\det J_f(x^i)|` of each sample, summed over all entries of the event;
- dtype and device follow the input and the module (move the module with ``.to``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = [
    "Transform",
    "Compose",
    "Flow",
    "standard_normal_log_prob",
    "flow_log_prob",
    "check_batch",
]

#: A layer seen as a function: ``x -> (z, ladj)`` with ``ladj`` of shape ``(B,)``.
Layer = Callable[[Tensor], tuple[Tensor, Tensor]]


def check_batch(x: object, name: str = "x") -> Tensor:
    """Check that ``x`` is a floating batch ``(B, *event_shape)``: ``B >= 1``, an event of rank >= 1."""
    x = check_tensor(x, name, floating=True, min_size=1)
    if x.dim() < 2:
        raise ValueError(
            f"{name} must be a batch of shape (B, *event_shape), e.g. (B, D) or (B, C, H, W); "
            f"got shape {tuple(x.shape)} (add a batch dimension with x[None] or x[:, None])"
        )
    return x


def sum_except_batch(t: Tensor) -> Tensor:
    """Sum a ``(B, ...)`` tensor over all but its first dimension, giving shape ``(B,)``."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


class Transform(nn.Module):
    r"""A bijection :math:`z = f(x)` that knows its log-Jacobian-determinant.

    Subclasses implement :meth:`call_and_ladj` (the forward map fused with
    :math:`\log|\det \partial f / \partial x|`, since the two share most of their work) and
    :meth:`inverse`. Calling the module returns ``z`` only.
    """

    def forward(self, x: Tensor) -> Tensor:
        return self.call_and_ladj(x)[0]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, ladj)``: :math:`z = f(x)`, same shape as ``x``, and ``ladj`` of shape ``(B,)``."""
        raise NotImplementedError

    def inverse(self, z: Tensor) -> Tensor:
        r""":math:`x = f^{-1}(z)`, same shape as ``z``."""
        raise NotImplementedError

    def log_abs_det_jacobian(self, x: Tensor) -> Tensor:
        r""":math:`\log|\det J_f(x)|`, shape ``(B,)``."""
        return self.call_and_ladj(x)[1]


class Compose(Transform):
    r"""The composition :math:`f = f_K \circ \dots \circ f_1` of transforms: a transform again.

    .. math:: z = f_K(\dots f_1(x)), \qquad
              \log|\det J_f(x)| = \sum_{k=1}^K \log|\det J_{f_k}(h_{k-1})|,

    with :math:`h_0 = x`, :math:`h_k = f_k(h_{k-1})` (the chain rule: the Jacobian of a composition
    is the product of the Jacobians, and the determinant of a product is the product of the
    determinants). The inverse applies the inverses in reverse order.
    """

    def __init__(self, *transforms: Transform) -> None:
        super().__init__()
        if not transforms:
            raise ValueError("Compose needs at least one transform, got none")
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"transform {i} must be a genlib.flows Transform, got {type(t).__name__}")
        self.transforms = nn.ModuleList(transforms)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, ladj = t.call_and_ladj(x)
            total = total + ladj
        return x, total

    def inverse(self, z: Tensor) -> Tensor:
        for t in reversed(self.transforms):
            z = t.inverse(z)
        return z

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, index: int) -> Transform:
        return self.transforms[index]


def standard_normal_log_prob(z: Tensor) -> Tensor:
    r"""Log-density of the standard normal :math:`\mathcal N(0, I)` for a batch of events.

    .. math:: \log \mathcal N(z; 0, I) = -\tfrac12 \lVert z \rVert^2 - \tfrac D2 \log 2\pi ,

    with :math:`D` the number of entries of one event.

    Args:
        z: shape ``(B, *event_shape)``, floating.

    Returns:
        Shape ``(B,)``, dtype and device of ``z``.
    """
    z = check_batch(z, "z")
    d = z[0].numel()
    return -0.5 * sum_except_batch(z.square()) - 0.5 * d * math.log(2 * math.pi)


def flow_log_prob(x: Tensor, layers: Sequence[Layer]) -> Tensor:
    r"""The change-of-variables log-density of a flow :math:`f = f_K \circ \dots \circ f_1`.

    .. math:: \log P(x) = \log \mathcal N\big(f(x); 0, I\big) + \sum_{k=1}^K \log|\det J_{f_k}(h_{k-1})| ,
              \qquad h_0 = x,\ h_k = f_k(h_{k-1}).

    Args:
        x: the data, shape ``(B, *event_shape)``, floating.
        layers: functions ``h -> (f_k(h), ladj_k)``, applied in order, each returning its output
            (shape of ``h``) and the log-determinant of its Jacobian, shape ``(B,)``; for example the
            ``call_and_ladj`` methods of :class:`~genlib.flows.base.Transform` objects.

    Returns:
        :math:`\log P(x^i)` for each sample, shape ``(B,)``, dtype and device of ``x``.
    """
    x = check_batch(x)
    for i, layer in enumerate(layers):
        if not callable(layer):
            raise TypeError(f"layers[{i}] must be callable (h -> (z, ladj)), got {type(layer).__name__}")
    z, total = x, x.new_zeros(x.shape[0])
    for layer in layers:
        z, ladj = layer(z)
        total = total + ladj
    return standard_normal_log_prob(z) + total


class Flow(nn.Module):
    r"""A normalizing flow: a :class:`~genlib.flows.base.Transform` :math:`f` from data to a normal latent.

    .. math:: \log P(x \mid \theta) = \log \mathcal N(f(x); 0, I) + \log|\det J_f(x)|, \qquad
              x = f^{-1}(z),\ z \sim \mathcal N(0, I).

    Args:
        transform: :math:`f`; a :class:`~genlib.flows.base.Compose` of layers, or a single layer.
        event_shape: the shape of one sample, e.g. ``(2,)`` or ``(1, 8, 8)``.
    """

    def __init__(self, transform: Transform, event_shape: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"transform must be a genlib.flows Transform, got {type(transform).__name__}")
        shape = tuple(event_shape)
        for s in shape:
            check_positive_int(s, "event_shape entries")
        if not shape:
            raise ValueError("event_shape must have at least one dimension, e.g. (2,), got ()")
        self.transform = transform
        self.event_shape = shape

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the flow's first floating parameter or buffer (float32 if it has none)."""
        return self._first_floating().dtype

    @property
    def device(self) -> torch.device:
        """The device of the flow's first floating parameter or buffer (the CPU if it has none)."""
        return self._first_floating().device

    def _first_floating(self) -> Tensor:
        for t in (*self.parameters(), *self.buffers()):
            if t.is_floating_point():
                return t
        return torch.zeros(())

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`log_prob`."""
        return self.log_prob(x)

    def log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log P(x^i \mid \theta)` of a batch ``x``, shape ``(B, *event_shape)``; shape ``(B,)``."""
        x = check_batch(x)
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(
                f"x must have shape (B, {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}"
            )
        return flow_log_prob(x, [self.transform.call_and_ladj])

    @torch.no_grad()
    def sample(
        self, num_samples: int, *, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        r"""Draw :math:`x = f^{-1}(T z)` with :math:`z \sim \mathcal N(0, I)`, without gradients.

        ``z = torch.randn((num_samples, *event_shape), generator=generator)`` in the dtype and on the
        device of the flow (:attr:`dtype`, :attr:`device`). A temperature :math:`T < 1` draws from a
        narrower latent Gaussian, trading diversity for typical-looking samples (Glow, section 5);
        :math:`T = 1` samples the model itself. Returns shape ``(num_samples, *event_shape)``.
        """
        num_samples = check_positive_int(num_samples, "num_samples")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        check_generator(generator, self.device)
        z = torch.randn(
            (num_samples, *self.event_shape), generator=generator, dtype=self.dtype, device=self.device
        )
        return self.transform.inverse(temperature * z)
