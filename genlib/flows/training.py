r"""Training a flow by maximum likelihood, and measuring its negative log-likelihood.

Maximum likelihood for a flow is plain gradient descent on the average negative log-density of
mini-batches, since :meth:`~genlib.flows.base.Flow.log_prob` is exact and differentiable:

.. math:: \mathcal L(\theta) = -\frac1B \sum_{i \in \text{batch}}
          \Big[\log \mathcal N\big(f_\theta(x^i); 0, I\big) + \log|\det J_{f_\theta}(x^i)|\Big] .

Minimizing it is minimizing the cross-entropy :math:`H(\hat P, P_\theta)` from the data to the
model, that is the KL divergence up to the data's entropy (chapter 00).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import trange

from genlib.flows.base import Flow, check_batch
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = ["TrainingHistory", "fit_flow", "mean_nll"]

#: Applied to every batch before the flow sees it, e.g. dequantization: ``(batch, generator) -> batch``.
Preprocess = Callable[[Tensor, torch.Generator | None], Tensor]


@dataclass
class TrainingHistory:
    """What :func:`~genlib.flows.training.fit_flow` measured: the loss of every step, the held-out NLL."""

    train_nll: list[float] = field(default_factory=list)  # mean NLL (nats per sample) of each batch
    valid_steps: list[int] = field(default_factory=list)  # steps after which valid_nll was measured
    valid_nll: list[float] = field(default_factory=list)  # mean NLL of valid_data at those steps


def _prepare(data: Tensor, preprocess: Preprocess | None, generator: torch.Generator | None) -> Tensor:
    return check_batch(
        preprocess(data, generator) if preprocess is not None else data, "a (preprocessed) batch"
    )


@torch.no_grad()
def mean_nll(
    flow: Flow,
    data: Tensor,
    *,
    batch_size: int = 1024,
    preprocess: Preprocess | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The average negative log-likelihood :math:`-\frac1N \sum_i \log P(x^i \mid \theta)` in nats.

    Evaluated in chunks of ``batch_size`` samples, without gradients, with the flow in eval mode.

    Args:
        flow: the model.
        data: shape ``(N, *event_shape)`` (before ``preprocess``), on the flow's device.
        batch_size: samples per chunk.
        preprocess: applied to each chunk with ``generator`` (e.g. dequantization; the result is
            then a one-sample estimate of the dequantized NLL).
        generator: for ``preprocess``.

    Returns:
        A 0-d tensor in the flow's dtype.
    """
    data = check_tensor(data, "data", min_size=1)
    batch_size = check_positive_int(batch_size, "batch_size")
    training = flow.training
    flow.eval()
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    for start in range(0, data.shape[0], batch_size):
        batch = _prepare(data[start : start + batch_size], preprocess, generator)
        total += -flow.log_prob(batch).double().sum()
    flow.train(training)
    return (total / data.shape[0]).to(flow.dtype)


def fit_flow(
    flow: Flow,
    data: Tensor,
    *,
    num_steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
    preprocess: Preprocess | None = None,
    valid_data: Tensor | None = None,
    eval_every: int = 100,
    max_grad_norm: float | None = 10.0,
    schedule: Literal["constant", "cosine"] = "cosine",
    progress: bool = True,
) -> TrainingHistory:
    r"""Fit ``flow`` to ``data`` by maximum likelihood with Adam on random mini-batches.

    Before the first step, one pass over up to 1024 samples initializes the data-dependent layers
    (:class:`~genlib.flows.glow.ActNorm`). Each step draws ``batch_size`` indices with replacement
    (``torch.randint`` with ``generator``), applies ``preprocess``, and takes one Adam step on the
    mean NLL, with the gradient norm clipped at ``max_grad_norm`` (``None``: no clipping). With
    ``schedule="cosine"`` the learning rate falls from ``lr`` to 0 along half a cosine over the
    ``num_steps`` steps (fewer steps needed for the same loss than a constant rate).

    Args:
        flow: the model, trained in place.
        data: shape ``(N, *event_shape)`` before ``preprocess``, on the flow's device.
        num_steps: number of gradient steps.
        batch_size: samples per step.
        lr: Adam's learning rate.
        generator: draws the batches (and is passed to ``preprocess``); on ``data``'s device.
        preprocess: ``(batch, generator) -> batch``, e.g. dequantization.
        valid_data: held-out data; its NLL is measured every ``eval_every`` steps and at the end.
        eval_every: steps between measurements on ``valid_data``.
        max_grad_norm: gradient clipping threshold.
        schedule: ``"cosine"`` or ``"constant"`` learning rate.
        progress: show a ``tqdm`` progress bar.

    Returns:
        A :class:`~genlib.flows.training.TrainingHistory`.
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a genlib.flows Flow, got {type(flow).__name__}")
    data = check_tensor(data, "data", min_size=1)
    num_steps = check_positive_int(num_steps, "num_steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    eval_every = check_positive_int(eval_every, "eval_every")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    check_generator(generator, data.device)
    if valid_data is not None:
        valid_data = check_tensor(valid_data, "valid_data", min_size=1)

    history = TrainingHistory()
    flow.train()
    with torch.no_grad():  # data-dependent initialization (ActNorm) on a large first batch
        flow.log_prob(_prepare(data[:1024], preprocess, generator))
    parameters = [p for p in flow.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=lr, foreach=True)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_steps) if schedule == "cosine" else None
    bar = trange(num_steps, desc="fit_flow", disable=not progress, leave=False)
    for step in bar:
        index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=data.device)
        loss = -flow.log_prob(_prepare(data[index], preprocess, generator)).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()} at step {step}; lower lr, or max_log_scale of the couplings"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        optimizer.step()
        if decay is not None:
            decay.step()
        history.train_nll.append(loss.item())
        last = step + 1 == num_steps
        if valid_data is not None and ((step + 1) % eval_every == 0 or last):
            nll = mean_nll(flow, valid_data, preprocess=preprocess, generator=generator).item()
            history.valid_steps.append(step + 1)
            history.valid_nll.append(nll)
            bar.set_postfix(train_nll=f"{loss.item():.3f}", valid_nll=f"{nll:.3f}")
    return history
