r"""Energy-based models: the Boltzmann distribution, Boltzmann machines, RBMs and a neural energy.

An energy function :math:`E(x \mid \theta)` gives every configuration :math:`x` a real number; low
energy means probable. The **Boltzmann distribution** at temperature :math:`T > 0` turns it into a
probability:

.. math::
    P(x \mid \theta) = \frac{\exp(-E(x \mid \theta) / T)}{Z(\theta)}, \qquad
    Z(\theta) = \sum_x \exp(-E(x \mid \theta) / T),

where :math:`Z` is the **partition function** (an integral for continuous :math:`x`). For :math:`D`
binary units the sum has :math:`2^D` terms, so it is computed here by enumeration only for small
:math:`D` (up to :data:`MAX_ENUMERATION_UNITS`), in chunks and in log space:
:math:`\log Z = \operatorname{logsumexp}_x(-E(x)/T)`.

The models, with binary units in :math:`\{0, 1\}`:

- **fully visible Boltzmann machine**: :math:`E(x) = -\tfrac12 x^\top W x - b^\top x` with :math:`W`
  symmetric and zero on the diagonal;
- **restricted Boltzmann machine (RBM)**, visible :math:`v \in \{0,1\}^D`, hidden
  :math:`h \in \{0,1\}^H`: :math:`E(v, h) = -v^\top W h - b^\top v - c^\top h` with ``weight`` :math:`W`
  of shape ``(D, H)``, ``visible_bias`` :math:`b` and ``hidden_bias`` :math:`c`;
- a **neural energy** :math:`E_\theta(x)` on :math:`\mathbb R^d`: a small MLP.

Training by maximum likelihood needs the gradient of the average log-likelihood,

.. math::
    \nabla_\theta \frac1N \sum_i \log P(x^i \mid \theta)
    = \mathbb E_{x \sim \hat P}\big[-\nabla_\theta E(x \mid \theta)\big]
      - \mathbb E_{x \sim P(\cdot \mid \theta)}\big[-\nabla_\theta E(x \mid \theta)\big],

the data expectation minus the model expectation. The ``*_exact_gradient`` functions compute it by
enumeration for tiny models; :mod:`genlib.ebm_training` estimates the model term with Markov chains
(:mod:`genlib.mcmc`).

Binary configurations are numbered as in :func:`binary_states`: unit 1 is the most significant bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from genlib.sampling import sample_categorical
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = [
    "MAX_ENUMERATION_UNITS",
    "binary_states",
    "state_index",
    "log_partition",
    "boltzmann_log_probs",
    "bm_energy",
    "bm_log_partition",
    "bm_log_prob",
    "bm_conditional_probs",
    "bm_exact_gradient",
    "random_bm",
    "rbm_energy",
    "rbm_free_energy",
    "rbm_hidden_free_energy",
    "rbm_hidden_probs",
    "rbm_visible_probs",
    "rbm_log_partition",
    "rbm_log_prob",
    "rbm_sample_exact",
    "rbm_gradient",
    "rbm_exact_gradient",
    "RBM",
    "NeuralEnergy",
    "grid_log_partition",
]

#: The largest number of binary units whose :math:`2^D` states are enumerated (16.7 million states).
MAX_ENUMERATION_UNITS = 24

#: States per chunk of an enumeration: bounds the memory to ``chunk_size * D`` numbers.
DEFAULT_CHUNK_SIZE = 2**16


# --------------------------------------------------------------------------- checks


def _check_positive_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number (int or float), got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return float(value)


def _check_enumerable(num_units: object, name: str = "num_units") -> int:
    num_units = check_positive_int(num_units, name)
    if num_units > MAX_ENUMERATION_UNITS:
        raise ValueError(
            f"{name} is {num_units}: enumerating its 2^{num_units} states is too expensive; exact "
            f"enumeration is for at most {MAX_ENUMERATION_UNITS} units (use MCMC for larger models)"
        )
    return num_units


def _check_binary(x: torch.Tensor, name: str) -> torch.Tensor:
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(
            f"{name} must hold binary values 0 and 1 only, got values like {x.unique()[:5].tolist()}"
        )
    return x


def _check_same_place(name: str, t: torch.Tensor, like: torch.Tensor, like_name: str) -> None:
    if t.device != like.device:
        raise ValueError(f"{name} is on {t.device} but {like_name} is on {like.device}")
    if t.dtype != like.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but {like_name} has {like.dtype}; use one dtype")


def _check_bm_params(weight: object, bias: object) -> tuple[torch.Tensor, torch.Tensor]:
    weight = check_tensor(weight, "weight", ndim=2, floating=True, finite=True)
    d = weight.shape[0]
    if weight.shape != (d, d) or d == 0:
        raise ValueError(
            f"weight must be a square (D, D) matrix with D >= 1, got shape {tuple(weight.shape)}"
        )
    bias = check_tensor(bias, "bias", ndim=1, floating=True, finite=True)
    if bias.shape != (d,):
        raise ValueError(f"bias must have shape ({d},), one entry per unit, got {tuple(bias.shape)}")
    _check_same_place("bias", bias, weight, "weight")
    scale = 1.0 + weight.abs().max().item()
    tol = 100 * torch.finfo(weight.dtype).eps * scale
    if (weight - weight.T).abs().max().item() > tol:
        raise ValueError("weight must be symmetric (W == W.T): the coupling of units j and k is one number")
    if weight.diagonal().abs().max().item() > tol:
        raise ValueError("weight must have a zero diagonal: a unit is not coupled to itself")
    return weight, bias


def _check_rbm_params(
    weight: object, visible_bias: object, hidden_bias: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    weight = check_tensor(weight, "weight", ndim=2, floating=True, finite=True)
    d, h = weight.shape
    if d == 0 or h == 0:
        raise ValueError(f"weight must have shape (D, H) with D, H >= 1, got {tuple(weight.shape)}")
    visible_bias = check_tensor(visible_bias, "visible_bias", ndim=1, floating=True, finite=True)
    hidden_bias = check_tensor(hidden_bias, "hidden_bias", ndim=1, floating=True, finite=True)
    if visible_bias.shape != (d,):
        raise ValueError(
            f"visible_bias must have shape ({d},) for weight {(d, h)}, got {tuple(visible_bias.shape)}"
        )
    if hidden_bias.shape != (h,):
        raise ValueError(
            f"hidden_bias must have shape ({h},) for weight {(d, h)}, got {tuple(hidden_bias.shape)}"
        )
    _check_same_place("visible_bias", visible_bias, weight, "weight")
    _check_same_place("hidden_bias", hidden_bias, weight, "weight")
    return weight, visible_bias, hidden_bias


def _check_states(
    x: object, name: str, num_units: int, like: torch.Tensor, *, binary: bool = True
) -> torch.Tensor:
    x = check_tensor(x, name, floating=True)
    if x.dim() == 0 or x.shape[-1] != num_units:
        raise ValueError(f"{name} must have shape (..., {num_units}), got {tuple(x.shape)}")
    _check_same_place(name, x, like, "weight")
    return _check_binary(x, name) if binary else x


# --------------------------------------------------------------------------- enumeration


def binary_states(
    num_units: int,
    *,
    start: int = 0,
    stop: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""The binary configurations number ``start .. stop-1`` of :math:`\{0,1\}^D`, one per row.

    Configuration :math:`k` holds the bits of :math:`k`, unit 1 the most significant:
    :math:`x_j = \lfloor k / 2^{D-j} \rfloor \bmod 2`. All of them: ``binary_states(D)``, shape
    ``(2**D, D)``.

    Args:
        num_units: :math:`D`, between 1 and :data:`MAX_ENUMERATION_UNITS`.
        start, stop: the range of configuration numbers (default: all :math:`2^D`).
        dtype, device: of the result.

    Returns:
        Shape ``(stop - start, D)``, values 0 and 1.
    """
    num_units = _check_enumerable(num_units)
    total = 2**num_units
    stop = total if stop is None else stop
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start <= stop <= total):
        raise ValueError(
            f"start and stop must satisfy 0 <= start <= stop <= 2**{num_units}, got {start}, {stop}"
        )
    index = torch.arange(start, stop, device=device)
    shifts = torch.arange(num_units - 1, -1, -1, device=device)
    return ((index[:, None] >> shifts) & 1).to(dtype)


def state_index(x: torch.Tensor) -> torch.Tensor:
    r"""The number :math:`k = \sum_j x_j 2^{D-j}` of each binary configuration: the inverse of
    :func:`binary_states`.

    Args:
        x: shape ``(..., D)``, values 0 and 1 (any dtype), :math:`D \le` :data:`MAX_ENUMERATION_UNITS`.

    Returns:
        ``torch.long``, shape ``(...)``, on the device of ``x``.
    """
    x = check_tensor(x, "x")
    if x.dim() == 0:
        raise ValueError("x must have shape (..., D), got a scalar")
    num_units = _check_enumerable(x.shape[-1], "x.shape[-1]")
    _check_binary(x, "x")
    powers = 2 ** torch.arange(num_units - 1, -1, -1, device=x.device)
    return (x.long() * powers).sum(dim=-1)


def _chunks(
    num_units: int, chunk_size: int, dtype: torch.dtype, device: torch.device | str | None
) -> Iterator[torch.Tensor]:
    total = 2**num_units
    for start in range(0, total, chunk_size):
        yield binary_states(
            num_units, start=start, stop=min(start + chunk_size, total), dtype=dtype, device=device
        )


def _energies_of(energy: Callable[[torch.Tensor], torch.Tensor], states: torch.Tensor) -> torch.Tensor:
    values = energy(states)
    if not isinstance(values, torch.Tensor) or values.shape != states.shape[:1]:
        got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"energy must map states of shape (M, D) to energies of shape (M,), got {got}")
    if bool(torch.isnan(values).any()) or bool((values == -math.inf).any()):
        raise ValueError("energy returned NaN or -inf: the Boltzmann distribution is not defined")
    return values


def log_partition(
    energy: Callable[[torch.Tensor], torch.Tensor],
    num_units: int,
    *,
    temperature: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    r"""The exact :math:`\log Z = \log \sum_{x \in \{0,1\}^D} \exp(-E(x)/T)` by enumeration.

    The :math:`2^D` states are visited ``chunk_size`` at a time; each chunk is reduced with
    ``logsumexp`` and the chunks' results are combined with ``logsumexp`` again, so neither an
    overflow of :math:`\exp` nor a ``(2^D, D)`` table can happen. Time :math:`O(2^D)` energy
    evaluations; memory :math:`O(\text{chunk\_size} \cdot D)`.

    Args:
        energy: maps states of shape ``(M, D)`` (dtype ``dtype``, on ``device``) to energies ``(M,)``;
            ``+inf`` is allowed (a state of probability zero).
        num_units: :math:`D \le` :data:`MAX_ENUMERATION_UNITS`.
        temperature: :math:`T > 0`.
        dtype, device: of the states handed to ``energy``.
        chunk_size: states per chunk.

    Returns:
        A 0-d tensor in the dtype of the energies.
    """
    if not callable(energy):
        raise TypeError(f"energy must be a callable (M, D) -> (M,), got {type(energy).__name__}")
    num_units = _check_enumerable(num_units)
    temperature = _check_positive_float(temperature, "temperature")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    parts = [
        torch.logsumexp(-_energies_of(energy, states) / temperature, dim=0)
        for states in _chunks(num_units, chunk_size, dtype, device)
    ]
    return torch.logsumexp(torch.stack(parts), dim=0)


def boltzmann_log_probs(
    energy: Callable[[torch.Tensor], torch.Tensor],
    num_units: int,
    *,
    temperature: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""The exact :math:`\log P(x) = -E(x)/T - \log Z` of all :math:`2^D` states, in the order of
    :func:`binary_states`.

    Holds all :math:`2^D` states at once: meant for :math:`D` up to about 20 (a million states).
    Arguments as in :func:`log_partition`. Returns shape ``(2**D,)``; ``.exp()`` sums to 1.
    """
    if not callable(energy):
        raise TypeError(f"energy must be a callable (M, D) -> (M,), got {type(energy).__name__}")
    num_units = _check_enumerable(num_units)
    temperature = _check_positive_float(temperature, "temperature")
    logits = -_energies_of(energy, binary_states(num_units, dtype=dtype, device=device)) / temperature
    return logits - torch.logsumexp(logits, dim=0)


# --------------------------------------------------------------------------- fully visible BM


def bm_energy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    r"""The energy of a fully visible Boltzmann machine, :math:`E(x) = -\tfrac12 x^\top W x - b^\top x`.

    With :math:`W` symmetric and zero on the diagonal, :math:`\tfrac12 x^\top W x = \sum_{j<k}
    W_{jk} x_j x_k`: every pair of units that is on together adds its coupling once.

    Args:
        x: shape ``(..., D)``, binary (0/1), floating, the dtype and device of ``weight``.
        weight: :math:`W`, shape ``(D, D)``, symmetric, zero diagonal.
        bias: :math:`b`, shape ``(D,)``.

    Returns:
        Shape ``(...)``.
    """
    weight, bias = _check_bm_params(weight, bias)
    x = _check_states(x, "x", weight.shape[0], weight)
    return -0.5 * ((x @ weight) * x).sum(dim=-1) - x @ bias


def bm_log_partition(
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    r"""The exact :math:`\log Z` of a fully visible Boltzmann machine at temperature :math:`T`, by
    enumerating its :math:`2^D` states in chunks (:func:`log_partition`).

    Args:
        weight, bias: as in :func:`bm_energy`; :math:`D \le` :data:`MAX_ENUMERATION_UNITS`.
        temperature: :math:`T > 0`.
        chunk_size: states per chunk.

    Returns:
        A 0-d tensor, dtype and device of ``weight``.
    """
    weight, bias = _check_bm_params(weight, bias)
    _check_enumerable(weight.shape[0], "the number of units D")

    def energy(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x @ weight) * x).sum(dim=-1) - x @ bias

    return log_partition(
        energy,
        weight.shape[0],
        temperature=temperature,
        dtype=weight.dtype,
        device=weight.device,
        chunk_size=chunk_size,
    )


def bm_log_prob(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    r""":math:`\log P(x) = -E(x)/T - \log Z` for a fully visible Boltzmann machine (exact, by
    enumeration). Shapes as in :func:`bm_energy`; returns shape ``(...)``."""
    log_z = bm_log_partition(weight, bias, temperature=temperature)
    return -bm_energy(x, weight, bias) / temperature - log_z


def bm_conditional_probs(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    r"""For every unit :math:`j`, the conditional
    :math:`P(x_j = 1 \mid x_{-j}) = \sigma\big((\sum_k W_{jk} x_k + b_j)/T\big)`.

    The two states that differ only in unit :math:`j` have energies differing by
    :math:`\Delta E_j = -(\sum_k W_{jk} x_k + b_j)`, so the conditional is a logistic function of it
    (:math:`W_{jj} = 0`, so :math:`x_j` itself does not enter).

    Args:
        x: shape ``(..., D)``, binary. weight, bias: as in :func:`bm_energy`.

    Returns:
        Shape ``(..., D)``; entry :math:`j` is the conditional of unit :math:`j` given the others in ``x``.
    """
    weight, bias = _check_bm_params(weight, bias)
    x = _check_states(x, "x", weight.shape[0], weight)
    temperature = _check_positive_float(temperature, "temperature")
    return torch.sigmoid((x @ weight + bias) / temperature)


def bm_exact_gradient(
    data: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The exact gradient of the average log-likelihood of a fully visible BM (at :math:`T = 1`).

    .. math::
        \frac{\partial}{\partial W_{jk}} \frac1N \sum_i \log P(x^i)
        = \langle x_j x_k \rangle_{\text{data}} - \langle x_j x_k \rangle_{\text{model}}, \qquad
        \frac{\partial}{\partial b_j} \cdots
        = \langle x_j \rangle_{\text{data}} - \langle x_j \rangle_{\text{model}},

    for :math:`j \ne k`, where :math:`W_{jk} = W_{kj}` is one parameter (the diagonal of the
    returned matrix is zero). The model expectations are sums over all :math:`2^D` states weighted
    by :math:`P(x)`, accumulated chunk by chunk.

    Args:
        data: :math:`x^1, \dots, x^N`, shape ``(N, D)``, binary, dtype and device of ``weight``.
        weight, bias: as in :func:`bm_energy`.

    Returns:
        ``(grad_weight, grad_bias)``, shapes ``(D, D)`` (symmetric, zero diagonal) and ``(D,)``.
    """
    weight, bias = _check_bm_params(weight, bias)
    d = weight.shape[0]
    data = _check_states(data, "data", d, weight)
    if data.dim() != 2 or data.shape[0] == 0:
        raise ValueError(f"data must have shape (N, {d}) with N >= 1, got {tuple(data.shape)}")
    log_z = bm_log_partition(weight, bias, chunk_size=chunk_size)
    second = torch.zeros_like(weight)
    first = torch.zeros_like(bias)
    for states in _chunks(d, chunk_size, weight.dtype, weight.device):
        p = torch.exp(-bm_energy(states, weight, bias) - log_z)  # (M,)
        second += (states * p[:, None]).T @ states
        first += p @ states
    n = data.shape[0]
    grad_weight = data.T @ data / n - second
    grad_weight.fill_diagonal_(0.0)
    return grad_weight, data.mean(dim=0) - first


def random_bm(
    num_units: int,
    *,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A random fully visible BM: couplings and biases :math:`\sim \mathcal N(0, \text{scale}^2)`,
    :math:`W` made symmetric with a zero diagonal.

    Draws ``torch.randn((D, D))`` then ``torch.randn((D,))`` from ``generator`` (on ``device``).

    Returns:
        ``(weight, bias)``, shapes ``(D, D)`` and ``(D,)``.
    """
    num_units = check_positive_int(num_units, "num_units")
    scale = _check_positive_float(scale, "scale")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    generator = check_generator(generator, dev)
    raw = torch.randn((num_units, num_units), generator=generator, dtype=dtype, device=dev)
    upper = torch.triu(raw, diagonal=1)
    weight = scale * (upper + upper.T)
    bias = scale * torch.randn((num_units,), generator=generator, dtype=dtype, device=dev)
    return weight, bias


# --------------------------------------------------------------------------- RBM


def rbm_energy(
    v: torch.Tensor,
    h: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
) -> torch.Tensor:
    r"""The joint energy :math:`E(v, h) = -v^\top W h - b^\top v - c^\top h` of an RBM.

    Args:
        v: shape ``(..., D)``, binary. h: shape ``(..., H)``, binary (batch shapes broadcast).
        weight: :math:`W`, shape ``(D, H)``.
        visible_bias: :math:`b`, ``(D,)``. hidden_bias: :math:`c`, ``(H,)``.

    Returns:
        The broadcast batch shape of ``v`` and ``h``.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    v = _check_states(v, "v", weight.shape[0], weight)
    h = _check_states(h, "h", weight.shape[1], weight)
    return -((v @ weight) * h).sum(dim=-1) - v @ visible_bias - h @ hidden_bias


def rbm_free_energy(
    v: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor, hidden_bias: torch.Tensor
) -> torch.Tensor:
    r"""The free energy of the visible units, :math:`F(v) = -\log \sum_h e^{-E(v, h)}`.

    The sum over :math:`2^H` hidden states factorises, one hidden unit at a time:

    .. math::
        \sum_h e^{v^\top W h + b^\top v + c^\top h}
        = e^{b^\top v} \prod_{k=1}^H \big(1 + e^{c_k + (v^\top W)_k}\big),
        \qquad F(v) = -b^\top v - \sum_{k=1}^H \operatorname{softplus}\big(c_k + (v^\top W)_k\big),

    so :math:`P(v) = e^{-F(v)} / Z`. ``softplus`` (:math:`\log(1 + e^a)`) is computed stably.

    Args:
        v: shape ``(..., D)``; binary in the model, but any real values are accepted (the formula
            is the same), which the book uses to plot it. weight, biases: as in :func:`rbm_energy`.

    Returns:
        Shape ``(...)``.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    v = _check_states(v, "v", weight.shape[0], weight, binary=False)
    return -v @ visible_bias - F.softplus(v @ weight + hidden_bias).sum(dim=-1)


def rbm_hidden_free_energy(
    h: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor, hidden_bias: torch.Tensor
) -> torch.Tensor:
    r"""The free energy of the hidden units, summing out the visible ones:
    :math:`F(h) = -c^\top h - \sum_{j=1}^D \operatorname{softplus}\big(b_j + (W h)_j\big)`.

    Args:
        h: shape ``(..., H)``. weight, biases: as in :func:`rbm_energy`.

    Returns:
        Shape ``(...)``.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    h = _check_states(h, "h", weight.shape[1], weight, binary=False)
    return -h @ hidden_bias - F.softplus(h @ weight.T + visible_bias).sum(dim=-1)


def rbm_hidden_probs(v: torch.Tensor, weight: torch.Tensor, hidden_bias: torch.Tensor) -> torch.Tensor:
    r""":math:`P(h_k = 1 \mid v) = \sigma\big(c_k + \sum_j v_j W_{jk}\big)` for every hidden unit.

    Given :math:`v`, the hidden units are independent: no edges join two of them.

    Args:
        v: shape ``(..., D)``, floating (binary in the model). weight: ``(D, H)``. hidden_bias: ``(H,)``.

    Returns:
        Shape ``(..., H)``, dtype and device of ``weight``.
    """
    weight = check_tensor(weight, "weight", ndim=2, floating=True, finite=True)
    hidden_bias = check_tensor(hidden_bias, "hidden_bias", ndim=1, floating=True, finite=True)
    if hidden_bias.shape != weight.shape[1:]:
        raise ValueError(f"hidden_bias must have shape ({weight.shape[1]},), got {tuple(hidden_bias.shape)}")
    _check_same_place("hidden_bias", hidden_bias, weight, "weight")
    v = _check_states(v, "v", weight.shape[0], weight, binary=False)
    return torch.sigmoid(v @ weight + hidden_bias)


def rbm_visible_probs(h: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor) -> torch.Tensor:
    r""":math:`P(v_j = 1 \mid h) = \sigma\big(b_j + \sum_k W_{jk} h_k\big)` for every visible unit.

    Args:
        h: shape ``(..., H)``, floating. weight: ``(D, H)``. visible_bias: ``(D,)``.

    Returns:
        Shape ``(..., D)``, dtype and device of ``weight``.
    """
    weight = check_tensor(weight, "weight", ndim=2, floating=True, finite=True)
    visible_bias = check_tensor(visible_bias, "visible_bias", ndim=1, floating=True, finite=True)
    if visible_bias.shape != weight.shape[:1]:
        raise ValueError(
            f"visible_bias must have shape ({weight.shape[0]},), got {tuple(visible_bias.shape)}"
        )
    _check_same_place("visible_bias", visible_bias, weight, "weight")
    h = _check_states(h, "h", weight.shape[1], weight, binary=False)
    return torch.sigmoid(h @ weight.T + visible_bias)


def rbm_log_partition(
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    r"""The exact :math:`\log Z` of an RBM, summing out one layer in closed form and enumerating the
    other.

    :math:`Z = \sum_v e^{-F(v)} = \sum_h e^{-F(h)}`. The smaller layer is enumerated
    (:math:`2^{\min(D, H)}` terms), the other is summed out by the softplus formula of
    :func:`rbm_free_energy` / :func:`rbm_hidden_free_energy`. An RBM with 784 visible and 20 hidden
    units thus costs :math:`2^{20}` free energies, not :math:`2^{804}` joint states.

    Returns:
        A 0-d tensor, dtype and device of ``weight``.

    Raises:
        ValueError: if both layers have more than :data:`MAX_ENUMERATION_UNITS` units.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    d, h = weight.shape
    if min(d, h) > MAX_ENUMERATION_UNITS:
        raise ValueError(
            f"both layers are too large to enumerate (D={d}, H={h}); exact log Z needs one layer of at "
            f"most {MAX_ENUMERATION_UNITS} units"
        )
    if h <= d:

        def hidden_energy(states: torch.Tensor) -> torch.Tensor:
            return -states @ hidden_bias - F.softplus(states @ weight.T + visible_bias).sum(dim=-1)

        return log_partition(
            hidden_energy, h, dtype=weight.dtype, device=weight.device, chunk_size=chunk_size
        )

    def visible_energy(states: torch.Tensor) -> torch.Tensor:
        return -states @ visible_bias - F.softplus(states @ weight + hidden_bias).sum(dim=-1)

    return log_partition(visible_energy, d, dtype=weight.dtype, device=weight.device, chunk_size=chunk_size)


def rbm_log_prob(
    v: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    log_z: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The exact marginal :math:`\log P(v) = -F(v) - \log Z` of an RBM.

    Args:
        v: shape ``(..., D)``, binary. weight, biases: as in :func:`rbm_energy`.
        log_z: :math:`\log Z` if already known (it depends only on the parameters); computed with
            :func:`rbm_log_partition` otherwise.

    Returns:
        Shape ``(...)``.
    """
    if log_z is None:
        log_z = rbm_log_partition(weight, visible_bias, hidden_bias)
    v = _check_binary(check_tensor(v, "v", floating=True), "v")
    return -rbm_free_energy(v, weight, visible_bias, hidden_bias) - log_z


def rbm_sample_exact(
    num_samples: int,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact samples :math:`(v, h) \sim P(v, h)` of an RBM with a small hidden layer, no Markov chain.

    Ancestral sampling: :math:`h` from its exact marginal :math:`P(h) = e^{-F(h)}/Z` over all
    :math:`2^H` hidden states (:func:`rbm_hidden_free_energy`, then
    :func:`genlib.sampling.sample_categorical`), then :math:`v \sim P(v \mid h)` by thresholding
    uniforms. The reference against which the book checks what Gibbs chains produce.

    Randomness, in order: the categorical draw of the hidden states, then
    ``torch.rand((num_samples, D), generator=generator, dtype=weight.dtype)``.

    Args:
        num_samples: how many pairs.
        weight, visible_bias, hidden_bias: as in :func:`rbm_energy`, with
            :math:`H \le` :data:`MAX_ENUMERATION_UNITS` (about 20 keeps it fast: a million states).

    Returns:
        ``(v, h)``, of shapes ``(num_samples, D)`` and ``(num_samples, H)``, 0/1 in the dtype of ``weight``.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    num_samples = check_positive_int(num_samples, "num_samples")
    d, h = weight.shape
    _check_enumerable(h, "the number of hidden units H")
    generator = check_generator(generator, weight.device)
    states = binary_states(h, dtype=weight.dtype, device=weight.device)  # (2^H, H)
    logits = -rbm_hidden_free_energy(states, weight, visible_bias, hidden_bias)
    probs = torch.softmax(logits.double(), dim=0)
    hidden = states[sample_categorical(probs, num_samples, generator=generator)]  # (S, H)
    p_v = torch.sigmoid(hidden @ weight.T + visible_bias)
    u = torch.rand((num_samples, d), generator=generator, dtype=weight.dtype, device=weight.device)
    return (u < p_v).to(weight.dtype), hidden


def rbm_gradient(
    v_data: torch.Tensor,
    v_model: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Positive minus negative statistics: the log-likelihood gradient estimated from samples.

    With :math:`\hat h(v) = P(h = 1 \mid v)` (the hidden units summed out, not sampled):

    .. math::
        \Delta W = \langle v \hat h(v)^\top \rangle_{\text{data}}
                 - \langle v \hat h(v)^\top \rangle_{\text{model}},\quad
        \Delta b = \langle v \rangle_{\text{data}} - \langle v \rangle_{\text{model}},\quad
        \Delta c = \langle \hat h(v) \rangle_{\text{data}} - \langle \hat h(v) \rangle_{\text{model}},

    each :math:`\langle\cdot\rangle` an average over the rows of ``v_data`` or of ``v_model``. If
    ``v_model`` were exact samples of the model this would be an unbiased estimate of
    :func:`rbm_exact_gradient`; contrastive divergence feeds it short Markov chains instead.

    Args:
        v_data: shape ``(N, D)``, the data batch. v_model: shape ``(M, D)``, the negative samples.
        weight, biases: as in :func:`rbm_energy`.

    Returns:
        ``(grad_weight, grad_visible_bias, grad_hidden_bias)``, shapes ``(D, H)``, ``(D,)``, ``(H,)``;
        the ascent direction of the average log-likelihood.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    d = weight.shape[0]
    for name, v in (("v_data", v_data), ("v_model", v_model)):
        check_tensor(v, name, ndim=2, floating=True, min_size=1)
        _check_states(v, name, d, weight, binary=False)
    h_data = torch.sigmoid(v_data @ weight + hidden_bias)  # (N, H)
    h_model = torch.sigmoid(v_model @ weight + hidden_bias)  # (M, H)
    grad_weight = v_data.T @ h_data / v_data.shape[0] - v_model.T @ h_model / v_model.shape[0]
    return (
        grad_weight,
        v_data.mean(dim=0) - v_model.mean(dim=0),
        h_data.mean(dim=0) - h_model.mean(dim=0),
    )


def rbm_exact_gradient(
    data: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The exact gradient of the average log-likelihood :math:`\frac1N\sum_i \log P(v^i)` of an RBM.

    The data term is as in :func:`rbm_gradient`. The model term enumerates the smaller layer:
    over visible states, :math:`\sum_v P(v)\, v\, \hat h(v)^\top`; over hidden states,
    :math:`\sum_h P(h)\, \hat v(h)\, h^\top` with :math:`\hat v(h) = P(v = 1 \mid h)` and
    :math:`P(h) = e^{-F(h)}/Z`. Both equal :math:`\mathbb E_{P(v,h)}[v h^\top]`.

    Returns:
        ``(grad_weight, grad_visible_bias, grad_hidden_bias)`` as in :func:`rbm_gradient`.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    d, h = weight.shape
    data = check_tensor(data, "data", ndim=2, floating=True, min_size=1)
    _check_states(data, "data", d, weight)
    log_z = rbm_log_partition(weight, visible_bias, hidden_bias, chunk_size=chunk_size)
    model_w = torch.zeros_like(weight)
    model_b = torch.zeros_like(visible_bias)
    model_c = torch.zeros_like(hidden_bias)
    if h <= d:
        for hs in _chunks(h, chunk_size, weight.dtype, weight.device):
            p = torch.exp(-rbm_hidden_free_energy(hs, weight, visible_bias, hidden_bias) - log_z)  # (M,)
            v_mean = torch.sigmoid(hs @ weight.T + visible_bias)  # (M, D)
            model_w += (v_mean * p[:, None]).T @ hs
            model_b += p @ v_mean
            model_c += p @ hs
    else:
        for vs in _chunks(d, chunk_size, weight.dtype, weight.device):
            p = torch.exp(-rbm_free_energy(vs, weight, visible_bias, hidden_bias) - log_z)  # (M,)
            h_mean = torch.sigmoid(vs @ weight + hidden_bias)  # (M, H)
            model_w += (vs * p[:, None]).T @ h_mean
            model_b += p @ vs
            model_c += p @ h_mean
    h_data = torch.sigmoid(data @ weight + hidden_bias)
    return (
        data.T @ h_data / data.shape[0] - model_w,
        data.mean(dim=0) - model_b,
        h_data.mean(dim=0) - model_c,
    )


class RBM(nn.Module):
    r"""A restricted Boltzmann machine with ``num_visible`` :math:`D` and ``num_hidden`` :math:`H`
    binary units: parameters ``weight`` ``(D, H)``, ``visible_bias`` ``(D,)``, ``hidden_bias`` ``(H,)``.

    A holder of the parameters whose methods call the functions of this module; the weights start
    at :math:`\mathcal N(0, \text{init\_std}^2)` drawn from ``generator``, the biases at zero.
    """

    def __init__(
        self,
        num_visible: int,
        num_hidden: int,
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        num_visible = check_positive_int(num_visible, "num_visible")
        num_hidden = check_positive_int(num_hidden, "num_hidden")
        init_std = _check_positive_float(init_std, "init_std")
        dev = torch.device(device) if device is not None else torch.device("cpu")
        generator = check_generator(generator, dev)
        w = init_std * torch.randn((num_visible, num_hidden), generator=generator, dtype=dtype, device=dev)
        self.weight = nn.Parameter(w)
        self.visible_bias = nn.Parameter(torch.zeros(num_visible, dtype=dtype, device=dev))
        self.hidden_bias = nn.Parameter(torch.zeros(num_hidden, dtype=dtype, device=dev))

    @property
    def params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(weight, visible_bias, hidden_bias)``, detached: the arguments of the module's functions."""
        return self.weight.detach(), self.visible_bias.detach(), self.hidden_bias.detach()

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """:func:`rbm_free_energy` of ``v`` ``(..., D)`` -> ``(...)``."""
        return rbm_free_energy(v, self.weight, self.visible_bias, self.hidden_bias)

    def log_partition(self) -> torch.Tensor:
        """:func:`rbm_log_partition`: exact, for a small layer."""
        with torch.no_grad():
            return rbm_log_partition(*self.params)

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """:func:`rbm_log_prob`: the exact marginal log-probability of ``v`` ``(..., D)``."""
        with torch.no_grad():
            return rbm_log_prob(v, *self.params)

    def init_visible_bias(self, data: torch.Tensor, *, eps: float = 1e-3) -> None:
        r"""Set :math:`b_j = \operatorname{logit}(\bar v_j)`, the visible biases that alone would give
        every unit its frequency in ``data`` ``(N, D)`` (clamped to ``[eps, 1 - eps]``)."""
        data = check_tensor(data, "data", ndim=2, floating=True, min_size=1)
        with torch.no_grad():
            self.visible_bias.copy_(torch.logit(data.mean(dim=0).clamp(eps, 1 - eps)).to(self.visible_bias))


# --------------------------------------------------------------------------- neural energy


class NeuralEnergy(nn.Module):
    r"""A neural energy on :math:`\mathbb R^d`,
    :math:`E_\theta(x) = f_\theta(x) + \lVert x \rVert^2 / (2 s^2)`.

    :math:`f_\theta` is an MLP ``d -> hidden -> ... -> 1`` with SiLU activations (smooth, so the
    Langevin sampler sees a smooth gradient). The fixed quadratic term, a Gaussian of standard
    deviation :math:`s` = ``prior_std``, makes :math:`e^{-E}` integrable whatever :math:`f_\theta`
    does at infinity (an MLP with SiLU grows at most linearly), so :math:`Z` is finite.

    Weights are drawn from ``generator`` like PyTorch's default initialisation:
    :math:`\mathcal U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})`.

    Call it on ``x`` of shape ``(N, d)``; returns energies ``(N,)``.
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 64,
        *,
        num_layers: int = 3,
        prior_std: float = 4.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        hidden = check_positive_int(hidden, "hidden")
        num_layers = check_positive_int(num_layers, "num_layers")
        self.prior_std = _check_positive_float(prior_std, "prior_std")
        dev = torch.device(device) if device is not None else torch.device("cpu")
        generator = check_generator(generator, dev)
        sizes = [self.dim] + [hidden] * (num_layers - 1) + [1]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            linear = nn.Linear(fan_in, fan_out, dtype=dtype, device=dev)
            bound = 1.0 / math.sqrt(fan_in)
            with torch.no_grad():
                for p in (linear.weight, linear.bias):
                    p.copy_(
                        (2 * torch.rand(p.shape, generator=generator, dtype=dtype, device=dev) - 1) * bound
                    )
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Energies ``(N,)`` of ``x`` ``(N, d)``."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (N, {self.dim}), got {got}")
        return self.net(x).squeeze(-1) + x.square().sum(dim=-1) / (2 * self.prior_std**2)


def grid_log_partition(
    energy: Callable[[torch.Tensor], torch.Tensor],
    low: float,
    high: float,
    *,
    num_points: int = 400,
    dim: int = 2,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    r""":math:`\log Z = \log \int e^{-E(x)} dx` over the box :math:`[\text{low}, \text{high}]^d` by the
    midpoint rule on a grid, in log space.

    :math:`\log Z \approx \operatorname{logsumexp}_g(-E(x_g)) + d \log \Delta` over the
    ``num_points**dim`` cell centres :math:`x_g` of cells of side :math:`\Delta`. Exact up to the
    quadrature error (small for a smooth energy and a fine grid) and the mass outside the box.
    Feasible for :math:`d \le 3`; this is how the book normalises a neural energy in 2-D.

    Args:
        energy: maps ``(M, dim)`` points (``dtype``, ``device``) to ``(M,)`` energies.
        low, high: the box, ``low < high``.
        num_points: grid points per axis.
        dim: 1, 2 or 3.

    Returns:
        A 0-d tensor.
    """
    if not callable(energy):
        raise TypeError(f"energy must be a callable (M, d) -> (M,), got {type(energy).__name__}")
    num_points = check_positive_int(num_points, "num_points")
    dim = check_positive_int(dim, "dim")
    if dim > 3:
        raise ValueError(f"dim must be 1, 2 or 3 (a grid has num_points**dim points), got {dim}")
    if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
        raise ValueError(f"low and high must be numbers with low < high, got {low!r} and {high!r}")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    delta = (high - low) / num_points
    axis = low + delta * (torch.arange(num_points, dtype=dtype, device=device) + 0.5)
    total = num_points**dim
    parts = []
    for start in range(0, total, chunk_size):
        index = torch.arange(start, min(start + chunk_size, total), device=device)
        coords = [(index // num_points ** (dim - 1 - a)) % num_points for a in range(dim)]
        points = torch.stack([axis[c] for c in coords], dim=-1)  # (M, dim)
        with torch.no_grad():
            parts.append(torch.logsumexp(-_energies_of(energy, points), dim=0))
    return torch.logsumexp(torch.stack(parts), dim=0) + dim * math.log(delta)
