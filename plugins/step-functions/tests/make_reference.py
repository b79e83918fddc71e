"""Writes reference.json: Inseq 0.7.1's own step functions evaluated on fixed logits.

Run with the Inseq 0.7.1 + torch environment:  python make_reference.py
(from any directory; the JSON is written next to this script).

The step functions are Inseq's real code (`inseq.attr.step_functions`), called with a minimal stand-in
for the attribution model whose forward output *is* the logits tensor; the contrastive plumbing
(`_setup_contrast_args`, `_get_contrast_inputs`) is replaced by stand-ins that hand over the given
contrast logits and contrast target ids, which is what the rinseq host passes to the plugins.
Everything runs in float64 on logits that are exactly representable in float32 (the plugins receive
f32 logits), and gradients come from torch autograd.

`kl_divergence` with any filtering returns NaN in Inseq 0.7.1 (`F.kl_div(..., log_target=True)`
computes exp(-inf) * (-inf - -inf) = 0 * nan on masked entries). The cases record that value as
`inseq_scores` and, as `scores`, the intended value: the same code with masked entries dropped
from the sum (0 * log 0 = 0), which is what rinseq implements.
"""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from inseq.attr import step_functions as sf
from inseq.utils import filter_logits

torch.set_default_dtype(torch.float64)


def f32(rows):
    """Rounds to float32 and back, so that both sides see identical inputs."""
    return torch.tensor(rows, dtype=torch.float32).to(torch.float64)


class Model:
    """Stand-in attribution model: the forward output is the logits tensor itself."""

    is_encoder_decoder = False

    def __init__(self, forwards=()):
        self._forwards = list(forwards)
        self.formatter = SimpleNamespace(convert_args_to_batch=lambda args: None)

    def output2logits(self, forward_output):
        return forward_output

    def train(self):
        return self

    def get_forward_output(self, batch, use_embeddings=False):
        return self._forwards.pop(0)


def step_args(model, logits, target_ids, is_attributed_fn=False):
    return SimpleNamespace(
        attribution_model=model,
        forward_output=logits,
        target_ids=torch.as_tensor(target_ids),
        is_attributed_fn=is_attributed_fn,
    )


CONTRAST = {}


def fake_setup_contrast_args(args, **kwargs):
    return step_args(args.attribution_model, CONTRAST["logits"], CONTRAST["target_ids"], args.is_attributed_fn)


def fake_get_contrast_inputs(args, **kwargs):
    # kl_divergence_fn then calls model.get_forward_output(batch), which returns the contrast logits.
    args.attribution_model._forwards.append(CONTRAST["logits"])
    return SimpleNamespace(batch=None, target_ids=None)


sf._setup_contrast_args = fake_setup_contrast_args
sf._get_contrast_inputs = fake_get_contrast_inputs


def tolist(t):
    return None if t is None else t.detach().tolist()


def run(fn, z, y, zc=None, yc=None, dropout=(), params=None, grads=True, intended=None):
    """Evaluates `fn` (an Inseq step function) and its gradients w.r.t. the logits."""
    params = dict(params or {})
    z = z.clone().requires_grad_(grads)
    if zc is not None:
        zc = zc.clone().requires_grad_(grads)
        CONTRAST["logits"], CONTRAST["target_ids"] = zc, torch.tensor(yc)
    model = Model([d.clone() for d in dropout])
    out = fn(step_args(model, z, y), **params)
    case = {"inseq_scores": tolist(out.to(torch.float64))}
    if intended is not None:
        out = intended(z, zc, **params)
    case["scores"] = tolist(out)
    if grads:
        gz, gzc = torch.autograd.grad(out.sum(), [z] + ([zc] if zc is not None else []), allow_unused=True) + (
            (None,) if zc is None else ()
        )
        case["grad_logits"] = tolist(gz) if gz is not None else tolist(torch.zeros_like(z))
        if zc is not None:
            case["grad_contrast_logits"] = tolist(gzc) if gzc is not None else tolist(torch.zeros_like(zc))
    return case


def kl_intended(z, zc, top_k=0, top_p=1.0, min_tokens_to_keep=1):
    """kl_divergence_fn with 0 * log 0 = 0 on the masked entries (Inseq's code gives NaN there)."""
    fz, fzc = filter_logits(z, zc, top_p=top_p, top_k=top_k, min_tokens_to_keep=min_tokens_to_keep)
    lp, lq = F.log_softmax(fz, dim=-1), F.log_softmax(fzc, dim=-1)
    kept = torch.isfinite(fz)
    terms = torch.where(kept, lp.exp() * (lp - lq.masked_fill(~kept, 0.0)).masked_fill(~kept, 0.0), 0.0)
    return terms.sum(-1)


Z = f32(
    [
        [1.5, -0.25, 2.125, 0.75, -1.0, 3.0, 0.5],
        [0.0, 2.5, -1.5, 1.25, 0.625, -0.375, 1.875],
    ]
)
ZC = f32(
    [
        [0.25, 1.75, -0.5, 2.5, 0.125, 1.0, -2.0],
        [1.125, -0.75, 2.0, 0.5, 3.25, -1.25, 0.375],
    ]
)
Y, YC = [2, 5], [5, 4]
G = torch.Generator().manual_seed(0)
DROPOUT = [Z + 0.25 * torch.randn(Z.shape, generator=G) for _ in range(5)]
DROPOUT = [f32(d.tolist()) for d in DROPOUT]
INPUTS = {
    "logits": Z.tolist(),
    "target_ids": Y,
    "contrast_logits": ZC.tolist(),
    "contrast_target_ids": YC,
    "dropout_logits": [d.tolist() for d in DROPOUT],
}

cases = []


def add(name, fn, params=None, **kw):
    case = {"function": name, "params": params or {}}
    case.update(run(fn, Z, Y, ZC, YC, params=params, **kw))
    cases.append(case)


add("contrast_logits", sf.contrast_logits_fn)
for lp in (False, True):
    add("contrast_prob", sf.contrast_prob_fn, {"logprob": lp})
    add("contrast_prob_diff", sf.contrast_prob_diff_fn, {"logprob": lp})
add("contrast_logits_diff", sf.contrast_logits_diff_fn)
add("pcxmi", sf.pcxmi_fn)
add("in_context_pvi", sf.in_context_pvi_fn)
for top_k, top_p, keep in [(0, 1.0, 1), (2, 1.0, 1), (0, 0.9, 1), (3, 0.8, 1), (0, 0.5, 3), (1, 1.0, 2), (7, 0.95, 1)]:
    add(
        "kl_divergence",
        sf.kl_divergence_fn,
        {"top_k": top_k, "top_p": top_p, "min_tokens_to_keep": keep},
        intended=kl_intended,
    )

# mc_dropout_prob_avg: the noisy samples are the host's dropout forwards, constants for the gradient.
for n, lp in [(5, False), (5, True), (3, False)]:
    case = {"function": "mc_dropout_prob_avg", "params": {"n_mcd_steps": n, "logprob": lp}, "n_dropout": n}
    case.update(run(sf.mc_dropout_prob_avg_fn, Z, Y, dropout=DROPOUT[:n], params={"n_mcd_steps": n, "logprob": lp}))
    cases.append(case)

# top_p_size: Inseq counts over the whole batch; rinseq counts per row (Inseq's value for batch 1).
for top_p in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
    per_row = [sf.top_p_size_fn(step_args(Model(), Z[i : i + 1], Y[i : i + 1]), top_p=top_p).item() for i in range(2)]
    whole = sf.top_p_size_fn(step_args(Model(), Z, Y), top_p=top_p).tolist()
    cases.append(
        {"function": "top_p_size", "params": {"top_p": top_p}, "scores": per_row, "inseq_scores": whole}
    )

# filter_logits masks (inseq tests/utils/test_torch_utils.py::test_filter_logits and the rows above).
FILTER_Z = f32([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
FILTER_ZC = f32([[15, 13, 11, 9, 7], [15, 13, 11, 9, 7]])
filter_cases = []
for zz, zc in [(FILTER_Z, None), (FILTER_Z, FILTER_ZC), (Z, None), (Z, ZC)]:
    for top_k, top_p, keep in [(2, 1.0, 1), (0, 0.9, 1), (2, 0.9, 1), (0, 0.5, 2), (3, 0.7, 1), (0, 0.0, 1)]:
        out = filter_logits(zz, zc, top_p=top_p, top_k=top_k, min_tokens_to_keep=keep)
        fz = out[0] if zc is not None else out
        filter_cases.append(
            {
                "logits": zz.tolist(),
                "contrast_logits": None if zc is None else zc.tolist(),
                "top_k": top_k,
                "top_p": top_p,
                "min_tokens_to_keep": keep,
                "kept": torch.isfinite(fz).tolist(),
            }
        )

# The KL of the test_filter_logits merged case (top_k=2 keeps indices 0 and 1).
case = {"function": "kl_divergence", "params": {"top_k": 2}}
CONTRAST["logits"] = FILTER_ZC[:1]
case.update(
    run(sf.kl_divergence_fn, FILTER_Z[:1], [0], FILTER_ZC[:1], [0], params={"top_k": 2}, intended=kl_intended)
)
case["inputs"] = {"logits": FILTER_Z[:1].tolist(), "target_ids": [0], "contrast_logits": FILTER_ZC[:1].tolist()}
cases.append(case)


def clean(x):
    """NaN is not JSON: write it as null."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, list):
        return [clean(v) for v in x]
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    return x


out = {
    "generated_by": f"make_reference.py with inseq 0.7.1 (torch {torch.__version__}), float64",
    "inputs": INPUTS,
    "cases": cases,
    "filter_cases": filter_cases,
}
path = Path(__file__).with_name("reference.json")
path.write_text(json.dumps(clean(out), indent=1) + "\n")
print(f"wrote {len(cases)} cases and {len(filter_cases)} filter cases to {path}")
