//! Generation algorithms on a fake model with hand-made logits: greedy, beam search (ordering,
//! length penalty, early stopping), sampling (top-k / top-p masks, seeded reproducibility),
//! repetition penalty, min_new_tokens, bad words, kwargs parsing.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};
use rinseq::generation::processors::{
    banned_ngram_tokens, repetition_penalty, top_k_filter, top_p_filter,
};
use rinseq::generation::{
    generate, GenerationConfig, GenerationError, GenerationInput, GenerationParams,
};
use rinseq::models::{
    DecodeStart, DecodingState, ForwardInput, ForwardOutput, Model, ModelKind, ModelSpec, Side,
    Taps,
};

/// Next-token log-probabilities (or logits) as a function of the unpadded history.
type Table = Arc<dyn Fn(&[u32]) -> Vec<f32> + Send + Sync>;

const EOS: u32 = 0;
const V: usize = 6;

struct Fake {
    spec: ModelSpec,
    table: Table,
}

struct FakeState {
    table: Table,
    rows: Vec<Vec<u32>>,
}

impl Fake {
    fn new(kind: ModelKind, table: Table) -> Self {
        let spec = ModelSpec {
            model_type: "fake".into(),
            kind,
            vocab_size: V,
            hidden_size: 4,
            num_layers: 1,
            encoder_layers: 0,
            num_heads: 1,
            max_positions: 64,
            bos_token_id: Some(1),
            eos_token_ids: vec![EOS],
            pad_token_id: Some(EOS),
            decoder_start_token_id: Some(EOS),
        };
        Fake { spec, table }
    }
}

impl Model for Fake {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }
    fn device(&self) -> &candle_core::Device {
        &candle_core::Device::Cpu
    }
    fn dtype(&self) -> candle_core::DType {
        candle_core::DType::F32
    }
    fn embed(&self, _side: Side, _ids: &Tensor) -> Result<Tensor> {
        candle_core::bail!("not used")
    }
    fn forward(&self, _input: &ForwardInput, _taps: &mut Taps) -> Result<ForwardOutput> {
        candle_core::bail!("not used")
    }
    fn tap_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn start_decoding(&self, start: &DecodeStart) -> Result<Box<dyn DecodingState + '_>> {
        let rows = match &start.encoder_ids {
            // Encoder-decoder: the history starts with the source, so the table can see it.
            Some(ids) => ids.to_vec2::<u32>()?,
            None => Vec::new(),
        };
        Ok(Box::new(FakeState {
            table: self.table.clone(),
            rows,
        }))
    }
}

impl DecodingState for FakeState {
    fn step(&mut self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let ids = ids.to_vec2::<u32>()?;
        let mask = mask.to_dtype(DType::U8)?.to_vec2::<u8>()?;
        if self.rows.len() < ids.len() {
            self.rows.resize(ids.len(), Vec::new());
        }
        let mut out = Vec::new();
        for (i, new) in ids.iter().enumerate() {
            let m = &mask[i][mask[i].len() - new.len()..];
            self.rows[i].extend(new.iter().zip(m).filter(|(_, &m)| m == 1).map(|(t, _)| *t));
            out.extend((self.table)(&self.rows[i]));
        }
        Tensor::from_vec(out, (ids.len(), V), &Device::Cpu)
    }
    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        self.rows = rows.iter().map(|&r| self.rows[r].clone()).collect();
        Ok(())
    }
}

fn params(model: &Fake, kwargs: &str) -> GenerationParams {
    let cfg = GenerationConfig::from_kwargs_json(kwargs).expect("kwargs");
    GenerationParams::resolve(&cfg, model.spec()).expect("params")
}

fn run(model: &Fake, prompts: Vec<Vec<u32>>, kwargs: &str) -> Vec<Vec<u32>> {
    generate(
        model,
        &GenerationInput::decoder_only(prompts),
        &params(model, kwargs),
    )
    .expect("generate")
}

/// Log-probabilities from probabilities (0 -> -inf).
fn ln(p: &[f32]) -> Vec<f32> {
    p.iter().map(|x| x.ln()).collect()
}

/// Always prefers `(last + 1) % V`, skipping EOS, unless the history is long.
fn counting() -> Table {
    Arc::new(|h: &[u32]| {
        let next = (h.last().copied().unwrap_or(0) as usize % (V - 1)) + 1;
        let mut l = vec![0.0; V];
        l[next] = 5.0;
        l[EOS as usize] = if h.len() >= 6 { 10.0 } else { 1.0 };
        l
    })
}

#[test]
fn greedy_follows_argmax_and_stops_at_eos() {
    let m = Fake::new(ModelKind::DecoderOnly, counting());
    // history [1] -> 2,3,4,5 (len 5), -> 1 (len 6) -> EOS.
    assert_eq!(
        run(&m, vec![vec![1]], r#"{"max_new_tokens": 10}"#),
        vec![vec![2, 3, 4, 5, 1, EOS]]
    );
    // max_new_tokens cuts it.
    assert_eq!(
        run(&m, vec![vec![1]], r#"{"max_new_tokens": 3}"#),
        vec![vec![2, 3, 4]]
    );
    // max_length counts the prompt.
    assert_eq!(
        run(&m, vec![vec![1, 2]], r#"{"max_length": 4}"#),
        vec![vec![3, 4]]
    );
}

#[test]
fn greedy_batch_is_left_padded_and_pads_finished_rows() {
    let m = Fake::new(ModelKind::DecoderOnly, counting());
    let out = run(
        &m,
        vec![vec![1, 2, 3, 4, 5], vec![3]],
        r#"{"max_new_tokens": 8}"#,
    );
    assert_eq!(out[0], vec![1, EOS]);
    assert_eq!(out[1], vec![4, 5, 1, 2, 3, EOS]);
}

#[test]
fn min_new_tokens_suppresses_eos() {
    let table: Table = Arc::new(|h: &[u32]| {
        let mut l = vec![0.0; V];
        l[EOS as usize] = 9.0;
        l[2 + h.len() % 3] = 3.0;
        l
    });
    let m = Fake::new(ModelKind::DecoderOnly, table);
    assert_eq!(
        run(&m, vec![vec![1]], r#"{"max_new_tokens": 5}"#),
        vec![vec![EOS]]
    );
    let out = run(
        &m,
        vec![vec![1]],
        r#"{"max_new_tokens": 5, "min_new_tokens": 3}"#,
    );
    assert_eq!(out, vec![vec![3, 4, 2, EOS]]);
    // min_length counts the prompt (1 + 2 tokens).
    let out = run(
        &m,
        vec![vec![1]],
        r#"{"max_new_tokens": 5, "min_length": 3}"#,
    );
    assert_eq!(out, vec![vec![3, 4, EOS]]);
}

#[test]
fn several_eos_ids_stop_generation() {
    let m = Fake::new(ModelKind::DecoderOnly, counting());
    let out = run(
        &m,
        vec![vec![1]],
        r#"{"max_new_tokens": 10, "eos_token_id": [0, 4]}"#,
    );
    assert_eq!(out, vec![vec![2, 3, 4]]);
}

#[test]
fn repetition_penalty_has_hf_semantics() {
    let mut s = vec![2.0, -1.0, 0.5, 4.0];
    repetition_penalty(&mut s, &[0, 1, 1], 2.0);
    assert_eq!(s, vec![1.0, -2.0, 0.5, 4.0]);
    // In generation: token 2 (in the prompt) barely beats 3; the penalty flips it.
    let table: Table = Arc::new(|_h: &[u32]| vec![-9.0, -9.0, 2.0, 1.5, -9.0, -9.0]);
    let m = Fake::new(ModelKind::DecoderOnly, table);
    assert_eq!(
        run(&m, vec![vec![2]], r#"{"max_new_tokens": 1}"#),
        vec![vec![2]]
    );
    // Step 2: both are penalised (2 -> 1.33, 3 -> 1.0), so 2 comes back.
    let out = run(
        &m,
        vec![vec![2]],
        r#"{"max_new_tokens": 2, "repetition_penalty": 1.5}"#,
    );
    assert_eq!(out, vec![vec![3, 2]]);
}

#[test]
fn no_repeat_ngram_and_bad_words() {
    assert_eq!(banned_ngram_tokens(&[1, 2, 3, 1, 2], 3), vec![3]);
    assert_eq!(banned_ngram_tokens(&[1, 2], 3), Vec::<u32>::new());
    let m = Fake::new(ModelKind::DecoderOnly, counting());
    // Forbid 3 and the bigram (4, 5).
    let out = run(
        &m,
        vec![vec![1]],
        r#"{"max_new_tokens": 3, "bad_words_ids": [[3], [4, 5]]}"#,
    );
    assert_eq!(out[0][0], 2);
    assert_ne!(out[0][1], 3);
    let out = run(
        &m,
        vec![vec![3]],
        r#"{"max_new_tokens": 2, "bad_words_ids": [[4, 5]]}"#,
    );
    assert_eq!(out[0][0], 4);
    assert_ne!(out[0][1], 5);
}

#[test]
fn top_k_and_top_p_masks() {
    let mut s = vec![1.0, 3.0, 2.0, 3.0, 0.0];
    top_k_filter(&mut s, 2);
    let inf = f32::NEG_INFINITY;
    assert_eq!(s, vec![inf, 3.0, inf, 3.0, inf]);
    let mut s = vec![1.0, 3.0, 2.0, 0.0];
    top_k_filter(&mut s, 2);
    assert_eq!(s, vec![inf, 3.0, 2.0, inf]);
    // probs 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps 0.5 + 0.3 (cum of the rest 0.2 <= 0.25).
    let mut s = ln(&[0.05, 0.5, 0.15, 0.3]);
    top_p_filter(&mut s, 0.75, 1);
    assert!(s[0] == inf && s[2] == inf && s[1].is_finite() && s[3].is_finite());
    // top_p 0.9 keeps 3 tokens; min_keep keeps at least that many.
    let mut s = ln(&[0.05, 0.5, 0.15, 0.3]);
    top_p_filter(&mut s, 0.9, 1);
    assert!(s[0] == inf && s[2].is_finite());
    let mut s = ln(&[0.05, 0.5, 0.15, 0.3]);
    top_p_filter(&mut s, 0.01, 2);
    assert_eq!(s.iter().filter(|v| v.is_finite()).count(), 2);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let table: Table = Arc::new(|_h: &[u32]| vec![-9.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    let m = Fake::new(ModelKind::DecoderOnly, table);
    let kw = |seed: u64| format!(r#"{{"max_new_tokens": 30, "do_sample": true, "seed": {seed}}}"#);
    let a = run(&m, vec![vec![1]], &kw(7));
    assert_eq!(a, run(&m, vec![vec![1]], &kw(7)));
    assert_ne!(a, run(&m, vec![vec![1]], &kw(8)));
    assert!(a[0].iter().all(|&t| t != EOS));
    // top_k = 1 sampling is greedy; a low temperature concentrates on the argmax.
    let m = Fake::new(ModelKind::DecoderOnly, counting());
    let greedy = run(&m, vec![vec![1]], r#"{"max_new_tokens": 6}"#);
    let k1 = run(
        &m,
        vec![vec![1]],
        r#"{"max_new_tokens": 6, "do_sample": true, "top_k": 1, "seed": 3}"#,
    );
    assert_eq!(greedy, k1);
    let cold = run(
        &m,
        vec![vec![1]],
        r#"{"max_new_tokens": 6, "do_sample": true, "temperature": 0.01}"#,
    );
    assert_eq!(greedy, cold);
}

/// Step 1: A=1 (p .5) or B=2 (p .4). After A: flat (4 tokens ~ .25). After B: C=3 (p .9).
/// Then EOS surely.
fn garden() -> Table {
    Arc::new(|h: &[u32]| {
        let start = h.iter().rposition(|&t| t == 5).map_or(0, |i| i + 1);
        let p: [f32; V] = match &h[start..] {
            [] => [0.01, 0.5, 0.4, 0.03, 0.03, 0.03],
            [1] => [0.0, 0.25, 0.25, 0.25, 0.25, 0.0],
            [2] => [0.02, 0.02, 0.02, 0.9, 0.02, 0.02],
            _ => [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        };
        ln(&p)
    })
}

#[test]
fn beam_search_finds_the_better_sequence() {
    let m = Fake::new(ModelKind::DecoderOnly, garden());
    let greedy = run(&m, vec![vec![5]], r#"{"max_new_tokens": 4}"#);
    assert_eq!(greedy, vec![vec![1, 1, EOS]]);
    // Beam: B C EOS has p .36 > A x EOS .125.
    let beam = run(
        &m,
        vec![vec![5]],
        r#"{"max_new_tokens": 4, "num_beams": 2}"#,
    );
    assert_eq!(beam, vec![vec![2, 3, EOS]]);
    // Batch of two: each item gets its own beams.
    let beam = run(
        &m,
        vec![vec![5], vec![4, 5]],
        r#"{"max_new_tokens": 4, "num_beams": 3}"#,
    );
    assert_eq!(beam, vec![vec![2, 3, EOS], vec![2, 3, EOS]]);
}

/// Step 1: EOS p .4 (short), or X=1 p .6 then a long tail of tokens of p .9 each, then EOS.
fn short_or_long() -> Table {
    Arc::new(|h: &[u32]| {
        let p: [f32; V] = match h.len() {
            1 => [0.4, 0.6, 0.0, 0.0, 0.0, 0.0],
            n if n < 6 => [0.05, 0.0, 0.9, 0.05, 0.0, 0.0],
            _ => [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        };
        ln(&p)
    })
}

#[test]
fn beam_length_penalty_trades_length_for_probability() {
    let m = Fake::new(ModelKind::DecoderOnly, short_or_long());
    // Long: 1 2 2 2 2 EOS, log p = ln .6 + 4 ln .9 = -0.932, 6 tokens -> -0.155 per token;
    // short: EOS, ln .4 = -0.916 over 1 token.
    let kw = |lp: f32| {
        format!(
            r#"{{"max_new_tokens": 8, "num_beams": 2, "length_penalty": {lp}, "early_stopping": "never"}}"#
        )
    };
    assert_eq!(
        run(&m, vec![vec![5]], &kw(1.0)),
        vec![vec![1, 2, 2, 2, 2, EOS]]
    );
    assert_eq!(run(&m, vec![vec![5]], &kw(0.0)), vec![vec![EOS]]);
    // early_stopping=true stops once num_beams hypotheses are done: the short one (step 1) and
    // 1 EOS (step 2), before the long one exists.
    let out = run(
        &m,
        vec![vec![5]],
        r#"{"max_new_tokens": 8, "num_beams": 2, "early_stopping": true, "length_penalty": 0.0}"#,
    );
    assert_eq!(out, vec![vec![EOS]]);
}

#[test]
fn encoder_decoder_starts_from_decoder_start() {
    // The fake sees the source then the decoder tokens; it copies the source's last token.
    let table: Table = Arc::new(|h: &[u32]| {
        let mut l = vec![0.0; V];
        let src_last = h[1] as usize;
        l[if h.len() < 5 { src_last } else { EOS as usize }] = 5.0;
        l
    });
    let m = Fake::new(ModelKind::EncoderDecoder, table);
    let p = params(&m, r#"{"max_new_tokens": 6}"#);
    let input = GenerationInput::encoder_decoder(vec![vec![1, 3]]);
    // history = [1, 3, start=0] -> 3, 3 (len 5) -> EOS
    assert_eq!(generate(&m, &input, &p).unwrap(), vec![vec![3, 3, EOS]]);
    let p = params(
        &m,
        r#"{"max_new_tokens": 6, "forced_bos_token_id": 4, "forced_eos_token_id": 0}"#,
    );
    assert_eq!(generate(&m, &input, &p).unwrap(), vec![vec![4, 3, EOS]]);
    let p = params(&m, r#"{"max_new_tokens": 3, "forced_eos_token_id": 0}"#);
    let input = GenerationInput::encoder_decoder(vec![vec![1, 2]]);
    assert_eq!(generate(&m, &input, &p).unwrap(), vec![vec![2, 2, EOS]]);
    // Decoder-only input on an encoder-decoder model is an error.
    let err = generate(&m, &GenerationInput::decoder_only(vec![vec![1]]), &p).unwrap_err();
    assert!(err.to_string().contains("needs source ids"), "{err}");
}

#[test]
fn kwargs_are_checked() {
    let err = GenerationConfig::from_kwargs_json(r#"{"max_new_token": 3}"#).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GenerationError::UnknownKwarg { .. }));
    assert!(
        msg.contains("'max_new_token'") && msg.contains("max_new_tokens, "),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    let err = GenerationConfig::from_kwargs_json(r#"{"num_beams": "four"}"#).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid generation kwargs"),
        "{err}"
    );
    let err = GenerationConfig::from_kwargs_json("[1]").unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
    let cfg = GenerationConfig::from_kwargs_json(
        r#"{"early_stopping": "never", "eos_token_id": [1, 2]}"#,
    )
    .unwrap();
    assert!(cfg.early_stopping.is_some());
    assert!(GenerationConfig::from_kwargs_json(r#"{"early_stopping": "sometimes"}"#).is_err());
    let m = Fake::new(ModelKind::DecoderOnly, counting());
    let bad =
        GenerationConfig::from_kwargs_json(r#"{"do_sample": true, "temperature": 0.0}"#).unwrap();
    let err = GenerationParams::resolve(&bad, m.spec()).unwrap_err();
    assert!(err.to_string().contains("'temperature'"), "{err}");
}

#[test]
fn model_defaults_merge_under_kwargs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("generation_config.json"),
        r#"{"num_beams": 4, "max_length": 512, "bad_words_ids": [[7]], "transformers_version": "5.0", "top_k": null}"#,
    )
    .unwrap();
    let model = GenerationConfig::from_model_dir(dir.path()).unwrap();
    assert_eq!(model.num_beams, Some(4));
    assert_eq!(model.bad_words_ids, Some(vec![vec![7]]));
    let user =
        GenerationConfig::from_kwargs_json(r#"{"num_beams": 1, "max_new_tokens": 5}"#).unwrap();
    let merged = model.merged_with(&user);
    assert_eq!(merged.num_beams, Some(1));
    assert_eq!(merged.max_length, Some(512));
    assert_eq!(merged.max_new_tokens, Some(5));
    let m = Fake::new(ModelKind::DecoderOnly, counting());
    let p = GenerationParams::resolve(&merged, m.spec()).unwrap();
    // max_new_tokens wins over max_length; default is prompt + 20.
    assert_eq!(p.max_total_length(3, 64), 8);
    let p = GenerationParams::resolve(&GenerationConfig::default(), m.spec()).unwrap();
    assert_eq!(p.max_total_length(3, 64), 23);
    assert_eq!(p.max_total_length(50, 64), 64);
    assert_eq!(p.top_k, 50);
    // No generation_config.json: config.json's generation keys.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "x", "num_beams": 2}"#,
    )
    .unwrap();
    assert_eq!(
        GenerationConfig::from_model_dir(dir.path())
            .unwrap()
            .num_beams,
        Some(2)
    );
}
