#!/usr/bin/env python3
"""Python inseq side of `cargo bench -p rinseq --bench attribute_context`: one whole
`attribute-context` process, as `inseq attribute-context` runs it (imports, model load, CTI, CCI,
the console view, the JSON file), on SmolLM2-135M-Instruct from the same Q4_1 GGUF as rinseq
(dequantized to float32 by transformers; `inseq attribute-context` cannot take a GGUF path, so
the model is loaded here and handed to Inseq's own `attribute_context_with_model`).

Usage: inseq_attribute_context.py GGUF ARGS_JSON SAVE_PATH
ARGS_JSON: AttributeContextArgs fields, e.g. '{"input_current_text": "...", ...}'.
Needs inseq 0.7.1, torch, transformers and gguf (e.g. /work/venv/bin/python).
"""

import json
import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    gguf, args_json, save_path = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3]
    import inseq
    import torch
    from inseq.commands.attribute_context.attribute_context import attribute_context_with_model
    from inseq.commands.attribute_context.attribute_context_args import AttributeContextArgs
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, attn_implementation="eager"
    )
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    fields = json.loads(args_json)
    model = inseq.load_model(hf, fields.get("attribution_method", "saliency"), tokenizer=tok)
    args = AttributeContextArgs(model_name_or_path="smollm2-135m", save_path=save_path, **fields)
    attribute_context_with_model(args, model)


if __name__ == "__main__":
    main()
