//! Tiny random T5 models (ReLU with scaled outputs, gated-GELU without) against transformers 5.24
//! references made by `make_t5.py`: logits with a padded source, attention, hidden states, input
//! gradients on both sides, KV-cached decoding, and f64 finite differences.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rinseq::models::backward::Streams;
use rinseq::models::registry::{self, BuildArgs};
use rinseq::models::t5::layers::bucket;
use rinseq::models::tokenizer::SpecialTokens;
use rinseq::models::weights::{SafetensorsSource, Weights};
use rinseq::models::{
    ops, DecodeStart, ForwardInput, LogitPositions, Model, Side, SideInput, Taps,
};

use super::{max_abs, max_of, root};

fn load(name: &str, dtype: DType) -> (Box<dyn Model>, HashMap<String, Tensor>) {
    let dir = root().join("tests/models_encoder_decoder/t5").join(name);
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    let src = SafetensorsSource::open_folder(&dir).unwrap();
    let weights = Weights::new(Box::new(src), dtype, Device::Cpu);
    let args = BuildArgs {
        model_type: "t5",
        config: &config,
        weights: &weights,
        special: &SpecialTokens::default(),
    };
    let model = (registry::find("t5").unwrap().build)(&args).unwrap();
    let reference =
        candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    (model, reference)
}

fn input(
    m: &dyn Model,
    r: &HashMap<String, Tensor>,
    dtype: DType,
) -> (Tensor, Tensor, Tensor, Tensor) {
    let ids = |k: &str| r[k].to_dtype(DType::U32).unwrap();
    let src = m
        .embed(Side::Encoder, &ids("src_ids"))
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let tgt = m
        .embed(Side::Decoder, &ids("tgt_ids"))
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let mask = r["src_mask"].to_dtype(DType::U8).unwrap();
    let tgt_mask = Tensor::ones(tgt.dims()[..2].to_vec(), DType::U8, &Device::Cpu).unwrap();
    (src, mask, tgt, tgt_mask)
}

fn fwd(
    m: &dyn Model,
    s: &Tensor,
    sm: &Tensor,
    t: &Tensor,
    tm: &Tensor,
    at: LogitPositions,
    taps: &mut Taps,
) -> Tensor {
    let input = ForwardInput {
        encoder: Some(SideInput {
            embeds: s.clone(),
            mask: sm.clone(),
        }),
        decoder: SideInput {
            embeds: t.clone(),
            mask: tm.clone(),
        },
        logits_at: at,
    };
    m.forward(&input, taps).unwrap().logits
}

#[test]
fn relative_buckets_match_hf() {
    // transformers 5.24 `T5Attention._relative_position_bucket` on arange(-20, 21) with
    // (8 buckets, max distance 12), and run-length encoded on arange(-300, 301) with (32, 128).
    #[rustfmt::skip]
    let small: [[u32; 41]; 2] = [[3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 1, 0, 5, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7], [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 5, 4, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]];
    for (k, bidirectional) in [true, false].into_iter().enumerate() {
        let got: Vec<u32> = (-20..=20)
            .map(|r| bucket(r, bidirectional, 8, 12))
            .collect();
        assert_eq!(got, small[k], "bidirectional {bidirectional}");
    }
    #[rustfmt::skip]
    let runs: [&[(u32, usize)]; 2] = [&[(15, 210), (14, 27), (13, 18), (12, 14), (11, 9), (10, 7), (9, 4), (8, 4), (7, 1), (6, 1), (5, 1), (4, 1), (3, 1), (2, 1), (1, 1), (0, 1), (17, 1), (18, 1), (19, 1), (20, 1), (21, 1), (22, 1), (23, 1), (24, 4), (25, 4), (26, 7), (27, 9), (28, 14), (29, 18), (30, 27), (31, 210)], &[(31, 188), (30, 14), (29, 12), (28, 10), (27, 10), (26, 8), (25, 7), (24, 6), (23, 6), (22, 5), (21, 4), (20, 4), (19, 3), (18, 3), (17, 2), (16, 3), (15, 1), (14, 1), (13, 1), (12, 1), (11, 1), (10, 1), (9, 1), (8, 1), (7, 1), (6, 1), (5, 1), (4, 1), (3, 1), (2, 1), (1, 1), (0, 301)]];
    for (k, bidirectional) in [true, false].into_iter().enumerate() {
        let want: Vec<u32> = runs[k]
            .iter()
            .flat_map(|&(b, n)| std::iter::repeat_n(b, n))
            .collect();
        let got: Vec<u32> = (-300..=300)
            .map(|r| bucket(r, bidirectional, 32, 128))
            .collect();
        assert_eq!(got, want, "bidirectional {bidirectional}");
    }
}

#[test]
fn t5_matches_reference() {
    for name in ["relu", "gated"] {
        let (m, r) = load(name, DType::F32);
        let (src, sm, tgt, tm) = input(m.as_ref(), &r, DType::F32);
        let mut taps = Taps::none();
        taps.record_attentions = true;
        taps.record_hidden_states = true;
        let logits = fwd(
            m.as_ref(),
            &src,
            &sm,
            &tgt,
            &tm,
            LogitPositions::All,
            &mut taps,
        );
        let d = max_abs(&logits, &r["logits"]);
        println!("t5 {name}: logits max |Δ| {d:.2e}");
        assert!(d < 1e-4, "t5 {name} logits: {d}");
        assert_eq!(taps.attentions.len(), 6);
        for (path, p) in &taps.attentions {
            let d = max_abs(p, &r[&format!("attn.{path}")]);
            assert!(d < 1e-5, "t5 {name} attention {path}: {d}");
        }
        assert_eq!(taps.hidden_states.len(), 6);
        for (k, (path, h)) in taps.hidden_states.iter().enumerate() {
            let key = format!(
                "hidden.{}.{}",
                if k < 3 { "encoder" } else { "decoder" },
                k % 3
            );
            let d = max_abs(h, &r[&key]);
            assert!(d < 1e-4, "t5 {name} {key} ({path}): {d}");
        }
        // Gradients of sum_b log p(argmax_b) at the last position, both sides.
        let (sv, tv) = (
            Var::from_tensor(&src).unwrap(),
            Var::from_tensor(&tgt).unwrap(),
        );
        let logits = fwd(
            m.as_ref(),
            sv.as_tensor(),
            &sm,
            tv.as_tensor(),
            &tm,
            LogitPositions::Last,
            &mut Taps::none(),
        );
        let lp = ops::log_softmax_last(&logits.squeeze(1).unwrap()).unwrap();
        let target = r["target"]
            .to_dtype(DType::U32)
            .unwrap()
            .unsqueeze(1)
            .unwrap();
        let grads = lp
            .gather(&target, 1)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (side, v) in [("encoder", &sv), ("decoder", &tv)] {
            let g = grads.get(v.as_tensor()).expect("graph was cut");
            let want = &r[&format!("grad.{side}")];
            let rel = max_abs(g, want) / max_of(want);
            println!("t5 {name}: {side} grad rel. error {rel:.2e}");
            assert!(rel < 1e-4, "t5 {name} {side} gradient: {rel}");
        }
        // KV-cached decoding (prefix of 3, then one token at a time; then a beam reorder).
        let start = DecodeStart {
            encoder_ids: Some(r["src_ids"].to_dtype(DType::U32).unwrap()),
            encoder_mask: Some(sm.clone()),
        };
        let mut state = m.start_decoding(&start).unwrap();
        let tgt_ids = r["tgt_ids"].to_dtype(DType::U32).unwrap();
        let ones = |n: usize, b: usize| Tensor::ones((b, n), DType::U8, &Device::Cpu).unwrap();
        let mut pos = 0;
        for n in [3, 1, 1] {
            let out = state
                .step(&tgt_ids.narrow(1, pos, n).unwrap(), &ones(pos + n, 2))
                .unwrap();
            pos += n;
            let d = max_abs(
                &out,
                &r["logits"]
                    .narrow(1, pos - 1, 1)
                    .unwrap()
                    .squeeze(1)
                    .unwrap(),
            );
            assert!(d < 1e-4, "t5 {name} decoding at {pos}: {d}");
        }
        state.select_rows(&[1, 1]).unwrap();
        let rows = Tensor::from_vec(vec![1u32, 1], 2, &Device::Cpu).unwrap();
        let out = state
            .step(
                &tgt_ids
                    .index_select(&rows, 0)
                    .unwrap()
                    .narrow(1, pos, 1)
                    .unwrap(),
                &ones(pos + 1, 2),
            )
            .unwrap();
        let want = r["logits"]
            .index_select(&rows, 0)
            .unwrap()
            .narrow(1, pos, 1)
            .unwrap()
            .squeeze(1)
            .unwrap();
        assert!(max_abs(&out, &want) < 1e-4, "t5 {name} after select_rows");
    }
}

#[test]
fn t5_gradients_match_finite_differences() {
    let (m, r) = load("gated", DType::F64);
    let (src, sm, tgt, tm) = input(m.as_ref(), &r, DType::F64);
    let (src, sm, tgt, tm) = (
        src.narrow(0, 1, 1).unwrap(),
        sm.narrow(0, 1, 1).unwrap(),
        tgt.narrow(0, 1, 1).unwrap(),
        tm.narrow(0, 1, 1).unwrap(),
    );
    let f = |s: &Tensor, t: &Tensor| {
        let l = fwd(
            m.as_ref(),
            s,
            &sm,
            t,
            &tm,
            LogitPositions::Last,
            &mut Taps::none(),
        );
        ops::log_softmax_last(&l.flatten_all().unwrap())
            .unwrap()
            .get(7)
            .unwrap()
    };
    let (sv, tv) = (
        Var::from_tensor(&src).unwrap(),
        Var::from_tensor(&tgt).unwrap(),
    );
    let grads = f(sv.as_tensor(), tv.as_tensor()).backward().unwrap();
    for (side, x, v) in [("encoder", &src, &sv), ("decoder", &tgt, &tv)] {
        let g: Vec<f64> = grads
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let xv: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
        let gmax = g.iter().fold(0f64, |a, v| a.max(v.abs()));
        let mut worst: f64 = 0.0;
        // Every 7th coordinate keeps the test fast; gelu_new and RMSNorm are exact composites.
        for i in (0..xv.len()).step_by(7) {
            let at = |d: f64| {
                let mut p = xv.clone();
                p[i] += d;
                let p = Tensor::from_vec(p, x.shape(), &Device::Cpu).unwrap();
                let o = if side == "encoder" {
                    f(&p, &tgt)
                } else {
                    f(&src, &p)
                };
                o.to_scalar::<f64>().unwrap()
            };
            worst = worst.max(((at(1e-6) - at(-1e-6)) / 2e-6 - g[i]).abs() / gmax);
        }
        println!("t5 {side}: FD max rel. error {worst:.2e}");
        assert!(worst < 1e-6, "t5 {side}: FD relative error {worst}");
    }
}

#[test]
fn t5_f64_forward_is_exact() {
    // Reference: transformers in float64 with the RMSNorm variance also in float64.
    for name in ["relu", "gated"] {
        let (m, r) = load(name, DType::F64);
        let (src, sm, tgt, tm) = input(m.as_ref(), &r, DType::F64);
        let logits = fwd(
            m.as_ref(),
            &src,
            &sm,
            &tgt,
            &tm,
            LogitPositions::All,
            &mut Taps::none(),
        );
        let d = max_abs(&logits, &r["logits_f64"]);
        assert!(d < 1e-10, "t5 {name} f64 logits: {d}");
    }
}

#[test]
fn t5_shared_forward_matches_autograd() {
    // `prefix_forward`'s logits and hand-written backward (relative position bias, plain and
    // gated feed-forward) against autograd on the per-stream forward, in f64.
    for name in ["relu", "gated"] {
        let (m, r) = load(name, DType::F64);
        let (src, _, tgt, _) = input(m.as_ref(), &r, DType::F64);
        let (rows, s, _) = src.dims3().unwrap();
        let t = tgt.dim(1).unwrap();
        let prefix = m.prefix_forward(Some(&src), &tgt).unwrap().unwrap();
        let streams = Streams {
            rows: vec![0, 1, 1],
            positions: vec![t - 1, 1, t - 2],
        };
        let vocab = m.spec().vocab_size;
        let g = Tensor::randn(0f64, 1.0, (3, vocab), &Device::Cpu).unwrap();
        let logits = prefix.logits_at(&streams).unwrap();
        let grads = prefix.backward(&streams, &g).unwrap();
        let source = grads.source.expect("source gradients");
        let span = streams.span();
        let ones = |n: usize| Tensor::ones((1, n), DType::U8, &Device::Cpu).unwrap();
        assert!(rows == 2 && grads.target.dims() == [3, span, tgt.dim(2).unwrap()]);
        for (i, (&row, &pos)) in streams.rows.iter().zip(&streams.positions).enumerate() {
            let sv = Var::from_tensor(&src.narrow(0, row, 1).unwrap()).unwrap();
            let tv = Var::from_tensor(&tgt.narrow(0, row, 1).unwrap()).unwrap();
            let at = LogitPositions::These(vec![pos]);
            let want = fwd(
                m.as_ref(),
                sv.as_tensor(),
                &ones(s),
                tv.as_tensor(),
                &ones(t),
                at,
                &mut Taps::none(),
            );
            let want = want.flatten_all().unwrap();
            let got = logits.get(i).unwrap();
            assert!(
                max_abs(&got, &want) < 1e-10,
                "t5 {name} logits of stream {i}"
            );
            let auto = (want * g.get(i).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let src_grad = auto.get(sv.as_tensor()).unwrap().squeeze(0).unwrap();
            let tgt_grad = auto.get(tv.as_tensor()).unwrap().squeeze(0).unwrap();
            let tgt_grad = tgt_grad.narrow(0, 0, span).unwrap();
            let rel = |a: &Tensor, b: &Tensor| max_abs(a, b) / max_of(b);
            let d = rel(&source.get(i).unwrap(), &src_grad);
            assert!(d < 1e-10, "t5 {name} stream {i} source gradient: {d}");
            let d = rel(&grads.target.get(i).unwrap(), &tgt_grad);
            assert!(d < 1e-10, "t5 {name} stream {i} target gradient: {d}");
        }
    }
}
