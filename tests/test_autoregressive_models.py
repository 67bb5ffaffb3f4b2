"""The neural autoregressive models: causality by gradient (RNN, transformer, PixelCNN), the explicit
masked attention against PyTorch's fused causal attention, the chain rule against exhaustive
enumeration (the models are normalised distributions), the caches against full recomputation, the
PixelCNN receptive field (blind spot included) against the union of its masks, and a chi-square test
of the PixelCNN sampler on 2x2 images."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.signal
import scipy.stats
import torch
import torch.nn.functional as F

from genlib.autoregressive.pixelcnn import (
    MaskedConv2d,
    PixelCNN,
    pixelcnn_log_likelihood,
    pixelcnn_mask,
    sample_pixelcnn,
)
from genlib.autoregressive.rnn import CharRNN
from genlib.autoregressive.training import sample_sequences, sequence_log_likelihood
from genlib.autoregressive.transformer import (
    CausalSelfAttention,
    CausalTransformer,
    causal_attention,
    causal_mask,
    masked_attention,
)


def sequence_models(vocab: int = 5, length: int = 10):
    """Untrained models in float64 (so that zero and non-zero gradients are told apart exactly)."""
    return {
        "gru": CharRNN(vocab, embedding_dim=6, hidden_size=12, seed=1).double(),
        "lstm": CharRNN(vocab, embedding_dim=6, hidden_size=12, num_layers=2, cell="lstm", seed=2).double(),
        "transformer": CausalTransformer(vocab, length, d_model=16, num_heads=2, seed=3).double(),
        "transformer-fused": CausalTransformer(
            vocab, length, d_model=16, num_heads=2, fused=True, seed=3
        ).double(),
    }


MODEL_NAMES = list(sequence_models())


# --------------------------------------------------------------------------- causality


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_sequence_model_causality_by_gradient(name, device):
    """d logits[:, t] / d input[:, s] is exactly 0 for s > t; input s carries token x_{s-1}, so output
    t depends on x_0..x_{t-1} only. It is non-zero for s <= t: the model does use its context."""
    length = 8
    model = sequence_models(length=length)[name].to(device)
    x = torch.randint(0, 5, (3, length), generator=torch.Generator().manual_seed(0)).to(device)
    inputs = model.embed_inputs(x).detach().requires_grad_(True)  # (B, T, E)
    logits = model.logits_from_embedded(inputs)  # (B, T, V)
    for t in range(length):
        (grad,) = torch.autograd.grad(logits[:, t].sum(), inputs, retain_graph=True)
        size = grad.abs().sum(dim=(0, 2))  # (T,): how much output t depends on each input position
        assert (size[t + 1 :] == 0).all(), f"output {t} depends on later inputs: {size.tolist()}"
        assert (size[: t + 1] > 0).all(), f"output {t} ignores an earlier input: {size.tolist()}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_changing_a_token_changes_only_later_outputs(name):
    length = 9
    model = sequence_models(length=length)[name]
    x = torch.randint(0, 5, (4, length), generator=torch.Generator().manual_seed(1))
    for s in range(length):
        y = x.clone()
        y[:, s] = (y[:, s] + 1) % 5
        a, b = model(x), model(y)
        torch.testing.assert_close(a[:, : s + 1], b[:, : s + 1], rtol=0, atol=1e-12)  # up to and including s
        if s + 1 < length:
            assert not torch.allclose(a[:, s + 1], b[:, s + 1])


def test_pixelcnn_causality_by_gradient_in_raster_order(device):
    """d logit_i / d x_j = 0 for every j >= i in raster order."""
    model = PixelCNN(channels=8, num_layers=3, seed=0).double().to(device)
    h, w = 6, 7
    x = (torch.rand(4, 1, h, w, generator=torch.Generator().manual_seed(0)) < 0.5).double().to(device)
    x.requires_grad_(True)
    logits = model(x)
    for i in range(h * w):
        r, c = divmod(i, w)
        (grad,) = torch.autograd.grad(logits[:, 0, r, c].sum(), x, retain_graph=True)
        dependence = grad.abs().sum(dim=(0, 1)).reshape(-1)  # (D,) in raster order
        assert (dependence[i:] == 0).all(), (
            f"pixel {i} depends on pixel {int(dependence[i:].nonzero()[0]) + i}"
        )
        if c > 0:
            assert dependence[i - 1] > 0, f"pixel {i} ignores its left neighbour"
        if r > 0:
            assert dependence[i - w] > 0, f"pixel {i} ignores the pixel above it"


def expected_receptive_field(first_kernel: int, num_layers: int) -> np.ndarray:
    """The input offsets an output can see: the Minkowski sum of the masks of all layers, computed by
    convolving the masks as 0/1 arrays (scipy), independently of the network."""
    field = np.flip(pixelcnn_mask(first_kernel, "A").numpy().astype(np.int64))  # offsets as a kernel reads
    for _ in range(num_layers):
        field = scipy.signal.convolve2d(field, np.flip(pixelcnn_mask(3, "B").numpy().astype(np.int64)))
    return field > 0


def test_pixelcnn_receptive_field_has_the_blind_spot():
    first_kernel, num_layers, size = 3, 3, 15
    model = PixelCNN(channels=8, num_layers=num_layers, first_kernel=first_kernel, seed=1).double()
    x = torch.rand(6, 1, size, size, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x.requires_grad_(True)
    centre = size // 2
    model(x)[:, 0, centre, centre].sum().backward()
    seen = (x.grad.abs().sum(dim=(0, 1)) > 0).numpy()
    field = expected_receptive_field(first_kernel, num_layers)  # centred, odd size
    half = field.shape[0] // 2
    expected = np.zeros((size, size), dtype=bool)
    rows = slice(centre - half, centre + half + 1)
    # The field is a pattern of offsets (input - output); flip back to input positions.
    expected[rows, rows] = np.flip(field)
    np.testing.assert_array_equal(seen, expected)
    # The blind spot: the pixel just above and to the right of the top-right corner of what is seen
    # in the row above is before the output in raster order, but never seen.
    assert not seen[centre - 1, centre + num_layers + 2] and not seen[centre - 2, centre + num_layers + 1]
    assert seen[centre - 1, centre + 1]


# --------------------------------------------------------------------------- attention


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1, 4), (2, 3, 7, 8), (5, 16, 3), (4, 20, 32)])
def test_explicit_causal_attention_equals_pytorch(shape, dtype, device):
    g = torch.Generator().manual_seed(sum(shape))
    q, k, v = (torch.randn(shape, generator=g, dtype=dtype).to(device) for _ in range(3))
    y, weights = causal_attention(q, k, v)
    fused = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y, fused, rtol=tol, atol=tol)
    length = shape[-2]
    assert weights.shape == (*shape[:-1], length)
    assert (weights.masked_select(~causal_mask(length, device=device)) == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(shape[:-1], dtype=dtype, device=device))


def test_masked_attention_by_hand():
    """One query over three keys, the third masked: softmax of the two scaled dot products."""
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    k = torch.tensor([[1.0, 1.0], [0.0, 2.0], [5.0, 5.0]], dtype=torch.float64)
    v = torch.tensor([[1.0], [3.0], [100.0]], dtype=torch.float64)
    y, w = masked_attention(q, k, v, torch.tensor([[True, True, False]]))
    s = np.array([1.0, 0.0]) / math.sqrt(2)
    p = np.exp(s) / np.exp(s).sum()
    np.testing.assert_allclose(w.numpy(), [[p[0], p[1], 0.0]], rtol=1e-12)
    np.testing.assert_allclose(y.numpy(), [[p[0] * 1 + p[1] * 3]], rtol=1e-12)
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]


def test_masked_attention_rejects_bad_masks():
    q = torch.randn(2, 3, 4)
    with pytest.raises(TypeError, match="torch.bool"):
        masked_attention(q, q, q, torch.ones(3, 3))
    with pytest.raises(ValueError, match="at least one key"):
        masked_attention(q, q, q, torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="do not match"):
        masked_attention(q, torch.randn(2, 3, 5), q)


def test_fused_and_explicit_attention_layers_agree(device):
    explicit = CausalSelfAttention(16, 4).to(device)
    fused = CausalSelfAttention(16, 4, fused=True).to(device)
    fused.load_state_dict(explicit.state_dict())
    x = torch.randn(3, 9, 16, generator=torch.Generator().manual_seed(0)).to(device)
    torch.testing.assert_close(explicit(x), fused(x), rtol=1e-5, atol=1e-6)
    assert explicit.last_weights.shape == (3, 4, 9, 9)


# --------------------------------------------------------------------------- the chain rule


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_chain_rule_equals_the_sum_of_next_token_conditionals(name, device):
    length = 7
    model = sequence_models(length=length)[name].to(device)
    x = torch.randint(0, 5, (4, length), generator=torch.Generator().manual_seed(3)).to(device)
    parallel = sequence_log_likelihood(model(x), x)
    one_by_one = sum(
        torch.log_softmax(model.next_logits(x[:, :t]), dim=-1).gather(1, x[:, t : t + 1]).squeeze(1)
        for t in range(length)
    )
    torch.testing.assert_close(parallel, one_by_one, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_models_are_normalised_distributions_over_sequences(name):
    """Summed over all V^T sequences, exp(log P(x)) is one: true only for a causal model."""
    vocab, length = 3, 4
    model = sequence_models(vocab=vocab, length=length)[name]
    every = torch.tensor(list(itertools.product(range(vocab), repeat=length)))
    total = sequence_log_likelihood(model(every), every).exp().sum().item()
    assert math.isclose(total, 1.0, rel_tol=1e-10)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_incremental_equals_recomputation(name, device):
    length = 10
    model = sequence_models(length=length)[name].to(device)
    x = torch.randint(0, 5, (3, length), generator=torch.Generator().manual_seed(4)).to(device)
    step = model.incremental()
    cached = torch.stack([step(x[:, :t]) for t in range(length)], dim=1)
    torch.testing.assert_close(cached, model(x), rtol=1e-10, atol=1e-10)
    # A prefix that does not extend the previous one starts over, and is still right.
    torch.testing.assert_close(step(x[:, :3]), model(x)[:, 3], rtol=1e-10, atol=1e-10)
    # Sampling with the cache draws exactly what sampling by recomputation draws.
    start = torch.empty(4, 0, dtype=torch.long, device=device)
    g = torch.Generator(device=device)
    a = sample_sequences(model.next_logits, 4, length, generator=g.manual_seed(5), prefix=start)
    b = sample_sequences(model.incremental(), 4, length, generator=g.manual_seed(5), prefix=start)
    assert torch.equal(a, b)


def test_transformer_refuses_sequences_longer_than_its_context():
    model = CausalTransformer(4, 5, d_model=8, num_heads=2)
    with pytest.raises(ValueError, match="context_length=5"):
        model(torch.zeros(1, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="context_length=5"):
        model.next_logits(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens in 0..3"):
        model(torch.full((1, 2), 4))


def test_models_are_reproducible_and_leave_the_global_seed_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = CharRNN(4, seed=7), CharRNN(4, seed=7)
    assert torch.equal(torch.rand(1), before)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    c = CausalTransformer(4, 8, seed=8)
    assert not torch.equal(CausalTransformer(4, 8, seed=9).head.weight, c.head.weight)


# --------------------------------------------------------------------------- PixelCNN


def test_pixelcnn_masks():
    a3 = pixelcnn_mask(3, "A")
    assert a3.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert pixelcnn_mask(3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert pixelcnn_mask(1, "A").tolist() == [[0]] and pixelcnn_mask(1, "B").tolist() == [[1]]
    for k in (5, 7):
        a, b = pixelcnn_mask(k, "A"), pixelcnn_mask(k, "B")
        assert a.sum() == (k * k - 1) // 2 and b.sum() == a.sum() + 1
        # In raster order the mask is "every entry before the centre" (and the centre for B).
        raster = torch.arange(k * k).reshape(k, k)
        assert torch.equal(a.bool(), raster < (k * k) // 2)
        assert torch.equal(b.bool(), raster <= (k * k) // 2)
    with pytest.raises(ValueError, match="odd"):
        pixelcnn_mask(4, "A")
    with pytest.raises(ValueError, match="'A' or 'B'"):
        pixelcnn_mask(3, "C")


def test_masked_weights_get_no_gradient():
    conv = MaskedConv2d(2, 3, 5, "A")
    conv(torch.randn(1, 2, 6, 6)).sum().backward()
    masked = pixelcnn_mask(5, "A") == 0
    assert (conv.weight.grad[:, :, masked] == 0).all()
    assert (conv.weight.grad[:, :, ~masked] != 0).any()


def all_binary_images(h: int, w: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=h * w)), dtype=torch.float64).reshape(
        -1, 1, h, w
    )


def test_pixelcnn_is_a_normalised_distribution():
    model = PixelCNN(channels=6, num_layers=2, seed=4).double()
    every = all_binary_images(3, 3)  # 512 images
    total = pixelcnn_log_likelihood(model, every).exp().sum().item()
    assert math.isclose(total, 1.0, rel_tol=1e-10)


def test_pixelcnn_log_likelihood_is_the_chain_rule_over_pixels():
    model = PixelCNN(channels=6, num_layers=2, seed=5).double()
    x = (torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    by_hand = torch.zeros(3, dtype=torch.float64)
    for i in range(16):
        r, c = divmod(i, 4)
        seen = x.clone().reshape(3, -1)
        seen[:, i:] = 0  # the pixels not yet drawn
        p_one = torch.sigmoid(model(seen.reshape(3, 1, 4, 4))[:, 0, r, c])
        by_hand += torch.where(x[:, 0, r, c] == 1, p_one.log(), (1 - p_one).log())
    torch.testing.assert_close(pixelcnn_log_likelihood(model, x), by_hand, rtol=1e-10, atol=1e-10)


def test_pixelcnn_samples_pass_chi_square(device):
    model = PixelCNN(channels=6, num_layers=1, first_kernel=3, seed=6).to(device)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(5.0)  # large weights: strong dependence between the pixels
    every = all_binary_images(2, 2).float().to(device)
    with torch.no_grad():
        probs = pixelcnn_log_likelihood(model, every).exp().double().cpu().numpy()
    g = torch.Generator(device=device).manual_seed(0)
    samples = sample_pixelcnn(model, 20000, 2, 2, generator=g, device=device)
    assert samples.shape == (20000, 1, 2, 2) and samples.device.type == device
    codes = (samples.reshape(-1, 4).cpu().long() * torch.tensor([8, 4, 2, 1])).sum(1).numpy()
    counts = np.bincount(codes, minlength=16)
    assert pooled_chisquare_p(counts, probs / probs.sum()) > 1e-3
    # Power: independent pixels with the same marginals are rejected.
    marginal = samples.reshape(-1, 4).mean(0).cpu().double().numpy()
    images = all_binary_images(2, 2).reshape(16, 4).numpy()
    independent = np.prod(np.where(images == 1, marginal, 1 - marginal), axis=1)
    assert pooled_chisquare_p(counts, independent) < 1e-6


def pooled_chisquare_p(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson's test with the cells of expected count below 5 pooled into one (the usual rule)."""
    expected = counts.sum() * probs
    small = expected < 5
    observed = np.append(counts[~small], counts[small].sum())
    expected = np.append(expected[~small], expected[small].sum())
    keep = expected > 0
    return scipy.stats.chisquare(observed[keep], expected[keep]).pvalue
