"""Sample submissions for ch05_flows: a cheater, common mistakes, a broken notebook."""

from tests.submissions import SOLVED, Submission

SUBMISSIONS = [
    Submission(
        "cheater",
        {
            # the reference under the student's names
            "part1_answer": (
                "from genlib.flows.coupling import affine_coupling_forward\n"
                "from genlib.flows.coupling import affine_coupling_inverse"
            ),
            "part2_answer": SOLVED,
            # a wrapper around the reference
            "part3_answer": (
                "import genlib.flows.base as mine\n"
                "def flow_log_prob(x, layers):\n"
                "    return mine.flow_log_prob(x, layers)"
            ),
            "part4_answer": SOLVED,
        },
        full_marks=(
            "part2_visible",
            "part2_images",
            "part2_standardises",
            "part4_visible",
            "part4_conv",
            "part4_lu",
            "part4_slogdet",
        ),  # fmt: skip
        feedback={
            "part1_visible": ("genlib's own function",),
            "part1_jacobian": ("reference solution",),
            "part3_visible": ("genlib.flows.base.flow_log_prob", "reference solution"),
            "part3_quadrature": ("switched off",),
        },
    ),
    Submission(
        "mistakes",
        {
            # The log-det sums the clamped log-scale over every entry, the kept ones too; the inverse
            # is right.
            "part1_answer": (
                "def affine_coupling_forward(x, mask, net, max_log_scale=2.0):\n"
                "    s, t = net(x * mask)\n"
                "    log_scale = max_log_scale * torch.tanh(s / max_log_scale)\n"
                "    z = x * ((1 - mask) * log_scale).exp() + (1 - mask) * t\n"
                "    return z, log_scale.reshape(x.shape[0], -1).sum(dim=1)\n"
                "\n"
                "def affine_coupling_inverse(z, mask, net, max_log_scale=2.0):\n"
                "    s, t = net(z * mask)\n"
                "    log_scale = (1 - mask) * max_log_scale * torch.tanh(s / max_log_scale)\n"
                "    return (z - (1 - mask) * t) * (-log_scale).exp()"
            ),
            # Forgets that every position of an image contributes: right for vectors only.
            "part2_answer": (
                "def actnorm_initialize(x, eps=1e-6):\n"
                "    per_channel = x.transpose(0, 1).reshape(x.shape[1], -1)\n"
                "    mean = per_channel.mean(dim=1)\n"
                "    std = (per_channel - mean[:, None]).square().mean(dim=1).sqrt()\n"
                "    return -mean, -torch.log(std + eps)\n"
                "\n"
                "def actnorm_forward(x, bias, log_scale):\n"
                "    shape = (1, -1) + (1,) * (x.dim() - 2)\n"
                "    z = (x + bias.reshape(shape)) * log_scale.reshape(shape).exp()\n"
                "    return z, log_scale.sum().expand(x.shape[0])"
            ),
            # Sums over dimension 1 only: right for vectors, wrong for images.
            "part3_answer": (
                "def flow_log_prob(x, layers):\n"
                "    total = torch.zeros(x.shape[0], dtype=x.dtype)\n"
                "    for layer in layers:\n"
                "        x, ladj = layer(x)\n"
                "        total = total + ladj\n"
                "    return -0.5 * (x**2).sum(dim=1) - 0.5 * x.shape[1] * math.log(2 * math.pi) + total"
            ),
            # log(det W) instead of log|det W|: nan when the determinant is negative. The LU part is right.
            "part4_answer": (
                "def conv1x1_forward(x, weight):\n"
                "    z = torch.einsum('ij,bj...->bi...', weight, x)\n"
                "    return z, (x[0, 0].numel() * torch.det(weight).log()).expand(x.shape[0])\n"
                "\n"
                "def lu_weight(permutation, lower, upper, log_scale, sign):\n"
                "    eye = torch.eye(lower.shape[0], dtype=lower.dtype)\n"
                "    l_factor = torch.tril(lower, diagonal=-1) + eye\n"
                "    u_factor = torch.triu(upper, diagonal=1) + torch.diag(sign * log_scale.exp())\n"
                "    return permutation @ l_factor @ u_factor, log_scale.sum()"
            ),
        },
        scores={
            "part1_inverse": 1,
            "part2_visible": 1,
            "part2_standardises": 1,
            "part3_visible": 1,
            "part3_quadrature": 1,
            "part4_visible": 1,
            "part4_lu": 1,
        },
        feedback={
            "part1_visible": ("log-det sums l over the non-batch dimensions",),
            "part1_jacobian": ("only the changed entries (mask 0) contribute",),
            "part2_images": ("H * W * sum(l)",),
            "part3_images": ("RuntimeError", "ALL entries of a sample"),
            "part4_conv": ("NaN", "torch.linalg.slogdet"),
        },
    ),
    Submission(
        "broken",
        {
            "part1_answer": "def affine_coupling_forward(x, mask, net, max_log_scale=2.0)\n    return x",
            "part2_answer": (
                "def actnorm_initialize(x, eps=1e-6):\n"
                "    return x.mean()\n"
                "\n"
                "def actnorm_forward(x, bias, log_scale):\n"
                "    return x"
            ),
            "part3_answer": SOLVED,
            "part3_visible": "pass  # the student deleted the test",
            "part3_images": "assert True",
            "part4_answer": (
                "def conv1x1_forward(x, weight):\n"
                "    import sys\n"
                "    sys.exit(1)\n"
                "\n"
                "def lu_weight(permutation, lower, upper, log_scale, sign):\n"
                "    return permutation"
            ),
        },
        full_marks=("part3_visible", "part3_images", "part3_quadrature"),
        feedback={
            "part1_visible": ("NameError",),
            "part2_visible": ("should be a tuple of 2 items",),
            "part3_visible": ("one affine layer",),
            "part4_visible": ("SystemExit",),
        },
    ),
]
