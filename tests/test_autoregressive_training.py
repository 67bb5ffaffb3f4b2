"""genlib.autoregressive.training: the chain-rule log-likelihood against torch's cross-entropy, the
sampling loop against chi-square tests (with a temperature, with a power check), scheduled sampling's
coin flips against a binomial test, the schedules against their formulas, and a trained network
against the bigram model on text from a known source."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

from genlib.autoregressive.rnn import CharRNN
from genlib.autoregressive.training import (
    SCHEDULES,
    evaluate_nll,
    fit,
    mean_nll,
    perplexity,
    sample_sequences,
    scheduled_sampling_inputs,
    scheduled_sampling_loss,
    sequence_log_likelihood,
    teacher_forcing_loss,
    teacher_probability,
    token_log_probs,
)
from genlib.autoregressive.transformer import CausalTransformer
from genlib.data.text import block_entropy, random_markov_source, sample_text
from genlib.device import make_generator
from genlib.ngram import fit_ngram

# --------------------------------------------------------------------------- log-likelihood


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_likelihood_against_cross_entropy(dtype, device):
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(4, 9, 6, generator=g, dtype=dtype)).to(device)
    x = torch.randint(0, 6, (4, 9), generator=g).to(device)
    per_token = -F.cross_entropy(logits.transpose(1, 2), x, reduction="none")  # (B, T)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(token_log_probs(logits, x), per_token, rtol=tol, atol=tol)
    torch.testing.assert_close(sequence_log_likelihood(logits, x), per_token.sum(1), rtol=tol, atol=tol)
    torch.testing.assert_close(
        mean_nll(logits, x), F.cross_entropy(logits.transpose(1, 2), x), rtol=tol, atol=tol
    )
    assert math.isclose(perplexity(per_token).item(), math.exp(-per_token.mean().item()), rel_tol=1e-5)


def test_log_likelihood_is_stable_and_shift_invariant():
    x = torch.tensor([[0, 2]])
    logits = torch.tensor([[[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]]])
    ll = sequence_log_likelihood(logits, x)
    assert math.isclose(ll.item(), -math.log(3), rel_tol=1e-6)  # log 1 + log(1/3), no overflow
    torch.testing.assert_close(sequence_log_likelihood(logits + 50.0, x), ll)
    impossible = torch.tensor([[[0.0, -math.inf, 0.0]]])
    assert token_log_probs(impossible, torch.tensor([[1]])).item() == -math.inf


def test_log_likelihood_rejects_mismatched_input():
    with pytest.raises(ValueError, match=r"\(B, T, V\) = \(2, 3, V\)"):
        token_log_probs(torch.zeros(2, 4, 5), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens in 0..4"):
        token_log_probs(torch.zeros(1, 1, 5), torch.tensor([[5]]))
    with pytest.raises(ValueError, match="log-probabilities"):
        perplexity(torch.tensor([0.5]))


# --------------------------------------------------------------------------- sampling


def markov_logits(table: torch.Tensor, start: torch.Tensor):
    """next_logits of a first-order chain: log start for the empty prefix, log table[last] after."""

    def next_logits(prefix: torch.Tensor) -> torch.Tensor:
        if prefix.shape[1] == 0:
            return start.log().expand(prefix.shape[0], -1)
        return table.log()[prefix[:, -1]]

    return next_logits


def chisquare_p(samples: np.ndarray, probs: np.ndarray) -> float:
    counts = np.bincount(samples, minlength=probs.shape[0])
    probs = probs / probs.sum()
    support = probs > 0
    assert counts[~support].sum() == 0, "a zero-probability token was drawn"
    return scipy.stats.chisquare(counts[support], samples.shape[0] * probs[support]).pvalue


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sample_sequences_follow_softmax_of_logits_over_temperature(temperature, device):
    table = torch.tensor(
        [[0.1, 0.6, 0.3, 0.0], [0.25, 0.25, 0.25, 0.25], [0.7, 0.0, 0.2, 0.1], [0.0, 0.0, 0.5, 0.5]]
    )
    table, start = (
        table.double().to(device),
        torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64, device=device),
    )
    g = make_generator(int(10 * temperature), device)
    x = sample_sequences(markov_logits(table, start), 3000, 6, temperature=temperature, generator=g)
    assert x.shape == (3000, 6) and x.dtype == torch.long and x.device.type == device
    x = x.cpu().numpy()

    def tempered(p: np.ndarray) -> np.ndarray:
        q = np.where(p > 0, p, 0.0) ** (1 / temperature)
        return q / q.sum()

    assert chisquare_p(x[:, 0], tempered(start.cpu().numpy())) > 1e-3
    previous, following = x[:, :-1].reshape(-1), x[:, 1:].reshape(-1)
    for a in range(4):
        after = following[previous == a]
        row = table[a].cpu().numpy()
        assert chisquare_p(after, tempered(row)) > 1e-3
        if temperature != 1.0 and a in (0, 2):  # power: temperature 1 is rejected (rows 1 and 3 are flat)
            assert chisquare_p(after, row) < 1e-6


def test_temperature_zero_is_greedy(device):
    table = torch.tensor([[0.1, 0.9], [0.8, 0.2]], dtype=torch.float64, device=device)
    start = torch.tensor([0.3, 0.7], dtype=torch.float64, device=device)
    x = sample_sequences(
        markov_logits(table, start), 2, 5, temperature=0, generator=make_generator(0, device)
    )
    assert x.tolist() == [[1, 0, 1, 0, 1]] * 2


def test_sample_sequences_draws_exactly_one_uniform_per_step():
    """The documented contract: one (B, 1) uniform per step, thresholded at the cumulative probabilities."""
    logits = torch.tensor([[0.0, 1.0, 2.0], [2.0, 0.0, -1.0]], dtype=torch.float64)
    x = sample_sequences(lambda prefix: logits, 2, 4, generator=make_generator(3))
    g = make_generator(3)
    levels = torch.softmax(logits, -1).cumsum(-1)
    expected = torch.stack(
        [(torch.rand((2, 1), generator=g, dtype=torch.float64) >= levels).sum(-1) for _ in range(4)], dim=1
    )
    assert torch.equal(x, expected)


def test_sample_sequences_with_prefix_and_reproducibility():
    table = torch.full((3, 3), 1 / 3, dtype=torch.float64)
    fn = markov_logits(table, table[0])
    prefix = torch.tensor([[2, 1], [0, 0]])
    a = sample_sequences(fn, 2, 5, prefix=prefix, generator=make_generator(1))
    b = sample_sequences(fn, 2, 5, prefix=prefix, generator=make_generator(1))
    c = sample_sequences(fn, 2, 5, prefix=prefix, generator=make_generator(2))
    assert a.shape == (2, 7) and torch.equal(a[:, :2], prefix)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_sequences_rejects_bad_arguments():
    fn = markov_logits(torch.full((2, 2), 0.5), torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="temperature"):
        sample_sequences(fn, 2, 3, temperature=-1.0)
    with pytest.raises(ValueError, match=r"shape \(2, V\)"):
        sample_sequences(lambda p: torch.zeros(3, 2), 2, 3)
    with pytest.raises(ValueError, match="NaN"):
        sample_sequences(lambda p: torch.full((2, 2), math.nan), 2, 3)
    with pytest.raises(ValueError, match="2 rows"):
        sample_sequences(fn, 2, 3, prefix=torch.zeros(3, 1, dtype=torch.long))


# --------------------------------------------------------------------------- scheduled sampling


class FixedLogits(nn.Module):
    """A 'model' whose every conditional is the same categorical: its guesses are easy to test."""

    def __init__(self, probs: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("log_probs", probs.log())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_probs.expand(*x.shape, -1)


def test_scheduled_sampling_inputs(device):
    probs = torch.tensor([0.0, 0.2, 0.8], device=device)
    model = FixedLogits(probs)
    x = torch.zeros(200, 50, dtype=torch.long, device=device)  # token 0: never guessed by the model
    assert torch.equal(scheduled_sampling_inputs(model, x, 1.0, generator=make_generator(0, device)), x)
    all_guesses = scheduled_sampling_inputs(model, x, 0.0, generator=make_generator(0, device))
    assert (all_guesses != 0).all()
    mixed = scheduled_sampling_inputs(model, x, 0.7, generator=make_generator(1, device)).cpu()
    kept = int((mixed == 0).sum())
    assert scipy.stats.binomtest(kept, x.numel(), 0.7).pvalue > 1e-3
    assert scipy.stats.binomtest(kept, x.numel(), 0.65).pvalue < 1e-6  # power
    guesses = mixed[mixed != 0].numpy()
    assert chisquare_p(guesses, np.array([0.0, 0.2, 0.8])) > 1e-3


def test_scheduled_sampling_loss_is_teacher_forcing_at_probability_one():
    model = CharRNN(4, hidden_size=8, seed=0)
    x = torch.randint(0, 4, (5, 7), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(scheduled_sampling_loss(model, x, 1.0), teacher_forcing_loss(model, x))
    with pytest.raises(ValueError, match="teacher_prob"):
        scheduled_sampling_loss(model, x, 1.5)


@pytest.mark.parametrize("kind", SCHEDULES)
def test_schedules(kind):
    total, final = 101, 0.4
    values = [teacher_probability(i, total, kind, final=final) for i in range(total)]
    assert values[0] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # never increases
    if kind == "constant":
        assert values == [1.0] * total
        return
    assert all(final <= v <= 1 for v in values)
    if kind == "linear":
        assert values[50] == pytest.approx(0.7)
        assert values[-1] == pytest.approx(final)
    if kind == "exponential":
        assert values[-1] == pytest.approx(final + (1 - final) * 0.01)
    if kind == "inverse_sigmoid":
        k = next(k for k in np.linspace(1, 50, 490001) if k * math.log(k) >= 50)  # k ln k = I / 2
        assert values[37] == pytest.approx(
            final + (1 - final) * (k / (k + math.exp(37 / k))) * (k + 1) / k, rel=1e-4
        )
        assert values[50] < final + (1 - final) * 0.6 and values[-1] < final + 0.1


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        teacher_probability(0, 10, "cosine")
    with pytest.raises(ValueError, match="step"):
        teacher_probability(10, 10)


# --------------------------------------------------------------------------- training


def test_fit_is_reproducible_and_lowers_the_loss():
    x = torch.randint(0, 3, (64, 6), generator=torch.Generator().manual_seed(0))
    x[:, 1::2] = x[:, ::2]  # every second token repeats the one before: learnable

    def train() -> tuple[CharRNN, list[float]]:
        model = CharRNN(3, hidden_size=16, seed=1)
        history = fit(
            model,
            x,
            lambda m, b, i: teacher_forcing_loss(m, b),
            steps=60,
            batch_size=16,
            lr=0.02,
            generator=make_generator(2),
            progress=False,
        )
        return model, history

    (a, history_a), (b, history_b) = train(), train()
    assert history_a == history_b and len(history_a) == 60
    assert np.mean(history_a[-10:]) < np.mean(history_a[:10]) - 0.1
    assert not a.training
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("model_name", ["rnn", "transformer"])
def test_a_trained_network_beats_the_bigram(model_name):
    """On text of a source of order 3, a network that reads the whole context beats the bigram's
    held-out NLL after a few hundred steps; neither goes below the source's entropy."""
    source = random_markov_source(6, 3, support=2, generator=make_generator(0))
    train = sample_text(source, 3000, 16, generator=make_generator(1))
    test = sample_text(source, 500, 16, generator=make_generator(2))
    bigram = -fit_ngram(train, 6, 2, k=0.5).log_likelihood(test).sum().item() / test.numel()
    if model_name == "rnn":
        model = CharRNN(6, hidden_size=48, seed=0)
    else:
        model = CausalTransformer(6, 16, d_model=32, num_heads=4, num_layers=2, seed=0)
    fit(
        model,
        train,
        lambda m, b, i: teacher_forcing_loss(m, b),
        steps=250,
        batch_size=32,
        lr=0.01,
        generator=make_generator(3),
        progress=False,
    )
    network = evaluate_nll(model, test)
    floor = block_entropy(source, 16).item() / 16
    assert network < bigram - 0.3, (network, bigram)
    assert network > floor - 0.05  # an estimate on 8000 tokens cannot go far below the floor
