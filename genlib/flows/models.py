r"""NICE, RealNVP and Glow assembled from the layers, for vectors ``(D,)`` and images ``(C, H, W)``.

Each builder returns a :class:`~genlib.flows.base.Compose`, the map :math:`f` from data to a
latent of the same shape; wrap it in :class:`~genlib.flows.base.Flow` for ``log_prob`` and
``sample``, after any pre-processing layer (e.g. :class:`~genlib.flows.dequantization.Logit`):

>>> flow = Flow(Compose(Logit(), *build_realnvp((1, 8, 8))), event_shape=(1, 8, 8))  # doctest: +SKIP

Parameters are initialized from ``seed`` (the global random state is left as it was), and every
coupling starts as the identity (its network's last layer is zero), so an untrained flow is the
standard normal, pushed through the fixed layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genlib.device import make_generator
from genlib.flows.base import Compose, Transform
from genlib.flows.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    conv_conditioner,
    half_mask,
    mlp_conditioner,
)
from genlib.flows.elementwise import Scaling
from genlib.flows.glow import ActNorm, LUInvertibleConv1x1, Squeeze, Unsqueeze
from genlib.validation import check_positive_int

__all__ = ["build_nice", "build_realnvp", "build_glow"]


def _shape(event_shape: int | Sequence[int]) -> tuple[int, ...]:
    shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    if len(shape) not in (1, 3):
        raise ValueError(f"event_shape must be (D,) or (C, H, W), got {shape}")
    for s in shape:
        check_positive_int(s, "event_shape entries")
    return shape


def build_nice(
    num_features: int,
    *,
    num_couplings: int = 4,
    hidden_features: int = 64,
    num_hidden_layers: int = 2,
    seed: int = 0,
) -> Compose:
    r"""NICE: additive couplings on alternating halves (even/odd entries), then a diagonal scaling.

    .. math:: f = S \circ g_K \circ \dots \circ g_1, \qquad
              \log|\det J_f| = \textstyle\sum_j s_j \text{ (the couplings contribute 0).}

    Args:
        num_features: :math:`D` (flatten images first; NICE works on vectors).
        num_couplings: :math:`K`, at least 2 so that every entry is changed.
        hidden_features, num_hidden_layers: size of each coupling's MLP.
        seed: initializes the networks.
    """
    d = check_positive_int(num_features, "num_features")
    k = check_positive_int(num_couplings, "num_couplings")
    layers: list[Transform] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(k):
            net = mlp_conditioner(d, d, hidden_features, num_hidden_layers)
            layers.append(AdditiveCoupling(alternating_mask(d, i % 2), net))
    layers.append(Scaling(d))
    return Compose(*layers)


def build_realnvp(
    event_shape: int | Sequence[int],
    *,
    num_couplings: int = 4,
    hidden_features: int = 64,
    num_hidden_layers: int = 2,
    max_log_scale: float = 2.0,
    seed: int = 0,
) -> Compose:
    r"""RealNVP: affine couplings with alternating masks.

    - Vectors ``(D,)``: ``num_couplings`` couplings on even/odd entries in turn, each with an MLP.
    - Images ``(C, H, W)``: ``num_couplings`` checkerboard couplings, a squeeze to
      ``(4C, H/2, W/2)``, ``num_couplings`` channel couplings, and an unsqueeze back, each coupling
      with a small CNN (``hidden_features`` channels). This is one scale of RealNVP's multi-scale
      architecture (Dinh et al., 2017, section 3.6), without the factoring out.

    Args:
        event_shape: ``(D,)`` (or ``D``) or ``(C, H, W)`` with even ``H`` and ``W``.
        num_couplings: couplings per stage.
        hidden_features: MLP width, or CNN channels.
        num_hidden_layers: MLP depth (vectors only).
        max_log_scale: the soft clamp of every coupling's log-scale.
        seed: initializes the networks.
    """
    shape = _shape(event_shape)
    k = check_positive_int(num_couplings, "num_couplings")
    layers: list[Transform] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if len(shape) == 1:
            d = shape[0]
            for i in range(k):
                net = mlp_conditioner(d, 2 * d, hidden_features, num_hidden_layers)
                layers.append(AffineCoupling(alternating_mask(d, i % 2), net, max_log_scale))
        else:
            c, h, w = shape
            for i in range(k):
                net = conv_conditioner(c, 2 * c, hidden_features)
                layers.append(AffineCoupling(checkerboard_mask(h, w, i % 2), net, max_log_scale))
            layers.append(Squeeze(2))
            for i in range(k):
                net = conv_conditioner(4 * c, 8 * c, hidden_features)
                layers.append(AffineCoupling(channel_mask(4 * c, i % 2), net, max_log_scale))
            layers.append(Unsqueeze(2))
    return Compose(*layers)


def build_glow(
    event_shape: int | Sequence[int],
    *,
    num_steps: int = 4,
    hidden_features: int = 64,
    num_hidden_layers: int = 2,
    max_log_scale: float = 2.0,
    seed: int = 0,
) -> Compose:
    r"""Glow: steps of ActNorm, an LU 1x1 convolution and an affine coupling on a fixed half.

    .. math:: \text{step} = \text{coupling} \circ \text{conv}_{1\times1} \circ \text{actnorm}.

    The coupling always keeps the first half of the channels; the learned 1x1 convolution before it
    decides which mixtures of channels that half holds (it replaces RealNVP's alternating masks).

    - Vectors ``(D,)``: the "channels" are the ``D`` entries; MLP couplings. Needs ``D >= 2``.
    - Images ``(C, H, W)``: a squeeze to ``(4C, H/2, W/2)``, the steps with CNN couplings, and an
      unsqueeze back (one level of Glow's multi-scale architecture).

    Args:
        event_shape: ``(D,)`` (or ``D``) or ``(C, H, W)`` with even ``H`` and ``W``.
        num_steps: :math:`K`, the number of steps.
        hidden_features: MLP width, or CNN channels.
        num_hidden_layers: MLP depth (vectors only).
        max_log_scale: the soft clamp of every coupling's log-scale.
        seed: initializes the networks and the 1x1 convolutions.
    """
    shape = _shape(event_shape)
    k = check_positive_int(num_steps, "num_steps")
    generator = make_generator(seed)
    layers: list[Transform] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if len(shape) == 1:
            d = shape[0]
            if d < 2:
                raise ValueError(f"glow needs at least 2 features to couple, got event_shape {shape}")
            for _ in range(k):
                net = mlp_conditioner(d, 2 * d, hidden_features, num_hidden_layers)
                layers += [
                    ActNorm(d),
                    LUInvertibleConv1x1(d, generator=generator),
                    AffineCoupling(half_mask(d), net, max_log_scale),
                ]
        else:
            c = 4 * shape[0]
            layers.append(Squeeze(2))
            for _ in range(k):
                net = conv_conditioner(c, 2 * c, hidden_features)
                layers += [
                    ActNorm(c),
                    LUInvertibleConv1x1(c, generator=generator),
                    AffineCoupling(channel_mask(c), net, max_log_scale),
                ]
            layers.append(Unsqueeze(2))
    return Compose(*layers)
