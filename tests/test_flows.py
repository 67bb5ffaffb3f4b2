"""genlib.flows layers and composites against independent references.

Every layer and every composite: f^-1(f(x)) = x and f(f^-1(z)) = z; log|det J| equals the slogdet of
the Jacobian computed by autograd (torch.autograd.functional.jacobian); shapes, dtype and device
follow the input. Then layer-specific references: torch's conv2d and pixel_unshuffle, the LU
log-determinant against slogdet, ActNorm's initialization against numpy, and flows whose density
is known in closed form (torch.distributions).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from genlib.device import make_generator
from genlib.flows import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    Compose,
    ElementwiseAffine,
    Flow,
    InvertibleConv1x1,
    Logit,
    LUInvertibleConv1x1,
    Permutation,
    Scaling,
    SinhArcsinh,
    Squeeze,
    Transform,
    Unsqueeze,
    alternating_mask,
    build_glow,
    build_nice,
    build_realnvp,
    channel_mask,
    checkerboard_mask,
    flow_log_prob,
    half_mask,
    standard_normal_log_prob,
)
from genlib.flows.coupling import (
    affine_coupling_forward,
    affine_coupling_inverse,
    conv_conditioner,
    mlp_conditioner,
    soft_clamp,
)
from genlib.flows.glow import (
    actnorm_forward,
    actnorm_initialize,
    conv1x1_forward,
    conv1x1_inverse,
    lu_weight,
    random_rotation,
)

# --------------------------------------------------------------------------- the cases

#: name -> (make the transform, shape of one event, data in (0, 1) instead of R)
CASES: dict[str, tuple[Callable[[], Transform], tuple[int, ...], bool]] = {
    "elementwise_affine": (lambda: ElementwiseAffine(3), (3,), False),
    "scaling": (lambda: Scaling((2, 3, 3)), (2, 3, 3), False),
    "sinh_arcsinh": (lambda: SinhArcsinh(3), (3,), False),
    "permutation_random": (lambda: Permutation.random(5, generator=make_generator(3)), (5,), False),
    "permutation_reverse_channels": (lambda: Permutation.reverse(3), (3, 2, 2), False),
    "additive_coupling": (
        lambda: AdditiveCoupling(alternating_mask(4), mlp_conditioner(4, 4, 16)),
        (4,),
        False,
    ),
    "affine_coupling": (
        lambda: AffineCoupling(alternating_mask(4, 1), mlp_conditioner(4, 8, 16)),
        (4,),
        False,
    ),
    "affine_coupling_half": (lambda: AffineCoupling(half_mask(5), mlp_conditioner(5, 10, 16)), (5,), False),
    "affine_coupling_checkerboard": (
        lambda: AffineCoupling(checkerboard_mask(4, 4, 1), conv_conditioner(1, 2, 8)),
        (1, 4, 4),
        False,
    ),
    "affine_coupling_channels": (
        lambda: AffineCoupling(channel_mask(4), conv_conditioner(4, 8, 8)),
        (4, 2, 2),
        False,
    ),
    "actnorm_vector": (lambda: ActNorm(3), (3,), False),
    "actnorm_image": (lambda: ActNorm(2), (2, 3, 3), False),
    "conv1x1_vector": (lambda: InvertibleConv1x1(3, generator=make_generator(4)), (3,), False),
    "conv1x1_image": (lambda: InvertibleConv1x1(3, generator=make_generator(5)), (3, 2, 2), False),
    "lu_conv1x1_vector": (lambda: LUInvertibleConv1x1(4, generator=make_generator(6)), (4,), False),
    "lu_conv1x1_image": (lambda: LUInvertibleConv1x1(4, generator=make_generator(7)), (4, 2, 2), False),
    "squeeze": (lambda: Squeeze(2), (2, 4, 4), False),
    "unsqueeze": (lambda: Unsqueeze(2), (8, 2, 2), False),
    "logit": (lambda: Logit(0.05), (3,), True),
    # composites
    "compose_of_layers": (
        lambda: Compose(ElementwiseAffine(3), SinhArcsinh(3), Permutation.reverse(3)),
        (3,),
        False,
    ),
    "nice": (lambda: build_nice(4, num_couplings=3, hidden_features=16), (4,), False),
    "realnvp_vector": (lambda: build_realnvp(3, num_couplings=3, hidden_features=16), (3,), False),
    "realnvp_image": (lambda: build_realnvp((1, 4, 4), num_couplings=2, hidden_features=8), (1, 4, 4), False),
    "glow_vector": (lambda: build_glow(4, num_steps=2, hidden_features=16), (4,), False),
    "glow_image": (lambda: build_glow((1, 4, 4), num_steps=2, hidden_features=8), (1, 4, 4), False),
    "logit_then_realnvp": (
        lambda: Compose(Logit(), *build_realnvp((1, 4, 4), num_couplings=1, hidden_features=8)),
        (1, 4, 4),
        True,
    ),
}


def perturb(transform: nn.Module, seed: int, scale: float = 0.3) -> None:
    """Move every trainable parameter by Gaussian noise, so that no layer is the identity."""
    generator = make_generator(seed)
    with torch.no_grad():
        for p in transform.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device))


def make_case(name: str, device: str, batch: int = 3, seed: int = 0) -> tuple[Transform, torch.Tensor]:
    """The transform of case ``name`` in float64 on ``device``, initialized and perturbed, and a batch."""
    factory, shape, unit_interval = CASES[name]
    generator = make_generator(seed, device)
    transform = factory().to(device=device, dtype=torch.float64)
    if unit_interval:
        x = torch.rand((batch, *shape), generator=generator, dtype=torch.float64, device=device)
    else:
        x = torch.randn((batch, *shape), generator=generator, dtype=torch.float64, device=device)
    init = torch.randn((64, *shape), generator=generator, dtype=torch.float64, device=device) * 2 + 1
    with torch.no_grad():  # data-dependent initialization (ActNorm) on other data than x
        transform.call_and_ladj(init.sigmoid() if unit_interval else init)
    perturb(transform, seed + 1)
    return transform, x


def autograd_ladj(transform: Transform, x: torch.Tensor) -> torch.Tensor:
    """log|det J| of each sample from the full Jacobian of the forward map (autograd), shape (B,)."""
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: transform(v[None])[0], xi, vectorize=True)
        d = xi.numel()
        sign, logabsdet = torch.linalg.slogdet(jac.reshape(d, d))
        assert sign != 0, "the Jacobian is singular"
        out.append(logabsdet)
    return torch.stack(out)


# --------------------------------------------------------------------------- every layer and composite


@pytest.mark.parametrize("name", CASES)
def test_inverse_undoes_forward(name, device):
    transform, x = make_case(name, device)
    z, _ = transform.call_and_ladj(x)
    torch.testing.assert_close(transform.inverse(z), x, rtol=1e-9, atol=1e-10)
    # and the other way round, from latent points
    z2 = z + 0.1 * torch.randn(z.shape, generator=make_generator(9, device), dtype=z.dtype, device=device)
    torch.testing.assert_close(transform(transform.inverse(z2)), z2, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", CASES)
def test_log_det_matches_autograd_jacobian(name, device):
    transform, x = make_case(name, device)
    z, ladj = transform.call_and_ladj(x)
    expected = autograd_ladj(transform, x)
    torch.testing.assert_close(ladj, expected, rtol=1e-9, atol=1e-9)
    assert not bool(ladj.isnan().any())


@pytest.mark.parametrize("name", CASES)
def test_shapes_dtype_device(name, device):
    transform, x = make_case(name, device, batch=5)
    z, ladj = transform.call_and_ladj(x)
    shape = CASES[name][1]
    assert ladj.shape == (5,) and ladj.dtype == x.dtype and ladj.device == x.device
    if name == "squeeze":
        assert z.shape == (5, shape[0] * 4, shape[1] // 2, shape[2] // 2)
    elif name == "unsqueeze":
        assert z.shape == (5, shape[0] // 4, shape[1] * 2, shape[2] * 2)
    else:
        assert z.shape == x.shape
    assert z.dtype == x.dtype and z.device == x.device
    # float32 works too and agrees with float64
    transform32 = transform.float()
    z32, ladj32 = transform32.call_and_ladj(x.float())
    assert z32.dtype == ladj32.dtype == torch.float32
    torch.testing.assert_close(z32.double(), z, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ladj32.double(), ladj, rtol=1e-4, atol=1e-4)


def test_the_jacobian_check_detects_a_wrong_log_det(device):
    """Power: the autograd comparison rejects a coupling whose log-det forgets the mask."""
    transform, x = make_case("affine_coupling", device)
    mask = transform.mask
    s, _ = transform.scale_and_shift(x * mask)
    wrong = soft_clamp(s, transform.max_log_scale).sum(dim=1)  # summed over the kept entries too
    assert not torch.allclose(wrong, autograd_ladj(transform, x), rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------- couplings


def test_coupling_jacobian_is_triangular_with_unit_block(device):
    """Kept entries first: the upper-right block is zero and the kept block is the identity."""
    transform, x = make_case("affine_coupling", device, batch=1)
    mask = transform.mask.bool()
    order = torch.cat([torch.nonzero(mask)[:, 0], torch.nonzero(~mask)[:, 0]])
    jac = torch.autograd.functional.jacobian(lambda v: transform(v[None])[0], x[0])[order][:, order]
    k = int(mask.sum())
    torch.testing.assert_close(jac[:k, :k], torch.eye(k, dtype=jac.dtype, device=device))
    assert bool((jac[:k, k:] == 0).all())
    lower = jac[k:, k:]
    torch.testing.assert_close(lower, torch.diag(lower.diagonal()))  # diagonal block is diagonal
    assert bool((jac[k:, :k].abs() > 0).any())  # the kept half does influence the rest


def test_additive_coupling_preserves_volume(device):
    transform, x = make_case("additive_coupling", device)
    z, ladj = transform.call_and_ladj(x)
    assert bool((ladj == 0).all())
    assert not torch.allclose(z, x)


def test_soft_clamp_is_bounded_and_identity_near_zero():
    s = torch.linspace(-50, 50, 1001, dtype=torch.float64)
    out = soft_clamp(s, 2.0)
    assert bool((out.abs() < 2.0 + 1e-12).all())
    torch.testing.assert_close(
        soft_clamp(torch.tensor([1e-4], dtype=torch.float64), 2.0), torch.tensor([1e-4], dtype=torch.float64)
    )
    assert bool((out[1:] >= out[:-1]).all())


def test_affine_coupling_clamps_huge_scales():
    x = torch.ones(2, 2, dtype=torch.float64)
    mask = torch.tensor([1.0, 0.0], dtype=torch.float64)

    def net(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full_like(h, 1e4), torch.zeros_like(h)

    z, ladj = affine_coupling_forward(x, mask, net, max_log_scale=3.0)
    assert bool(torch.isfinite(z).all()) and bool((ladj <= 3.0).all()) and bool((ladj > 2.99).all())
    torch.testing.assert_close(affine_coupling_inverse(z, mask, net, max_log_scale=3.0), x)


def test_masks():
    torch.testing.assert_close(alternating_mask(5), torch.tensor([1.0, 0, 1, 0, 1]))
    torch.testing.assert_close(alternating_mask(5, 1) + alternating_mask(5, 0), torch.ones(5))
    torch.testing.assert_close(half_mask(5), torch.tensor([1.0, 1, 0, 0, 0]))
    board = checkerboard_mask(3, 4)
    assert board.shape == (1, 3, 4)
    expected = np.indices((3, 4)).sum(axis=0) % 2 == 0
    np.testing.assert_array_equal(board[0].numpy(), expected.astype(np.float32))
    torch.testing.assert_close(checkerboard_mask(3, 4, 1) + board, torch.ones(1, 3, 4))
    channels = channel_mask(4, 1)
    assert channels.shape == (4, 1, 1)
    torch.testing.assert_close(channels[:, 0, 0], torch.tensor([0.0, 0, 1, 1]))
    with pytest.raises(ValueError, match="parity"):
        alternating_mask(4, 2)
    with pytest.raises(ValueError, match="num_channels"):
        channel_mask(1)


def test_coupling_input_errors():
    net = mlp_conditioner(3, 6, 8)
    layer = AffineCoupling(alternating_mask(3), net)
    with pytest.raises(ValueError, match="x must be a batch"):
        layer.call_and_ladj(torch.zeros(3))
    with pytest.raises(ValueError, match="mask must broadcast"):
        affine_coupling_forward(torch.zeros(2, 4), alternating_mask(3), lambda h: (h, h))
    with pytest.raises(ValueError, match="shape of x"):
        affine_coupling_forward(torch.zeros(2, 4), alternating_mask(4), lambda h: (h[:, :2], h))
    with pytest.raises(TypeError, match="floating"):
        layer.call_and_ladj(torch.zeros(2, 3, dtype=torch.long))


# --------------------------------------------------------------------------- Glow's layers


@pytest.mark.parametrize("shape", [(500, 3), (200, 3, 4, 5)])
def test_actnorm_initialization_standardises_each_channel(shape, device):
    g = make_generator(11, device)
    scale = torch.tensor([0.1, 2.0, 30.0], dtype=torch.float64, device=device).reshape(
        1, 3, *([1] * (len(shape) - 2))
    )
    x = torch.randn(shape, generator=g, dtype=torch.float64, device=device) * scale + 5.0
    layer = ActNorm(3).to(device=device, dtype=torch.float64)
    z, ladj = layer.call_and_ladj(x)
    z = z.detach()
    per_channel = z.transpose(0, 1).reshape(3, -1).cpu().numpy()
    np.testing.assert_allclose(per_channel.mean(axis=1), 0.0, atol=1e-10)
    # the parameters are the negative mean and the log of the reciprocal std of the data
    data = x.transpose(0, 1).reshape(3, -1).cpu().numpy()
    std = data.std(axis=1)  # numpy's std divides by the count
    np.testing.assert_allclose(
        per_channel.std(axis=1), std / (std + 1e-6), rtol=1e-10
    )  # unit variance but for eps
    np.testing.assert_allclose(layer.bias.detach().cpu().numpy(), -data.mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(
        layer.log_scale.detach().cpu().numpy(), -np.log(data.std(axis=1) + 1e-6), rtol=1e-10
    )
    # the log-det is (number of positions) x sum of log-scales
    positions = int(np.prod(shape[2:]))
    torch.testing.assert_close(ladj, positions * layer.log_scale.sum().expand(shape[0]))
    # initialized once: a second batch is not standardised again
    before = layer.bias.detach().clone()
    layer.call_and_ladj(x[:10] * 3)
    torch.testing.assert_close(layer.bias.detach(), before)


def test_actnorm_constant_channel_stays_finite():
    x = torch.zeros(10, 2)
    x[:, 1] = torch.arange(10.0)
    bias, log_scale = actnorm_initialize(x)
    assert bool(torch.isfinite(log_scale).all())
    z, ladj = actnorm_forward(x, bias, log_scale)
    assert bool(torch.isfinite(z).all()) and bool(torch.isfinite(ladj).all())


def test_conv1x1_equals_torch_conv2d(device):
    g = make_generator(12, device)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, device=device)
    w = torch.randn(3, 3, generator=g, dtype=torch.float64, device=device)
    z, ladj = conv1x1_forward(x, w)
    torch.testing.assert_close(z, torch.nn.functional.conv2d(x, w[:, :, None, None]))
    torch.testing.assert_close(ladj, (20 * torch.linalg.det(w).abs().log()).expand(2))
    torch.testing.assert_close(conv1x1_inverse(z, w), x)


def test_conv1x1_log_det_with_a_negative_determinant():
    w = torch.tensor([[0.0, 2.0], [3.0, 0.0]], dtype=torch.float64)  # det = -6
    _, ladj = conv1x1_forward(torch.zeros(1, 2, 3, 3, dtype=torch.float64), w)
    torch.testing.assert_close(ladj, torch.tensor([9 * np.log(6.0)], dtype=torch.float64))


def test_lu_weight_log_det_equals_slogdet(device):
    g = make_generator(13, device)
    c = 6
    p, _, _ = torch.linalg.lu(torch.randn(c, c, generator=g, dtype=torch.float64, device=device))
    lower = torch.randn(
        c, c, generator=g, dtype=torch.float64, device=device
    )  # diagonal and upper part ignored
    upper = torch.randn(c, c, generator=g, dtype=torch.float64, device=device)
    log_scale = torch.randn(c, generator=g, dtype=torch.float64, device=device)
    sign = torch.tensor([1.0, -1, -1, 1, 1, -1], dtype=torch.float64, device=device)
    weight, log_abs_det = lu_weight(p, lower, upper, log_scale, sign)
    sign_det, expected = torch.linalg.slogdet(weight)
    torch.testing.assert_close(log_abs_det, expected)
    assert sign_det.item() == torch.linalg.det(p).sign().item() * sign.prod().item()
    # scipy's own LU of the assembled weight gives the same |det W| as the product of its diagonal
    import scipy.linalg

    _, _, u_s = scipy.linalg.lu(weight.cpu().numpy())
    np.testing.assert_allclose(np.log(np.abs(np.diag(u_s))).sum(), log_abs_det.item(), rtol=1e-9)
    # only the strictly triangular parts are used: changing the rest changes nothing
    weight2, _ = lu_weight(p, lower + torch.triu(upper), upper + torch.tril(lower), log_scale, sign)
    torch.testing.assert_close(weight2, weight)


def test_lu_conv1x1_starts_as_a_rotation_and_its_log_det_stays_cheap_and_right(device):
    layer = LUInvertibleConv1x1(5, generator=make_generator(14)).to(device=device, dtype=torch.float64)
    weight, log_abs_det = layer.weight()
    eye = torch.eye(5, dtype=torch.float64, device=device)
    torch.testing.assert_close(weight @ weight.T, eye, atol=1e-6, rtol=0)  # parameters stored in float32
    torch.testing.assert_close(
        log_abs_det, torch.zeros((), dtype=torch.float64, device=device), atol=1e-6, rtol=0
    )
    perturb(layer, 15, scale=0.5)
    weight, log_abs_det = layer.weight()
    torch.testing.assert_close(log_abs_det, torch.linalg.slogdet(weight).logabsdet)
    z = torch.randn(4, 5, 2, 2, generator=make_generator(16, device), dtype=torch.float64, device=device)
    torch.testing.assert_close(layer.inverse(z), conv1x1_inverse(z, weight))


def test_random_rotation_is_orthogonal_and_seeded():
    q = random_rotation(7, generator=make_generator(0)).double()
    torch.testing.assert_close(q @ q.T, torch.eye(7, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        random_rotation(7, generator=make_generator(0)), random_rotation(7, generator=make_generator(0))
    )


def test_squeeze_equals_pixel_unshuffle(device):
    x = torch.randn(2, 3, 4, 6, generator=make_generator(17, device), device=device)
    z, _ = Squeeze(2).call_and_ladj(x)
    torch.testing.assert_close(z, torch.nn.functional.pixel_unshuffle(x, 2))
    torch.testing.assert_close(Unsqueeze(2)(z), torch.nn.functional.pixel_shuffle(z, 2))
    with pytest.raises(ValueError, match="divisible"):
        Squeeze(2)(torch.zeros(1, 1, 3, 4))


# --------------------------------------------------------------------------- flows with known densities


def test_affine_flow_density_is_the_gaussian(device):
    """x = f^{-1}(z) = (z - b) e^{-a} is N(-b e^{-a}, e^{-2a}) entry by entry."""
    layer = ElementwiseAffine(3).to(device=device, dtype=torch.float64)
    perturb(layer, 20, scale=0.8)
    flow = Flow(layer, (3,))
    x = torch.randn(50, 3, generator=make_generator(21, device), dtype=torch.float64, device=device) * 2
    a, b = layer.log_scale.detach(), layer.shift.detach()
    expected = torch.distributions.Normal(-b * (-a).exp(), (-a).exp()).log_prob(x).sum(dim=1)
    torch.testing.assert_close(flow.log_prob(x), expected)


def test_linear_flow_density_is_the_multivariate_normal(device):
    """x = W^{-1} z is N(0, W^{-1} W^{-T})."""
    layer = LUInvertibleConv1x1(4, generator=make_generator(22)).to(device=device, dtype=torch.float64)
    perturb(layer, 23, scale=0.5)
    flow = Flow(layer, (4,))
    w_inv = torch.linalg.inv(layer.weight()[0].detach())
    x = torch.randn(50, 4, generator=make_generator(24, device), dtype=torch.float64, device=device)
    mvn = torch.distributions.MultivariateNormal(
        torch.zeros(4, dtype=torch.float64, device=device), w_inv @ w_inv.T
    )
    torch.testing.assert_close(flow.log_prob(x), mvn.log_prob(x))


def test_flow_log_prob_of_a_layer_list_equals_the_flow(device):
    transform, x = make_case("glow_vector", device, batch=7)
    flow = Flow(transform, (4,))
    layers = [t.call_and_ladj for t in transform.transforms]
    torch.testing.assert_close(flow_log_prob(x, layers), flow.log_prob(x))
    torch.testing.assert_close(flow_log_prob(x, []), standard_normal_log_prob(x))
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x.cpu()).sum(dim=1)
    torch.testing.assert_close(standard_normal_log_prob(x).cpu(), expected)


def test_samples_follow_the_flow_density_ks(device):
    """The 1-D sinh-arcsinh flow: samples against the flow's CDF, Phi(f(x)), by a KS test; and power."""
    layer = SinhArcsinh(1).to(device=device, dtype=torch.float64)
    with torch.no_grad():
        layer.log_delta.fill_(np.log(0.6))
        layer.epsilon.fill_(0.8)
    flow = Flow(layer, (1,))
    x = flow.sample(5000, generator=make_generator(25, device))
    assert x.shape == (5000, 1) and x.dtype == torch.float64 and x.device.type == torch.device(device).type

    def cdf(v: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            z = layer(torch.tensor(v, dtype=torch.float64, device=device)[:, None])[:, 0]
        return scipy.stats.norm.cdf(z.cpu().numpy())

    assert scipy.stats.kstest(x[:, 0].cpu().numpy(), cdf).pvalue > 1e-3
    # the same draws reject a flow with another skew
    with torch.no_grad():
        layer.epsilon.fill_(0.6)
    assert scipy.stats.kstest(x[:, 0].cpu().numpy(), cdf).pvalue < 1e-6


def test_sampling_is_seeded_and_follows_dtype(device):
    transform, _ = make_case("realnvp_image", device)
    flow = Flow(transform, (1, 4, 4))
    a = flow.sample(6, generator=make_generator(1, device))
    b = flow.sample(6, generator=make_generator(1, device))
    c = flow.sample(6, generator=make_generator(2, device))
    assert a.shape == (6, 1, 4, 4) and a.dtype == torch.float64
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="x must have shape"):
        flow.log_prob(torch.zeros(2, 1, 4, 5, dtype=torch.float64, device=device))


def test_compose_validates():
    with pytest.raises(ValueError, match="at least one"):
        Compose()
    with pytest.raises(TypeError, match="transform 1"):
        Compose(Scaling(2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="permutation"):
        Permutation(torch.tensor([0, 0, 1]))
