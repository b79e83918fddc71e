//! Results computed with Python Inseq 0.7.1 (/work/venv, torch float32) on the same hand-made
//! inputs: `FeatureAttributionSequenceOutput(...)` built by hand, then `.aggregate(...)`, values
//! printed rounded to 7 decimals (scripts: see each test's comment).

// The constants are pasted exactly as Python printed them.
#![allow(clippy::excessive_precision)]

use rinseq_aggregators::{Mean, Pair, Scores, Slices, Spans, Split, Subwords};
use rinseq_sdk::prelude::*;

use crate::common::*;

const N: f32 = f32::NAN;

fn ramp(shape: &[usize], scale: f32, offset: f32) -> Tensor {
    let n: usize = shape.iter().product();
    t(
        shape,
        &(0..n)
            .map(|k| k as f32 * scale + offset)
            .collect::<Vec<_>>(),
    )
}

fn set_nan(t: &mut Tensor, pred: impl Fn(&[usize]) -> bool) {
    let shape = t.shape.to_vec();
    for (k, v) in t.data.iter_mut().enumerate() {
        let mut idx = vec![0; shape.len()];
        let mut r = k;
        for d in (0..shape.len()).rev() {
            idx[d] = r % shape[d];
            r /= shape[d];
        }
        if pred(&idx) {
            *v = N;
        }
    }
}

/// `sa = arange(18).reshape(3,3,2) - 5`, `ta = arange(24).reshape(4,3,2) * 0.5 - 3` with
/// `ta[2,0] = ta[3,:2] = nan`, source "▁a b ▁c", target "<s> ▁x y ▁z", attr_pos 1..4.
fn granular() -> SequenceAttribution {
    let mut ta = ramp(&[4, 3, 2], 0.5, -3.);
    set_nan(&mut ta, |i| {
        (i[0] == 2 && i[1] == 0) || (i[0] == 3 && i[1] < 2)
    });
    seq(
        toks(&["▁a", "b", "▁c"]),
        toks(&["<s>", "▁x", "y", "▁z"]),
        (1, 4),
        Some(ramp(&[3, 3, 2], 1., -5.)),
        Some(ta),
        &[],
    )
}

#[test]
fn scores_mean_and_granular_vnorm() {
    // a.aggregate("mean")
    let out = run::<Mean>("{}", granular()).unwrap();
    tensor_is(
        src(&out),
        &[3, 3],
        &[
            -0.27272728,
            -0.10989011,
            -0.01470588,
            0.09090909,
            0.15384616,
            0.16176471,
            0.45454547,
            0.41758242,
            0.33823529,
        ],
    );
    tensor_is(
        tgt(&out),
        &[4, 3],
        &[
            -0.16666667,
            -0.07692308,
            -0.02205882,
            0.01515152,
            0.05494506,
            0.06617647,
            N,
            0.18681319,
            0.15441176,
            N,
            N,
            0.24264705,
        ],
    );
    // GranularFeatureAttributionSequenceOutput(...).aggregate(): what the host asks of `scores`.
    let p = r#"{"aggregate_fn": {"source_attributions": "vnorm", "target_attributions": "vnorm"}}"#;
    let out = run::<Scores>(p, granular()).unwrap();
    tensor_is(
        src(&out),
        &[3, 3],
        &[
            0.27046546, 0.11134173, 0.02061247, 0.09445063, 0.15440321, 0.16098854, 0.44901317,
            0.41545653, 0.33554670,
        ],
    );
    tensor_is(
        tgt(&out),
        &[4, 3],
        &[
            0.16495094, 0.07720160, 0.02304544, 0.02111980, 0.05567086, 0.06599211, N, 0.18592608,
            0.15321320, N, N, 0.24060149,
        ],
    );
}

#[test]
fn attention_like_4d_mean_mean_normalises_at_each_step() {
    // sa4 = arange(36).reshape(3,3,2,2) - 7; ta4 = arange(48).reshape(4,3,2,2) * 0.3 - 4 with
    // ta4[3,:2] = nan; b.aggregate(["mean", "mean"]).
    let mut ta = ramp(&[4, 3, 2, 2], 0.3, -4.);
    set_nan(&mut ta, |i| i[0] == 3 && i[1] < 2);
    let s = seq(
        toks(&["▁a", "b", "▁c"]),
        toks(&["<s>", "▁x", "y", "▁z"]),
        (1, 4),
        Some(ramp(&[3, 3, 2, 2], 1., -7.)),
        Some(ta),
        &[],
    );
    let mid = run::<Mean>("{}", s).unwrap();
    // b.aggregate("mean", do_post_aggregation_checks=False): first row of each.
    assert_eq!(src(&mid).shape.as_slice(), &[3, 3, 2]);
    close(
        &src(&mid).data[..6],
        &[
            -0.17591341,
            -0.11523688,
            -0.06002401,
            -0.01129944,
            0.02533784,
            0.05271085,
        ],
    );
    close(&tgt(&mid).data[18..], &[N, N, N, N, 0.15793918, 0.14984943]);
    let out = run::<Mean>("{}", mid).unwrap();
    tensor_is(
        src(&out),
        &[3, 3],
        &[
            -0.14656678,
            -0.03566172,
            0.03902434,
            0.17161676,
            0.24398912,
            0.23073713,
            0.48980030,
            0.52363998,
            0.42244995,
        ],
    );
    tensor_is(
        tgt(&out),
        &[4, 3],
        &[
            -0.09434909,
            -0.05497656,
            -0.01864722,
            0.00110597,
            0.02891869,
            0.03886662,
            0.09656104,
            0.11281396,
            0.09638046,
            N,
            N,
            0.15389431,
        ],
    );
}

/// Source "▁Hel lo ▁wor ld </s>", target "<pad> ▁Bon jour ▁le monde", attr_pos 1..5,
/// `sa = arange(20).reshape(5,4) * 0.37 - 3`, `ta = arange(20).reshape(5,4) * -0.21 + 1.5` with
/// `ta[i,j] = nan` for i > j, and three step scores.
fn enc_dec() -> SequenceAttribution {
    let mut ta = ramp(&[5, 4], -0.21, 1.5);
    set_nan(&mut ta, |i| i[0] > i[1]);
    seq(
        toks(&["▁Hel", "lo", "▁wor", "ld", "</s>"]),
        toks(&["<pad>", "▁Bon", "jour", "▁le", "monde"]),
        (1, 5),
        Some(ramp(&[5, 4], 0.37, -3.)),
        Some(ta),
        &[
            ("probability", &[0.5, 0.25, 0.8, 0.9]),
            ("entropy", &[1., 2., 3., 4.]),
            ("deltas", &[0.1, -0.3, 0.2, 0.05]),
        ],
    )
}

fn check(
    out: &SequenceAttribution,
    src_t: &[(&str, i64)],
    tgt_t: &[(&str, i64)],
    pos: (usize, usize),
) {
    let own = |v: &[(&str, i64)]| {
        v.iter()
            .map(|(s, i)| (s.to_string(), *i))
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&out.source), own(src_t));
    assert_eq!(texts(&out.target), own(tgt_t));
    assert_eq!((out.attr_pos_start, out.attr_pos_end), pos);
}

#[test]
fn spans_default_and_mean() {
    // a.aggregate("spans", source_spans=[(0,2),(2,4)], target_spans=[(1,3),(3,5)])
    let out = run::<Spans>(
        r#"{"source_spans": [[0, 2], [2, 4]], "target_spans": [[1, 3], [3, 5]]}"#,
        enc_dec(),
    )
    .unwrap();
    check(
        &out,
        &[("▁Hello", -1), ("▁world", -1), ("</s>", 4)],
        &[("<pad>", 0), ("▁Bonjour", -1), ("▁lemonde", -1)],
        (1, 3),
    );
    tensor_is(
        src(&out),
        &[3, 2],
        &[-3.0, -2.26, 1.8099999, 2.5500002, 3.29, 4.0300002],
    );
    tensor_is(
        tgt(&out),
        &[3, 2],
        &[1.5, 1.08, 0.45, -0.8099999, N, -1.6499999],
    );
    close(step(&out, "probability"), &[0.125, 0.72]);
    close(step(&out, "entropy"), &[3.0, 7.0]);
    close(step(&out, "deltas"), &[-0.3, 0.2]);
    // a.aggregate("spans", aggregate_fn="mean", source_spans=(0,2), target_spans=(2,4))
    let out = run::<Spans>(
        r#"{"aggregate_fn": "mean", "source_spans": [0, 2], "target_spans": [2, 4]}"#,
        enc_dec(),
    )
    .unwrap();
    check(
        &out,
        &[("▁Hello", -1), ("▁wor", 2), ("ld", 3), ("</s>", 4)],
        &[("<pad>", 0), ("▁Bon", 1), ("jour▁le", -1), ("monde", 4)],
        (1, 4),
    );
    tensor_is(
        src(&out),
        &[4, 3],
        &[
            -2.26, -1.705, -1.1499999, -0.04, 0.515, 1.0700002, 1.4400001, 1.9950001, 2.5500002,
            2.9200001, 3.4749999, 4.0300002,
        ],
    );
    tensor_is(
        tgt(&out),
        &[4, 3],
        &[
            1.5, 1.1849999, 0.87, N, 0.345, 0.0300001, N, N, -1.2299999, N, N, N,
        ],
    );
    close(step(&out, "probability"), &[0.5, 0.525, 0.9]);
    close(step(&out, "entropy"), &[1.0, 2.5, 4.0]);
}

#[test]
fn subwords_sentencepiece() {
    // a.aggregate("subwords")
    let out = run::<Subwords>("{}", enc_dec()).unwrap();
    check(
        &out,
        &[("▁Hello", -1), ("▁world", -1), ("</s>", 4)],
        &[("<pad>", 0), ("▁Bonjour", -1), ("▁le", 3), ("monde", 4)],
        (1, 4),
    );
    tensor_is(
        src(&out),
        &[3, 3],
        &[
            -3.0, -2.26, -1.89, 1.8099999, 2.1800003, 2.5500002, 3.29, 3.6599998, 4.0300002,
        ],
    );
    tensor_is(
        tgt(&out),
        &[4, 3],
        &[
            1.5, 1.08, 0.87, 0.45, -0.5999999, -0.8099999, N, N, -1.6499999, N, N, N,
        ],
    );
    close(step(&out, "probability"), &[0.125, 0.8, 0.9]);
    close(step(&out, "entropy"), &[3.0, 3.0, 4.0]);
}

#[test]
fn split_modes() {
    // a.aggregate("split", split_pattern="▁", split_mode=...)
    let go = |mode: &str| {
        run::<Split>(
            &format!(r#"{{"split_pattern": "▁", "split_mode": "{mode}"}}"#),
            enc_dec(),
        )
        .unwrap()
    };
    let out = go("end");
    check(
        &out,
        &[("▁Hel", -1), ("lo▁wor", -1), ("ld</s>", -1)],
        &[("<pad>▁Bon", -1), ("jour▁le", -1), ("monde", -1)],
        (0, 3),
    );
    tensor_is(
        src(&out),
        &[3, 3],
        &[
            -3.0, -2.6300001, -1.89, -1.52, -1.15, 1.0700002, 2.9200001, 3.6599998, 4.0300002,
        ],
    );
    tensor_is(
        tgt(&out),
        &[3, 3],
        &[1.5, 1.29, 0.87, N, -0.5999999, -1.6499999, N, N, N],
    );
    close(step(&out, "entropy"), &[1.0, 5.0, 4.0]);
    let out = go("start");
    check(
        &out,
        &[("▁Hello", -1), ("▁world</s>", -1)],
        &[("<pad>", -1), ("▁Bonjour", -1), ("▁lemonde", -1)],
        (1, 3),
    );
    tensor_is(src(&out), &[2, 2], &[-3.0, -2.26, 3.29, 4.0300002]);
    tensor_is(
        tgt(&out),
        &[3, 2],
        &[1.5, 1.08, 0.45, -0.8099999, N, -1.6499999],
    );
    let out = go("single");
    check(
        &out,
        &[("▁Hel", -1), ("lo", -1), ("▁wor", -1), ("ld</s>", -1)],
        &[
            ("<pad>", -1),
            ("▁Bon", -1),
            ("jour", -1),
            ("▁le", -1),
            ("monde", -1),
        ],
        (1, 5),
    );
    close(
        &src(&out).data[12..],
        &[2.9200001, 3.29, 3.6599998, 4.0300002],
    );
    close(step(&out, "probability"), &[0.5, 0.25, 0.8, 0.9]);
}

#[test]
fn slices_encoder_decoder() {
    // a.aggregate("slices", source_spans=(1,3))
    let out = run::<Slices>(r#"{"source_spans": [1, 3]}"#, enc_dec()).unwrap();
    check(
        &out,
        &[("lo", 1), ("▁wor", 2)],
        &[("▁Bon", 1), ("jour", 2), ("▁le", 3), ("monde", 4)],
        (0, 4),
    );
    tensor_is(
        src(&out),
        &[2, 4],
        &[
            -1.52, -1.15, -0.78, -0.4099998, -0.04, 0.3299999, 0.7, 1.0700002,
        ],
    );
    tensor_is(
        tgt(&out),
        &[4, 4],
        &[
            N, 0.45, 0.24, 0.0300001, N, N, -0.5999999, -0.8099999, N, N, N, -1.6499999, N, N, N, N,
        ],
    );
}

/// Decoder-only: "ĠThe Ġca pital" prompt + "Ġis ĠPa ris", attr_pos 3..6,
/// `ta = arange(18).reshape(6,3) * 0.11 + 0.05` with nan where i >= 3 + j.
fn decoder_only(
    gen: [&str; 3],
    scale: f32,
    offset: f32,
    prob: &'static [f32],
) -> SequenceAttribution {
    let mut ta = ramp(&[6, 3], 0.11 * scale, 0.05 * scale + offset);
    set_nan(&mut ta, |i| i[0] >= 3 + i[1]);
    let target = toks(&["ĠThe", "Ġca", "pital", gen[0], gen[1], gen[2]]);
    seq(
        target[..3].to_vec(),
        target,
        (3, 6),
        None,
        Some(ta),
        &[("probability", prob)],
    )
}

fn dec() -> SequenceAttribution {
    decoder_only(["Ġis", "ĠPa", "ris"], 1., 0., &[0.5, 0.4, 0.9])
}

#[test]
fn decoder_only_spans_subwords_slices() {
    // b.aggregate("subwords", special_chars=("Ġ", "Ċ")): the final "ĠPa ris" is not merged
    // (Inseq's end-of-sequence quirk), nor is the prompt's final "Ġca pital".
    let out = run::<Subwords>(r#"{"special_chars": ["Ġ", "Ċ"]}"#, dec()).unwrap();
    check(
        &out,
        &[("ĠThe", 0), ("Ġca", 1), ("pital", 2)],
        &[
            ("ĠThe", 0),
            ("Ġcapital", -1),
            ("Ġis", 3),
            ("ĠPa", 4),
            ("ris", 5),
        ],
        (2, 5),
    );
    tensor_is(
        tgt(&out),
        &[5, 3],
        &[
            0.05, 0.16, 0.27, 0.71, 0.82, 0.93, N, 1.15, 1.26, N, N, 1.5899999, N, N, N,
        ],
    );
    // Detection finds the same markers.
    same(&run::<Subwords>("{}", dec()).unwrap(), &out);
    // b.aggregate("spans", target_spans=(2,4)): a span across attr_pos_start.
    let out = run::<Spans>(r#"{"target_spans": [2, 4]}"#, dec()).unwrap();
    check(
        &out,
        &[("ĠThe", 0), ("Ġca", 1), ("pital", 2)],
        &[
            ("ĠThe", 0),
            ("Ġca", 1),
            ("pitalĠis", -1),
            ("ĠPa", 4),
            ("ris", 5),
        ],
        (2, 5),
    );
    tensor_is(
        tgt(&out),
        &[5, 3],
        &[
            0.05, 0.16, 0.27, 0.38, 0.49, 0.6, 0.71, 1.15, 1.26, N, N, 1.5899999, N, N, N,
        ],
    );
    close(step(&out, "probability"), &[0.5, 0.4, 0.9]);
    // b.aggregate("slices", target_spans=(1,6))
    let out = run::<Slices>(r#"{"target_spans": [1, 6]}"#, dec()).unwrap();
    check(
        &out,
        &[("Ġca", 1), ("pital", 2)],
        &[("Ġca", 1), ("pital", 2), ("Ġis", 3), ("ĠPa", 4), ("ris", 5)],
        (2, 5),
    );
    tensor_is(
        tgt(&out),
        &[5, 3],
        &[
            0.38, 0.49, 0.6, 0.71, 0.82, 0.93, N, 1.15, 1.26, N, N, 1.5899999, N, N, N,
        ],
    );
}

#[test]
fn decoder_only_pair() {
    // b.aggregate("pair", paired_attr=bp) with bp's target "... ĠRo me", ta * 2 - 0.3 and
    // probability [0.1, 0.2, 0.3].
    let other = decoder_only(["Ġis", "ĠRo", "me"], 2., -0.3, &[0.1, 0.2, 0.3]);
    let params = format!(
        r#"{{"paired_attr": {}}}"#,
        rinseq_aggregators::paired::to_json(&other)
    );
    let out = run::<Pair>(&params, dec()).unwrap();
    check(
        &out,
        &[("ĠThe", 0), ("Ġca", 1), ("pital", 2)],
        &[
            ("ĠThe", 0),
            ("Ġca", 1),
            ("pital", 2),
            ("Ġis", 3),
            ("ĠPa → ĠRo", -1),
            ("ris → me", -1),
        ],
        (3, 6),
    );
    tensor_is(
        tgt(&out),
        &[6, 3],
        &[
            -0.25, -0.14, -0.03, 0.08, 0.19, 0.3, 0.4099999, 0.5199999, 0.6299999, N, 0.85, 0.96,
            N, N, 1.29, N, N, N,
        ],
    );
    close(step(&out, "probability"), &[-0.4, -0.2, -0.6]);
}
