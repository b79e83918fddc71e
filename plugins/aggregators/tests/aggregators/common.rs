//! Test helpers: building sequences, running a plugin from JSON params, comparing with NaN.

use rinseq_sdk::author::parse_params;
use rinseq_sdk::prelude::*;

/// Tokens with ids 0, 1, ...
pub fn toks(texts: &[&str]) -> Vec<Token> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Token::new(*t, i as u32))
        .collect()
}

/// A tensor (`None` in data = NaN).
pub fn t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

/// A sequence attribution.
pub fn seq(
    source: Vec<Token>,
    target: Vec<Token>,
    pos: (usize, usize),
    src: Option<Tensor>,
    tgt: Option<Tensor>,
    steps: &[(&str, &[f32])],
) -> SequenceAttribution {
    SequenceAttribution {
        source,
        target,
        attr_pos_start: pos.0,
        attr_pos_end: pos.1,
        scores: SequenceScores {
            source: src,
            target: tgt,
            step_scores: steps
                .iter()
                .map(|(n, v)| NamedTensor::new(*n, t(&[v.len()], v)))
                .collect::<Vec<_>>(),
            sequence_scores: Vec::new(),
        },
    }
}

/// Builds plugin `P` from JSON params as the host does.
pub fn build<P: AggregatorPlugin>(params: &str) -> Result<P, PluginError> {
    P::new(parse_params(P::NAME, params)?)
}

/// Builds `P` and aggregates `s`.
pub fn run<P: AggregatorPlugin>(
    params: &str,
    s: SequenceAttribution,
) -> Result<SequenceAttribution, PluginError> {
    build::<P>(params)?.aggregate(s)
}

/// The error message of a failing build or run.
pub fn err<T>(r: Result<T, PluginError>, code: ErrorCode) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            assert_eq!(e.code, code, "{e}");
            e.message.to_string()
        }
    }
}

/// Asserts values are close (NaN equals NaN).
pub fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (g, w) in got.iter().zip(want) {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-5 * (1.0 + w.abs());
        assert!(ok, "got {got:?}, want {want:?}");
    }
}

/// Asserts a tensor's shape and values.
pub fn tensor_is(t: &Tensor, shape: &[usize], want: &[f32]) {
    assert_eq!(&t.shape[..], shape);
    close(&t.data, want);
}

/// The source attributions.
pub fn src(s: &SequenceAttribution) -> &Tensor {
    s.scores.source.as_ref().expect("source attributions")
}

/// The target attributions.
pub fn tgt(s: &SequenceAttribution) -> &Tensor {
    s.scores.target.as_ref().expect("target attributions")
}

/// A step score by name.
pub fn step<'a>(s: &'a SequenceAttribution, name: &str) -> &'a [f32] {
    &s.scores
        .step_scores
        .iter()
        .find(|n| n.name == name)
        .unwrap()
        .tensor
        .data
}

/// Token texts and ids (-1 for a token without one, as Inseq writes it).
pub fn texts(tokens: &[Token]) -> Vec<(String, i64)> {
    tokens
        .iter()
        .map(|t| (t.text.to_string(), t.id.map_or(-1, i64::from)))
        .collect()
}

/// NaN, short.
pub const NAN: f32 = f32::NAN;

/// Asserts equality where NaN equals NaN (compares the debug forms).
pub fn same<T: std::fmt::Debug>(a: &T, b: &T) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
