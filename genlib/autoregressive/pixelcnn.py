r"""PixelCNN: the chain rule over the pixels of an image in raster order, with masked convolutions.

Number the :math:`D = H W` pixels of an image row by row, left to right (raster order). By the chain rule

.. math:: P(x) = \prod_{i=1}^{D} P(x_i \mid x_1, \dots, x_{i-1}),

and for binary pixels each factor is a Bernoulli, :math:`P(x_i = 1 \mid x_{<i}) = \sigma(\ell_i)`, with a
logit :math:`\ell_i` computed by a network. A PixelCNN (van den Oord et al., 2016) computes all
:math:`D` logits in one pass of convolutions whose kernels are **masked** so that no output sees a pixel
at or after its own position:

- mask **type A** (first layer) keeps the kernel entries strictly before the centre in raster order:
  the rows above the centre and, in the centre row, the entries to its left. Output :math:`i` never sees
  input :math:`i`;
- mask **type B** (later layers) also keeps the centre: a feature at :math:`i` may use the features at
  :math:`i`, which themselves only saw pixels before :math:`i`.

Stacking masked :math:`3 \times 3` layers grows the receptive field upward and sideways, but never into
a triangle above and to the right of the pixel: the **blind spot**, which the gated PixelCNN fixes with
separate vertical and horizontal stacks. Sampling cannot be parallel: pixel :math:`i` needs pixels
:math:`< i`, so an image costs :math:`D` passes of the network.

These masks are for one input channel (binary or grey images). With several colour channels, PixelCNN
also orders the channels of a pixel and masks between them; that is not done here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = ["pixelcnn_mask", "MaskedConv2d", "PixelCNN", "pixelcnn_log_likelihood", "sample_pixelcnn"]


def pixelcnn_mask(
    kernel_size: int,
    mask_type: str,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""The spatial mask of a PixelCNN convolution kernel, shape ``(kernel_size, kernel_size)``.

    With the centre at :math:`(c, c)`, :math:`c = \lfloor k/2 \rfloor`, entry :math:`(r, s)` is 1 if
    :math:`r < c`, or :math:`r = c` and :math:`s < c` (both types), or :math:`(r, s) = (c, c)` (type B
    only); all other entries are 0.

    Args:
        kernel_size: odd, ``>= 1``.
        mask_type: ``"A"`` (centre excluded: the first layer) or ``"B"`` (centre included: later layers).
        dtype, device: of the result.

    Returns:
        Zeros and ones, shape ``(k, k)``. Type A has :math:`(k^2 - 1)/2` ones, type B one more.
    """
    kernel_size = check_positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (the kernel needs a centre), got {kernel_size}")
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    centre = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size, dtype=dtype, device=device)
    mask[:centre] = 1  # every row above the centre
    mask[centre, :centre] = 1  # the centre row, left of the centre
    if mask_type == "B":
        mask[centre, centre] = 1
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded 2-D convolution whose kernel is multiplied by :func:`pixelcnn_mask` on every call.

    Masking the weight in ``forward`` (rather than once at initialisation) keeps the masked entries
    out of the computation whatever the optimiser does to them; their gradient is zero too.

    Args:
        in_channels, out_channels: as for :class:`torch.nn.Conv2d`.
        kernel_size: odd.
        mask_type: ``"A"`` or ``"B"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str) -> None:
        mask = pixelcnn_mask(kernel_size, mask_type)
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", mask[None, None])  # (1, 1, k, k), broadcast over channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    r"""A small PixelCNN for binary images ``(B, 1, H, W)``: the logits of :math:`P(x_i = 1 \mid x_{<i})`.

    One type-A masked convolution (``first_kernel``), ``num_layers`` type-B masked :math:`3 \times 3`
    convolutions with residual connections, and two :math:`1 \times 1` convolutions to one logit per
    pixel, ReLU in between.

    Args:
        channels: feature maps per layer.
        num_layers: number of type-B layers.
        first_kernel: odd kernel size of the type-A layer.
        seed: parameters initialised under ``torch.manual_seed(seed)`` in ``torch.random.fork_rng``.

    Shapes: :meth:`forward` maps float images ``(B, 1, H, W)`` of zeros and ones to logits
    ``(B, 1, H, W)``; the logit at pixel :math:`i` depends only on pixels before :math:`i` in raster order.
    """

    def __init__(
        self, *, channels: int = 32, num_layers: int = 4, first_kernel: int = 5, seed: int = 0
    ) -> None:
        super().__init__()
        check_positive_int(channels, "channels")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers must be an int >= 0, got {num_layers!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.first = MaskedConv2d(1, channels, first_kernel, "A")
            self.layers = nn.ModuleList(MaskedConv2d(channels, channels, 3, "B") for _ in range(num_layers))
            self.out = nn.Sequential(
                nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_tensor(x, "x", ndim=4, floating=True)
        if x.shape[1] != 1:
            raise ValueError(f"x must have one channel, shape (B, 1, H, W), got {tuple(x.shape)}")
        h = self.first(x)
        for layer in self.layers:
            h = h + layer(F.relu(h))  # residual: the centre of a type-B kernel keeps the path to h
        return self.out(h)


def pixelcnn_log_likelihood(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r"""The chain rule over pixels, :math:`\log P(x) = \sum_i \log P(x_i \mid x_{<i})`, one value per image.

    With :math:`P(x_i = 1 \mid x_{<i}) = \sigma(\ell_i)` each term is
    :math:`x_i \log\sigma(\ell_i) + (1 - x_i)\log(1 - \sigma(\ell_i))`.

    Args:
        model: maps images ``(B, 1, H, W)`` to logits of the same shape (a :class:`PixelCNN`).
        x: shape ``(B, 1, H, W)``, floating zeros and ones.

    Returns:
        Shape ``(B,)``: the log-likelihood of each image in nats. Computed from the logits by
        ``binary_cross_entropy_with_logits``, which is stable for large logits.
    """
    x = check_tensor(x, "x", ndim=4, floating=True)
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError("x must hold binary images: zeros and ones only")
    logits = model(x)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


@torch.no_grad()
def sample_pixelcnn(
    model: nn.Module,
    num_samples: int,
    height: int,
    width: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> torch.Tensor:
    r"""Draw binary images pixel by pixel in raster order: :math:`D = HW` passes of the network.

    Pixel :math:`i` is set to 1 when a uniform ``torch.rand((B,), generator=generator)`` falls below
    :math:`\sigma(\ell_i/\tau)`, with :math:`\ell_i` computed from the pixels drawn so far (the later
    pixels are still 0, and masked out anyway).

    Args:
        model: a :class:`PixelCNN` (or any causal model of the same shapes) on ``device``.
        num_samples: ``B``.
        height, width: the image size.
        temperature: :math:`\tau > 0`.
        generator: on ``device``.
        device: where the images are made (default: the CPU).
        progress: show a ``tqdm`` progress bar over the pixels.

    Returns:
        Shape ``(B, 1, H, W)``, ``torch.float32`` zeros and ones.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    height, width = check_positive_int(height, "height"), check_positive_int(width, "width")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    generator = check_generator(generator, device)
    was_training = model.training
    model.eval()
    x = torch.zeros(num_samples, 1, height, width, device=device)
    for i in tqdm(range(height * width), desc="sampling pixels", disable=not progress, leave=False):
        r, c = divmod(i, width)
        p_one = torch.sigmoid(model(x)[:, 0, r, c] / temperature)  # (B,)
        u = torch.rand(num_samples, generator=generator, device=device)
        x[:, 0, r, c] = (u < p_one).float()
    model.train(was_training)
    return x
