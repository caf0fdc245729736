"""Shared helpers: token streams, the perplexity windowing, the unigram baseline."""
import math

import numpy as np
import torch
import torch.nn.functional as F

WINDOW = 128


def load_stream(sp, path):
    """The token stream of a text file under the model's convention (specs.py): "lines" is
    [BOS] + sp.encode(line) for every non-empty line (document), concatenated in file order; "whole" is
    sp.encode(the whole file as one string), no BOS."""
    import specs
    if specs.spec()["convention"] == "whole":
        with open(path, encoding="utf-8", newline="") as f:
            return np.asarray(sp.encode(f.read()), dtype=np.int64)
    ids = []
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            ids.append(sp.bos_id())
            ids.extend(sp.encode(line))
    return np.asarray(ids, dtype=np.int64)


def windows(stream, window=WINDOW):
    """Non-overlapping windows; the last partial one is kept if it has >= 2 tokens."""
    out = [stream[i:i + window] for i in range(0, len(stream), window)]
    if len(out[-1]) < 2:
        out = out[:-1]
    return out


@torch.no_grad()
def perplexity(model, stream, window=WINDOW, batch=32):
    """exp(mean NLL) over every token but each window's first; no context across windows.

    Returns (ppl, n_scored_tokens, total_nll).
    """
    model.eval()
    ws = windows(stream, window)
    total, count = 0.0, 0
    full = [w for w in ws if len(w) == window]
    rest = [w for w in ws if len(w) != window]
    groups = [full[i:i + batch] for i in range(0, len(full), batch)] + [[w] for w in rest]
    for g in groups:
        x = torch.from_numpy(np.stack(g))
        b, n = x.shape
        am = torch.ones(b, n, dtype=torch.long)
        pos = torch.arange(n).unsqueeze(0).expand(b, n)
        logits = model(x, am, pos)[0]
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).double(),
                              x[:, 1:].reshape(-1), reduction="sum")
        total += nll.item()
        count += b * (n - 1)
    return math.exp(total / count), count, total


def scored_targets(stream, window=WINDOW):
    return np.concatenate([w[1:] for w in windows(stream, window)])


def unigram_perplexity(train_stream, eval_stream, vocab_size, window=WINDOW):
    """Add-one smoothed unigram estimated on the train stream, scored on the same tokens as perplexity()."""
    counts = np.bincount(train_stream, minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    tgt = scored_targets(eval_stream, window)
    return math.exp(-logp[tgt].mean()), len(tgt)
