"""Tiny random T5 models + references for tests/models_encoder_decoder/t5.rs.

Run from the repository root with the fixture venv (see tests/fixtures/README.md):
    /work/venv/bin/python tests/models_encoder_decoder/make_t5.py
Two variants: `relu` (original T5: ReLU, decoder output scaled by d_model^-0.5) and `gated`
(T5 v1.1 / Flan: gated-gelu, tie_word_embeddings=false, so no output scaling). Small bucket
counts make the logarithmic relative-position buckets appear at these lengths.

`logits_f64` is the same forward in float64 with T5LayerNorm's variance computed in float64 too
(transformers always computes it in float32), so that the Rust f64 forward can be checked to ~1e-12.
"""
import copy

import torch
from safetensors.torch import save_file
from transformers import T5Config, T5ForConditionalGeneration

OUT = "tests/models_encoder_decoder/t5"
torch.manual_seed(0)


def make(name, ff, tie):
    cfg = T5Config(vocab_size=50, d_model=16, d_kv=6, d_ff=20, num_layers=2, num_decoder_layers=2,
                   num_heads=2, relative_attention_num_buckets=8, relative_attention_max_distance=12,
                   feed_forward_proj=ff, tie_word_embeddings=tie, dropout_rate=0.0,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    cfg._attn_implementation = "eager"
    m = T5ForConditionalGeneration(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "layer_norm" in n:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.35 * torch.randn(p.shape, generator=g))
    d = f"{OUT}/{name}"
    m.save_pretrained(d)
    src = torch.tensor([[5, 9, 3, 17, 22, 8, 31, 4, 40, 11, 12, 13, 14, 1],
                        [7, 6, 25, 33, 2, 19, 27, 44, 3, 9, 10, 1, 0, 0]])
    src_mask = (torch.arange(14)[None, :] < torch.tensor([[14], [12]])).long()
    tgt = torch.tensor([[0, 4, 8, 15, 16, 23, 42, 2, 3, 1], [0, 9, 9, 30, 31, 32, 5, 6, 7, 8]])
    emb = m.get_input_embeddings()
    src_e = emb(src).detach().requires_grad_(True)
    tgt_e = emb(tgt).detach().requires_grad_(True)
    out = m(inputs_embeds=src_e, attention_mask=src_mask, decoder_inputs_embeds=tgt_e,
            output_attentions=True, output_hidden_states=True)
    lp = torch.log_softmax(out.logits[:, -1], -1)
    target = lp.argmax(-1)
    lp.gather(1, target[:, None]).sum().backward()
    ref = {"src_ids": src, "src_mask": src_mask, "tgt_ids": tgt, "logits": out.logits,
           "grad.encoder": src_e.grad, "grad.decoder": tgt_e.grad, "target": target}
    for k, a in enumerate(out.encoder_attentions):
        ref[f"attn.encoder.block.{k}.layer.0.SelfAttention"] = a
    for k, (s, c) in enumerate(zip(out.decoder_attentions, out.cross_attentions)):
        ref[f"attn.decoder.block.{k}.layer.0.SelfAttention"] = s
        ref[f"attn.decoder.block.{k}.layer.1.EncDecAttention"] = c
    for k, h in enumerate(out.encoder_hidden_states):
        ref[f"hidden.encoder.{k}"] = h
    for k, h in enumerate(out.decoder_hidden_states):
        ref[f"hidden.decoder.{k}"] = h
    ref["logits_f64"] = logits_f64(m, src, src_mask, tgt)
    save_file({k: v.detach().contiguous() for k, v in ref.items()}, f"{d}/reference.safetensors")


def logits_f64(m, src, src_mask, tgt):
    from transformers.models.t5 import modeling_t5

    def norm64(self, h):
        var = h.pow(2).mean(-1, keepdim=True)
        return self.weight * (h * torch.rsqrt(var + self.variance_epsilon))

    original = modeling_t5.T5LayerNorm.forward
    modeling_t5.T5LayerNorm.forward = norm64
    m64 = copy.deepcopy(m).double()
    with torch.no_grad():
        out = m64(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt).logits
    modeling_t5.T5LayerNorm.forward = original
    return out


make("relu", "relu", True)
make("gated", "gated-gelu", False)
