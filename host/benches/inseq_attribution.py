#!/usr/bin/env python3
"""Python inseq side of `cargo bench -p rinseq --bench attribution`.

Loads SmolLM2-135M-Instruct from the same Q4_1 GGUF as the Rust bench (dequantized to float32 by
transformers, eager attention as `inseq.load_model` would pick) and times, on CPU, one attribution
method: `model.attribute(text, generated_texts=generated, step_scores=[])` with the target forced,
after one untimed warm-up call. Loading and generation are not timed. The peak resident memory of
the whole process (`ru_maxrss`) is read at the end.

Usage: inseq_attribution.py GGUF --method NAME --text TEXT --generated TEXT [--reps N]
       [--threads N] [--n-steps N]
Prints one JSON object on stdout: {"method", "times_s", "min_s", "median_s", "peak_mb",
"target_ids", "threads", "versions"} (everything else the libraries print goes to stderr).
Needs inseq 0.7.1, torch, transformers and gguf (e.g. /work/venv/bin/python).
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--method", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--generated", required=True, help="the forced generated text (prompt included)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--n-steps", type=int, default=50, help="integrated_gradients path points")
    a = ap.parse_args()

    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    with contextlib.redirect_stdout(sys.stderr):
        res = run(a)
    print(json.dumps(res))


def run(a: argparse.Namespace) -> dict:
    from importlib.metadata import version

    import inseq
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    gguf = Path(a.gguf).resolve()
    hf = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, attn_implementation="eager"
    )
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = inseq.load_model(hf, a.method, tokenizer=tok)
    kwargs = {"n_steps": a.n_steps} if a.method == "integrated_gradients" else {}

    def call():
        return model.attribute(
            a.text,
            generated_texts=a.generated,
            step_scores=[],
            show_progress=False,
            **kwargs,
        )

    out = call()  # warm-up
    times = []
    for _ in range(a.reps):
        t = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t)
    target_ids = [t.id for t in out.sequence_attributions[0].target]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "method": a.method,
        "times_s": times,
        "min_s": min(times),
        "median_s": statistics.median(times),
        "peak_mb": peak_kb / 1024.0,
        "target_ids": target_ids,
        "threads": torch.get_num_threads(),
        "versions": {
            "inseq": version("inseq"),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }


if __name__ == "__main__":
    main()
