//! The real SmolLM2-135M-Instruct Q4_1 GGUF (tokenizer from metadata, dequantized f32 weights)
//! against transformers. Located by `RINSEQ_SMOLLM2_GGUF` or `../shared/models/` from the repo
//! root; prints SKIPPED when absent.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use rinseq::models::load::{load_model, ModelFiles};
use rinseq::models::ops;
use rinseq::models::{DecodeStart, ForwardInput, LogitPositions, Side, SideInput, Taps};

use super::{max_abs, max_of, root};

fn gguf() -> Option<PathBuf> {
    let p = std::env::var_os("RINSEQ_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: SmolLM2 GGUF not found at {} (set RINSEQ_SMOLLM2_GGUF)",
            p.display()
        );
        None
    }
}

fn input(embeds: &Tensor, at: LogitPositions) -> ForwardInput {
    let (b, t, _) = embeds.dims3().unwrap();
    let mask = Tensor::ones((b, t), DType::U8, &Device::Cpu).unwrap();
    ForwardInput {
        encoder: None,
        decoder: SideInput {
            embeds: embeds.clone(),
            mask,
        },
        logits_at: at,
    }
}

#[test]
fn smollm2_gguf_matches_transformers() {
    let Some(path) = gguf() else { return };
    let t0 = Instant::now();
    let files = ModelFiles::detect(&path).unwrap();
    assert!(matches!(files, ModelFiles::Gguf(_)));
    let loaded = load_model(&files, DType::F32).unwrap();
    println!("load + dequantize: {:?}", t0.elapsed());
    let tok = &loaded.tokenizer;
    let ids = tok.encode("The capital of France is", true).unwrap();
    assert_eq!(ids, vec![504, 3575, 282, 4649, 314]);
    assert_eq!(tok.encode("<|im_start|>user", true).unwrap()[0], 1);
    assert_eq!(tok.decode(&ids, false).unwrap(), "The capital of France is");
    assert_eq!(
        (loaded.spec.bos_token_id, loaded.spec.eos_token_ids.clone()),
        (Some(1), vec![2])
    );

    let dir = root().join("tests/fixtures/reference");
    let reference =
        candle_core::safetensors::load(dir.join("smollm2.safetensors"), &Device::Cpu).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("smollm2.json")).unwrap()).unwrap();
    let m = &loaded.model;
    let ids_t = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let emb = m.embed(Side::Decoder, &ids_t).unwrap();
    let t1 = Instant::now();
    let logits = m
        .forward(&input(&emb, LogitPositions::Last), &mut Taps::none())
        .unwrap()
        .logits
        .flatten_all()
        .unwrap();
    println!("forward (5 tokens): {:?}", t1.elapsed());
    let d = max_abs(&logits, &reference["prompt.last_logits"]);
    println!("smollm2 last logits max |Δ| vs transformers: {d:.2e}");
    assert!(d < 2e-3, "last logits: {d}");

    // Greedy decoding with the KV cache.
    let mut state = m
        .start_decoding(&DecodeStart {
            encoder_ids: None,
            encoder_mask: None,
        })
        .unwrap();
    let mut next = ids_t.clone();
    let mut all = ids.clone();
    let mut new = vec![];
    let t2 = Instant::now();
    for step in 0..10 {
        let mask = Tensor::ones((1, all.len()), DType::U8, &Device::Cpu).unwrap();
        let l = state.step(&next, &mask).unwrap();
        if step == 0 {
            let d = max_abs(&l.flatten_all().unwrap(), &logits);
            assert!(d < 1e-4, "decoding vs forward: {d}");
        }
        let id = l.argmax(1).unwrap().to_vec1::<u32>().unwrap()[0];
        new.push(id);
        all.push(id);
        next = Tensor::new(&[[id]], &Device::Cpu).unwrap();
    }
    println!("greedy 10 tokens (cached): {:?}", t2.elapsed());
    let want: Vec<u32> = serde_json::from_value(json["prompt"]["greedy_new_ids"].clone()).unwrap();
    assert_eq!(new, want);

    // Input-embedding gradient of log p(" Berlin").
    let gids = reference["grad.input_ids"].to_dtype(DType::U32).unwrap();
    let var = Var::from_tensor(&m.embed(Side::Decoder, &gids).unwrap()).unwrap();
    let t3 = Instant::now();
    let logits = m
        .forward(
            &input(var.as_tensor(), LogitPositions::Last),
            &mut Taps::none(),
        )
        .unwrap()
        .logits;
    let target = json["grad"]["target_id"].as_u64().unwrap() as usize;
    let lp = ops::log_softmax_last(&logits.flatten_all().unwrap())
        .unwrap()
        .get(target)
        .unwrap();
    let grads = lp.backward().unwrap();
    println!("forward + backward (20 tokens): {:?}", t3.elapsed());
    let g = grads.get(var.as_tensor()).expect("graph was cut");
    let want = &reference["grad.grad"];
    let rel = max_abs(g, want) / max_of(want);
    println!(
        "smollm2 grad max |Δ| / max |g| vs transformers: {rel:.2e}; log p {}",
        lp.to_scalar::<f32>().unwrap()
    );
    assert!(rel < 1e-2, "gradient: {rel}");
}
