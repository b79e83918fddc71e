#!/usr/bin/env python3
"""PyTorch side of `cargo bench -p rinseq --bench model`.

Loads SmolLM2-135M-Instruct from the same Q4_1 GGUF as the Rust bench, dequantized to float32 by
transformers, and times on CPU:
  * forward + backward: gradient of the last-position log-prob of the top-1 token with respect to
    the input embeddings, on the same 20-token input ids (given on the command line);
  * greedy generation (KV cache), tokens per second.

Usage: torch_model.py GGUF OUT_JSON --ids 1,2,3 --reps N --new-tokens N [--threads N]
Writes {"fwd_bwd_ms": {"min", "median"}, "gen_tok_s": {"max", "median"}, "versions": {...}}.
Needs torch, transformers and gguf (e.g. /work/venv/bin/python).
"""

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--ids", required=True, help="comma-separated input ids")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--new-tokens", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    gguf = Path(a.gguf).resolve()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ids = torch.tensor([[int(x) for x in a.ids.split(",")]])
    mask = torch.ones_like(ids)
    emb_layer = model.get_input_embeddings()

    def fwd_bwd() -> None:
        e = emb_layer(ids).detach().clone().requires_grad_(True)
        logits = model(inputs_embeds=e, attention_mask=mask).logits
        lp = torch.log_softmax(logits[0, -1].float(), dim=-1)
        lp[int(lp.argmax())].backward()
        assert e.grad is not None

    def gen() -> float:
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=a.new_tokens,
                                 min_new_tokens=a.new_tokens, do_sample=False, num_beams=1,
                                 pad_token_id=model.config.eos_token_id)
        dt = time.perf_counter() - t
        return (out.shape[1] - ids.shape[1]) / dt

    fwd_bwd()
    gen()  # warm-up
    fb, tok = [], []
    for _ in range(a.reps):  # interleaved repetitions
        t = time.perf_counter()
        fwd_bwd()
        fb.append((time.perf_counter() - t) * 1e3)
        tok.append(gen())
    res = {
        "fwd_bwd_ms": {"min": min(fb), "median": statistics.median(fb)},
        "gen_tok_s": {"max": max(tok), "median": statistics.median(tok)},
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
