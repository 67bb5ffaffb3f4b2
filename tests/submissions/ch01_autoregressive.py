"""Sample submissions for ch01_autoregressive: a cheater, common mistakes, a broken notebook."""

from tests.submissions import SOLVED, Submission

SUBMISSIONS = [
    Submission(
        "cheater",
        {
            "part1_answer": "from genlib.ngram import bigram_probs",
            "part2_answer": SOLVED,
            "part3_answer": (
                "import genlib.autoregressive.transformer as mine\n"
                "def causal_attention(q, k, v):\n"
                "    return mine.causal_attention(q, k, v)"
            ),
            "part4_answer": (
                "import genlib.autoregressive.pixelcnn\n"  # the reference under the student's name
                "pixelcnn_mask = genlib.autoregressive.pixelcnn.pixelcnn_mask"
            ),
            "part5_answer": (
                "from genlib.autoregressive.training import sample_sequences as _sample\n"
                "def sample_sequences(next_logits, num_sequences, length, temperature=1.0, generator=None):\n"
                "    return _sample(\n"
                "        next_logits, num_sequences, length, temperature=temperature, generator=generator\n"
                "    )"
            ),
        },
        full_marks=("part2_visible", "part2_hidden"),
        feedback={
            "part1_visible": ("genlib's own function",),
            "part3_visible": ("genlib.autoregressive.transformer.causal_attention", "reference solution"),
            "part4_hidden": ("genlib's own function",),
            "part5_statistics": ("genlib.autoregressive.training.sample_sequences",),
        },
    ),
    Submission(
        "mistakes",
        {
            # Flattens the batch: right for one sequence, but counts pairs across the ends of rows.
            "part1_answer": (
                "def bigram_probs(x, vocab_size, k=1.0):\n"
                "    flat = x.reshape(-1)\n"
                "    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)\n"
                "    ones = torch.ones(flat.numel() - 1, dtype=torch.float64)\n"
                "    counts.index_put_((flat[:-1], flat[1:]), ones, accumulate=True)\n"
                "    counts = counts + k\n"
                "    totals = counts.sum(1, keepdim=True)\n"
                "    return torch.where(totals > 0, counts / totals.clamp_min(1e-300), 1.0 / vocab_size)"
            ),
            # log of softmax: right for moderate logits, -inf once exp underflows.
            "part2_answer": (
                "def sequence_log_likelihood(logits, x):\n"
                "    probs = torch.softmax(logits, dim=-1)\n"
                "    return torch.log(probs.gather(-1, x.unsqueeze(-1)).squeeze(-1)).sum(-1)"
            ),
            # Masks with 0 instead of -inf: later positions still get weight.
            "part3_answer": (
                "def causal_attention(q, k, v):\n"
                "    T = q.shape[-2]\n"
                "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
                "    scores = scores * torch.ones(T, T).tril()\n"
                "    weights = torch.softmax(scores, dim=-1)\n"
                "    return weights @ v, weights"
            ),
            # Only the first row above the centre: right for 3x3 kernels, wrong from 5x5 on.
            "part4_answer": (
                "def pixelcnn_mask(kernel_size, mask_type):\n"
                "    c = kernel_size // 2\n"
                "    mask = torch.zeros(kernel_size, kernel_size)\n"
                "    mask[c - 1 : c] = 1\n"
                "    mask[c, :c] = 1\n"
                "    if mask_type == 'B':\n"
                "        mask[c, c] = 1\n"
                "    return mask"
            ),
            # torch.multinomial samples the right distribution, but not from the documented uniforms.
            "part5_answer": (
                "def sample_sequences(next_logits, num_sequences, length, temperature=1.0, generator=None):\n"
                "    x = torch.zeros((num_sequences, 0), dtype=torch.long)\n"
                "    for _ in range(length):\n"
                "        probs = torch.softmax(next_logits(x) / temperature, dim=-1)\n"
                "        token = torch.multinomial(probs, 1, generator=generator)\n"
                "        x = torch.cat([x, token], dim=1)\n"
                "    return x"
            ),
        },
        scores={"part1_visible": 1, "part2_visible": 1, "part4_visible": 1, "part5_statistics": 1},
        feedback={
            "part1_hidden": ("several short rows", "inside each row"),
            "part2_hidden": ("logits in the thousands", "log_softmax"),
            "part3_visible": ("-inf above the diagonal",),
            "part4_hidden": ("5x5, type A", "every row above the centre"),
            "part5_visible": ("torch.rand((B, 1)",),
        },
    ),
    Submission(
        "broken",
        {
            "part1_answer": "def bigram_probs(x, vocab_size, k=1.0)\n    return 0",
            "part2_answer": (
                "def sequence_log_likelihood(logits, x):\n"
                "    while True:\n"
                "        try:\n"
                "            pass\n"
                "        except Exception:\n"
                "            pass"
            ),
            "part3_answer": SOLVED,
            "part4_answer": (
                "def pixelcnn_mask(kernel_size, mask_type):\n    return torch.ones(kernel_size, kernel_size)"
            ),
            "part4_visible": "pass  # the student deleted the test",
            "part4_hidden": "assert True",
            "part5_answer": (
                "def sample_sequences(next_logits, num_sequences, length, temperature=1.0, generator=None):\n"
                "    import sys\n"
                "    sys.exit(1)"
            ),
        },
        full_marks=("part3_visible", "part3_hidden"),
        feedback={
            "part1_visible": ("NameError",),
            "part2_visible": ("ran longer than",),
            "part4_visible": ("3x3, type A",),
            "part5_visible": ("SystemExit",),
        },
    ),
]
