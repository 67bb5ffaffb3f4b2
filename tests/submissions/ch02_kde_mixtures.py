"""Sample submissions for ch02_kde_mixtures: a cheater, common mistakes, a broken notebook."""

from tests.submissions import SOLVED, Submission

SUBMISSIONS = [
    Submission(
        "cheater",
        {
            "part1_answer": "from genlib.kde import kde_log_density",
            "part2_answer": SOLVED,
            "part3_answer": (
                "import genlib.kde as mine\n"
                "def kde_sample(data, h, num_samples, generator=None):\n"
                "    return mine.kde_sample(data, h, num_samples, generator=generator)"
            ),
            "part4_answer": (
                "import genlib.estimators\n"  # the reference under the student's name
                "gaussian_mle = genlib.estimators.gaussian_mle"
            ),
            "part5_answer": (
                "from genlib.mixtures import GaussianMixture, gmm_log_density\n"
                "def gmm_log_likelihood(x, weights, means, covariances):\n"
                "    return gmm_log_density(x, GaussianMixture(weights, means, covariances))"
            ),
            "part6_answer": SOLVED,
        },
        full_marks=("part2_visible", "part2_hidden", "part6_visible", "part6_hidden"),
        feedback={
            "part1_visible": ("genlib's own function",),
            "part3_visible": ("genlib.kde.kde_sample", "reference solution"),
            "part3_moments": ("genlib.kde.kde_sample",),
            "part4_spherical": ("genlib's own function",),
            "part5_visible": ("genlib.mixtures", "reference solution"),
        },
    ),
    Submission(
        "mistakes",
        {
            # The formula typed in directly: right near the data, -inf far from it.
            "part1_answer": (
                "def kde_log_density(x, data, h):\n"
                "    n, d = data.shape\n"
                "    sq = ((x[:, None, :] - data[None, :, :]) / h).square().sum(-1)\n"
                "    norm = h**d * (2 * math.pi) ** (d / 2)\n"
                "    return (torch.exp(-0.5 * sq) / norm).mean(dim=1).log()"
            ),
            # Sorts the grid first: right for a sorted grid, scores in the wrong order otherwise.
            "part2_answer": (
                "def select_bandwidth(train, valid, bandwidths, log_density=None):\n"
                "    log_density = log_density or kde_log_density\n"
                "    grid = bandwidths.sort().values\n"
                "    scores = torch.stack([log_density(valid, train, h).mean() for h in grid.tolist()])\n"
                "    return grid[scores.argmax()], scores"
            ),
            # Draws the noise before the indices: the right distribution, other draws.
            "part3_answer": (
                "def kde_sample(data, h, num_samples, generator=None):\n"
                "    n, d = data.shape\n"
                "    noise = torch.randn((num_samples, d), generator=generator, dtype=data.dtype)\n"
                "    z = torch.randint(n, (num_samples,), generator=generator)\n"
                "    return data[z] + h * noise"
            ),
            # The spherical variance as the sum of the variances (forgets to divide by d).
            "part4_answer": (
                "def gaussian_mle(x, weights=None, covariance_type='full'):\n"
                "    w = torch.ones(x.shape[0], dtype=x.dtype) if weights is None else weights.to(x.dtype)\n"
                "    w = w / w.sum()\n"
                "    mean = w @ x\n"
                "    c = x - mean\n"
                "    if covariance_type == 'full':\n"
                "        return mean, (c * w[:, None]).T @ c\n"
                "    var = w @ c.square()\n"
                "    return mean, var if covariance_type == 'diag' else var.sum()"
            ),
            # log of a plain sum of densities: underflows far from every component.
            "part5_answer": (
                "def gmm_log_likelihood(x, weights, means, covariances):\n"
                "    comps = torch.distributions.MultivariateNormal(means, covariance_matrix=covariances)\n"
                "    densities = comps.log_prob(x[:, None, :]).exp()\n"
                "    return (weights * densities).sum(dim=1).log()"
            ),
            # Scheme 1 as a product of densities: underflows for large batches.
            "part6_answer": (
                "def batch_log_likelihoods(x, weights, means, covariances):\n"
                "    comps = torch.distributions.MultivariateNormal(means, covariance_matrix=covariances)\n"
                "    log_p = comps.log_prob(x[:, None, :])\n"
                "    per_sample = torch.logsumexp(log_p + weights.log(), dim=1).sum()\n"
                "    shared = (weights * log_p.exp().prod(dim=0)).sum().log()\n"
                "    return per_sample, shared"
            ),
        },
        scores={
            "part1_visible": 1,
            "part1_hidden": 2,
            "part2_visible": 1,
            "part3_moments": 1,
            "part4_full_diag": 1,
            "part5_visible": 1,
            "part5_hidden": 1,
            "part6_visible": 1,
        },
        feedback={
            "part1_stability": ("-inf", "torch.logsumexp"),
            "part2_hidden": ("an unsorted grid", "in the order of bandwidths"),
            "part3_visible": ("first z = torch.randint",),
            "part4_spherical": ("/ d",),
            "part5_stability": ("torch.logsumexp",),
            "part6_hidden": ("underflows",),
        },
    ),
    Submission(
        "broken",
        {
            "part1_answer": "def kde_log_density(x, data, h)\n    return x",
            "part3_answer": (
                "def kde_sample(data, h, num_samples, generator=None):\n"
                "    n, d = data.shape\n"
                "    z = torch.randint(n, (num_samples,), generator=generator)\n"
                "    noise = torch.randn((num_samples, d), generator=generator, dtype=data.dtype)\n"
                "    return (data[z] + h * noise).T"
            ),
            "part4_answer": SOLVED,
            "part4_visible": "pass  # the student deleted the test",
            "part4_full_diag": "assert True",
            "part5_answer": (
                "def gmm_log_likelihood(x, weights, means, covariances):\n"
                "    raise ValueError('not sure what to do with the weights')"
            ),
            "part6_answer": (
                "def batch_log_likelihoods(x, weights, means, covariances):\n    while True:\n        pass"
            ),
        },
        full_marks=("part4_visible", "part4_full_diag", "part4_spherical"),
        feedback={
            "part1_visible": ("NameError",),
            "part3_visible": ("should have shape (5, 2)",),
            "part4_visible": ("full, weighted",),
            "part5_visible": ("ValueError", "not sure what to do"),
            "part6_visible": ("ran longer than",),
        },
    ),
]
