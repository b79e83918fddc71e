#!/usr/bin/env python3
"""Python inseq 0.7.1's `reagent` on SmolLM2-135M-Instruct, timed, for the README's ReAGent note.

Inseq's ReAGent draws replacement tokens among those with the same POS tag, which needs nltk's
tagger data (not reachable offline). Like rinseq's `reagent`, this run draws them uniformly from
the vocabulary: Inseq's POS table is replaced by one group holding every id. Logging at INFO
shows, for each attributed step, after how many probing steps every probe stopped.

Usage: inseq_reagent.py GGUF [MAX_NEW_TOKENS] [param=value ...]
  e.g. inseq_reagent.py ../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf 20 max_probe_steps=10
Prints `generated N params {...} seconds S` (the attribute call, generation included).
Needs inseq 0.7.1, torch, transformers, gguf and nltk (e.g. /work/venv/bin/python).
"""

import logging
import sys
import time
from pathlib import Path

import inseq
import torch
from inseq.attr.feat.ops.reagent_core.token_sampler import POSTagTokenSampler
from transformers import AutoModelForCausalLM, AutoTokenizer


def uniform_groups(*_args, tokenizer=None, **_kwargs):
    """One "POS group" with every id: uniform replacement over the vocabulary."""
    return {"ANY": list(range(tokenizer.vocab_size))}


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    gguf = Path(sys.argv[1])
    new_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    params = {k: int(v) for k, v in (a.split("=") for a in sys.argv[3:])}
    POSTagTokenSampler.build_pos_mapping_from_vocab = staticmethod(uniform_groups)
    hf = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, attn_implementation="eager"
    )
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = inseq.load_model(hf, "reagent", tokenizer=tok, **params)
    torch.manual_seed(0)
    start = time.time()
    model.attribute(
        "The capital of France is",
        generation_args={"max_new_tokens": new_tokens},
        show_progress=False,
    )
    print(f"generated {new_tokens} params {params} seconds {time.time() - start:.2f}", flush=True)


if __name__ == "__main__":
    main()
