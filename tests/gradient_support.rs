//! A richer toy analytic model than `plugin_support::toy_host`, for the gradient-method plugins:
//! it serves layer taps (`Wrt::Layer`), the DeepLIFT rescale rule, an encoder side, custom
//! baselines, and records the requests and progress it sees.
//!
//! Model: `h_p = Σ_j tanh(s_j) + Σ_{i<p} tanh(x_i)` (source tokens `s` only for the
//! encoder-decoder variant), logits `z_p = W h_p`, and the score of target token `t_p` is either
//! the logit `z_p[t_p]` (linear in the activations, so every path method is exact) or its
//! probability `softmax(z_p)[t_p]`. Taps: `decoder.tanh` (target side) and `encoder.tanh`
//! (source side), whose input is the embedding and whose output is `tanh` of it.
#![allow(dead_code)]

use std::sync::Mutex;

use rinseq_sdk::{
    AttributionRequest, ErrorCode, GradientRequest, GradientResponse, GradientRule, HostApi,
    InputPoint, InternalsRequest, InternalsResponse, ModelInfo, ModelKind, PluginError, PointSide,
    ScoreOutput, ScoreRequest, SequenceInput, Side, SidePair, Tensor, Token, TokenId, Wrt,
};

/// Vocabulary size.
pub const V: usize = 6;
/// Hidden size.
pub const D: usize = 3;

/// The attributed function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Score {
    /// The target logit.
    Logit,
    /// The target probability.
    Prob,
}

/// Where a request's values live.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Space {
    /// Embeddings (inputs, or the input of a `*.tanh` tap).
    Embedding,
    /// Activations after tanh (output of a `*.tanh` tap).
    Activation,
}

/// A recorded gradient request: number of points, `wrt`, rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Points in the request.
    pub points: usize,
    /// What it differentiated with respect to.
    pub wrt: Wrt,
    /// The rule.
    pub rule: GradientRule,
}

/// The toy model serving one sequence.
pub struct LayerToy {
    /// Embedding table `(V, D)`.
    pub table: Vec<f32>,
    /// Output matrix `(V, D)`.
    pub w: Vec<f32>,
    /// The request being served.
    pub request: AttributionRequest,
    /// The attributed function.
    pub score: Score,
    /// Encoder-decoder variant.
    pub enc_dec: bool,
    /// Baseline target embeddings `(len, D)` replacing the UNK rows, when set.
    pub target_baseline: Option<Vec<f32>>,
    /// Advertised tap names (empty = don't advertise).
    pub taps: Vec<String>,
    /// Gradient requests seen.
    pub seen: Mutex<Vec<Seen>>,
    /// Progress reports seen.
    pub progress: Mutex<Vec<(u64, u64)>>,
}

impl LayerToy {
    /// A decoder-only toy on target `ids`, attributing the positions after a `prompt_len` prompt.
    pub fn decoder_only(ids: &[u32], prompt_len: usize, score: Score) -> Self {
        Self::build(&[], ids, prompt_len, score, false, true)
    }

    /// An encoder-decoder toy: `src` on the encoder, `tgt` (starting with the decoder start token)
    /// on the decoder, every target position after the first attributed.
    pub fn encoder_decoder(src: &[u32], tgt: &[u32], score: Score, attribute_target: bool) -> Self {
        Self::build(src, tgt, 1, score, true, attribute_target)
    }

    fn build(
        src: &[u32],
        ids: &[u32],
        first: usize,
        score: Score,
        enc_dec: bool,
        attr_tgt: bool,
    ) -> Self {
        let f = |i: usize, k: f32| (i as f32 * k).sin() * 0.9;
        let table = (0..V * D).map(|i| f(i + 1, 1.7)).collect();
        let w = (0..V * D).map(|i| f(i + 3, 0.61) * 1.5).collect();
        let toks = |ids: &[u32]| -> Vec<Token> {
            ids.iter()
                .map(|&i| Token::new(format!("t{i}"), i))
                .collect()
        };
        let request = AttributionRequest {
            sequences: vec![SequenceInput {
                source: toks(src),
                target: toks(ids),
                steps: (first as u32..ids.len() as u32).collect(),
                source_baseline_ids: vec![0; src.len()],
                target_baseline_ids: vec![0; ids.len()],
            }],
            attribute_target: attr_tgt,
        };
        Self {
            table,
            w,
            request,
            score,
            enc_dec,
            target_baseline: None,
            taps: Vec::new(),
            seen: Mutex::new(Vec::new()),
            progress: Mutex::new(Vec::new()),
        }
    }

    /// The borrowed callback object plugins receive.
    pub fn as_ref(&self) -> &dyn HostApi {
        self
    }

    fn seq(&self) -> &SequenceInput {
        &self.request.sequences[0]
    }

    fn rows(&self, ids: impl Iterator<Item = u32>) -> Vec<f32> {
        ids.flat_map(|i| self.table[i as usize * D..(i as usize + 1) * D].to_vec())
            .collect()
    }

    /// Actual embeddings of a side, `(len, D)` flat.
    pub fn actual(&self, side: Side) -> Vec<f32> {
        let toks = if side == Side::Source {
            &self.seq().source
        } else {
            &self.seq().target
        };
        self.rows(toks.iter().map(|t| t.id.unwrap()))
    }

    /// Baseline embeddings of a side.
    pub fn baseline(&self, side: Side) -> Vec<f32> {
        if side == Side::Target {
            if let Some(b) = &self.target_baseline {
                return b.clone();
            }
            return self.rows(self.seq().target_baseline_ids.iter().copied());
        }
        self.rows(self.seq().source_baseline_ids.iter().copied())
    }

    fn side_of_tap(&self, wrt: &Wrt) -> Result<Option<(Side, Space)>, PluginError> {
        match wrt {
            Wrt::InputEmbeddings => Ok(None),
            Wrt::Layer { name, input } => {
                let side = match name.as_str() {
                    "decoder.tanh" => Side::Target,
                    "encoder.tanh" if self.enc_dec => Side::Source,
                    other => {
                        return Err(PluginError::new(
                            ErrorCode::Host,
                            format!("no tap named {other}"),
                        ));
                    }
                };
                Ok(Some((
                    side,
                    if *input {
                        Space::Embedding
                    } else {
                        Space::Activation
                    },
                )))
            }
        }
    }

    /// Activations `tanh(x)` of a side given in `space`.
    fn activations(v: &[f32], space: Space) -> Vec<f32> {
        match space {
            Space::Embedding => v.iter().map(|x| x.tanh()).collect(),
            Space::Activation => v.to_vec(),
        }
    }

    fn side_values(&self, side: Side, p: &PointSide) -> Vec<f32> {
        match p {
            PointSide::Actual => self.actual(side),
            PointSide::Values(t) => t.data.to_vec(),
            PointSide::Ids(ids) => self.rows(ids.iter().copied()),
        }
    }

    /// Source and target activations of a point; the side of a layer tap is given in its space.
    fn point_acts(&self, p: &InputPoint, tap: Option<(Side, Space)>) -> (Vec<f32>, Vec<f32>) {
        let space = |side: Side| match tap {
            Some((s, sp)) if s == side && !matches!(p_side(p, side), PointSide::Actual) => sp,
            _ => Space::Embedding,
        };
        let src = if self.enc_dec {
            Self::activations(
                &self.side_values(Side::Source, &p.source),
                space(Side::Source),
            )
        } else {
            Vec::new()
        };
        let tgt = Self::activations(
            &self.side_values(Side::Target, &p.target),
            space(Side::Target),
        );
        (src, tgt)
    }

    fn hidden(src: &[f32], tgt: &[f32], p: usize) -> [f64; D] {
        let mut h = [0f64; D];
        for row in src.chunks(D).chain(tgt.chunks(D).take(p)) {
            for k in 0..D {
                h[k] += row[k] as f64;
            }
        }
        h
    }

    /// Score at step `p` and d score / d h.
    pub fn score_h(&self, h: &[f64; D], p: usize) -> (f64, [f64; D]) {
        let t = self.seq().target[p].id.unwrap() as usize;
        let z: Vec<f64> = (0..V)
            .map(|v| (0..D).map(|k| self.w[v * D + k] as f64 * h[k]).sum())
            .collect();
        let dz: Vec<f64> = match self.score {
            Score::Logit => (0..V).map(|v| if v == t { 1.0 } else { 0.0 }).collect(),
            Score::Prob => {
                let m = z.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                let pr: Vec<f64> = e.iter().map(|v| v / s).collect();
                (0..V)
                    .map(|v| pr[t] * (if v == t { 1.0 } else { 0.0 } - pr[v]))
                    .collect()
            }
        };
        let s = match self.score {
            Score::Logit => z[t],
            Score::Prob => {
                let m = z.iter().cloned().fold(f64::MIN, f64::max);
                let e: f64 = z.iter().map(|v| (v - m).exp()).sum();
                (z[t] - m).exp() / e
            }
        };
        let dh = std::array::from_fn(|k| (0..V).map(|v| self.w[v * D + k] as f64 * dz[v]).sum());
        (s, dh)
    }

    /// The score at step `p` for given source and target embeddings.
    pub fn score_at(&self, src: &[f32], tgt: &[f32], p: usize) -> f64 {
        let a = |v: &[f32]| Self::activations(v, Space::Embedding);
        self.score_h(&Self::hidden(&a(src), &a(tgt), p), p).0
    }

    /// The weight row of the token scored at step `p`.
    pub fn w_row(&self, p: usize) -> Vec<f64> {
        let t = self.seq().target[p].id.unwrap() as usize;
        (0..D).map(|k| self.w[t * D + k] as f64).collect()
    }

    fn serve_gradients(&self, r: &GradientRequest) -> Result<GradientResponse, PluginError> {
        self.seen.lock().unwrap().push(Seen {
            points: r.points.len(),
            wrt: r.wrt.clone(),
            rule: r.rule,
        });
        let tap = self.side_of_tap(&r.wrt)?;
        let deeplift = r.rule == GradientRule::DeepLiftRescale;
        if r.rule != GradientRule::Standard && !deeplift {
            return Err(PluginError::unsupported("unknown rule"));
        }
        let (np, ns) = (r.points.len(), r.steps.len());
        let (ls, lt) = (self.seq().source.len(), self.seq().target.len());
        // Which sides get gradients.
        let (want_src, want_tgt) = match tap {
            None => (self.enc_dec, self.request.attribute_target || !self.enc_dec),
            Some((s, _)) => (s == Side::Source, s == Side::Target),
        };
        // Raw values of each side of point 0 (the DeepLIFT reference).
        let reference = r.points.first().map(|p| {
            (
                if self.enc_dec {
                    self.side_values(Side::Source, &p.source)
                } else {
                    Vec::new()
                },
                self.side_values(Side::Target, &p.target),
            )
        });
        let mut scores = Vec::new();
        let mut gs = vec![0f32; np * ns * ls * D];
        let mut gt = vec![0f32; np * ns * lt * D];
        for (pi, point) in r.points.iter().enumerate() {
            let (asrc, atgt) = self.point_acts(point, tap);
            let raw_src = if self.enc_dec {
                self.side_values(Side::Source, &point.source)
            } else {
                Vec::new()
            };
            let raw_tgt = self.side_values(Side::Target, &point.target);
            for (si, &p) in r.steps.iter().enumerate() {
                let p = p as usize;
                let (s, dh) = self.score_h(&Self::hidden(&asrc, &atgt, p), p);
                scores.push(s as f32);
                // d/d value of each visible element: dh, times the tanh derivative (or the rescale
                // multiplier) when the value is an embedding.
                let local = |side: Side, raw: &[f32], j: usize| -> f64 {
                    let in_act_space = matches!(tap, Some((ts, Space::Activation)) if ts == side);
                    if in_act_space {
                        return 1.0;
                    }
                    let x = raw[j] as f64;
                    if deeplift {
                        let (rs, rt) = reference.as_ref().unwrap();
                        let x0 = if side == Side::Source { rs[j] } else { rt[j] } as f64;
                        if (x - x0).abs() > 1e-6 {
                            return (x.tanh() - x0.tanh()) / (x - x0);
                        }
                    }
                    1.0 - x.tanh().powi(2)
                };
                if want_src {
                    for j in 0..ls * D {
                        gs[((pi * ns + si) * ls) * D + j] =
                            (dh[j % D] * local(Side::Source, &raw_src, j)) as f32;
                    }
                }
                if want_tgt {
                    for j in 0..p * D {
                        gt[((pi * ns + si) * lt) * D + j] =
                            (dh[j % D] * local(Side::Target, &raw_tgt, j)) as f32;
                    }
                }
            }
        }
        Ok(GradientResponse {
            scores: Tensor::new(vec![np, ns], scores)?,
            source: want_src
                .then(|| Tensor::new(vec![np, ns, ls, D], gs))
                .transpose()?,
            target: want_tgt
                .then(|| Tensor::new(vec![np, ns, lt, D], gt))
                .transpose()?,
        })
    }

    fn sides(&self, wrt: &Wrt, baseline: bool) -> Result<SidePair, PluginError> {
        let get = |side: Side| {
            if baseline {
                self.baseline(side)
            } else {
                self.actual(side)
            }
        };
        let (ls, lt) = (self.seq().source.len(), self.seq().target.len());
        let empty = || Tensor::zeros(vec![0, D]);
        let t = |v: Vec<f32>, len: usize| Tensor::new(vec![len, D], v);
        let pair = |source, target| SidePair { source, target };
        Ok(match self.side_of_tap(wrt)? {
            None => pair(
                if self.enc_dec {
                    t(get(Side::Source), ls)?
                } else {
                    empty()
                },
                t(get(Side::Target), lt)?,
            ),
            Some((side, space)) => {
                let len = if side == Side::Source { ls } else { lt };
                let raw = get(side);
                let v = match space {
                    Space::Embedding => raw,
                    Space::Activation => raw.iter().map(|x| x.tanh()).collect(),
                };
                let v = t(v, len)?;
                if side == Side::Source {
                    pair(v, empty())
                } else {
                    pair(empty(), v)
                }
            }
        })
    }
}

fn p_side(p: &InputPoint, side: Side) -> &PointSide {
    if side == Side::Source {
        &p.source
    } else {
        &p.target
    }
}

impl HostApi for LayerToy {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: "layer-toy".into(),
            model_type: "toy".into(),
            kind: if self.enc_dec {
                ModelKind::EncoderDecoder
            } else {
                ModelKind::DecoderOnly
            },
            vocab_size: V,
            hidden_size: D,
            num_layers: 1,
            encoder_layers: usize::from(self.enc_dec),
            num_heads: 1,
            tap_names: self.taps.clone(),
            special_token_ids: Vec::new(),
        }
    }

    fn embed(&self, _: Side, ids: &[TokenId]) -> Result<Tensor, PluginError> {
        Tensor::new(vec![ids.len(), D], self.rows(ids.iter().copied()))
    }

    fn inputs(&self, _: usize, wrt: &Wrt) -> Result<SidePair, PluginError> {
        self.sides(wrt, false)
    }

    fn baselines(&self, _: usize, wrt: &Wrt) -> Result<SidePair, PluginError> {
        self.sides(wrt, true)
    }

    fn gradients(&self, r: GradientRequest) -> Result<GradientResponse, PluginError> {
        self.serve_gradients(&r)
    }

    fn scores(&self, r: ScoreRequest) -> Result<Tensor, PluginError> {
        if r.output != ScoreOutput::AttributedFunction {
            return Err(PluginError::unsupported(
                "the test host scores the attributed function only",
            ));
        }
        let mut out = Vec::new();
        for point in r.points.iter() {
            let src = if self.enc_dec {
                self.side_values(Side::Source, &point.source)
            } else {
                Vec::new()
            };
            let tgt = self.side_values(Side::Target, &point.target);
            for &p in r.steps.iter() {
                out.push(self.score_at(&src, &tgt, p as usize) as f32);
            }
        }
        Tensor::new(vec![r.points.len(), r.steps.len()], out)
    }

    fn internals(&self, _: InternalsRequest) -> Result<InternalsResponse, PluginError> {
        Err(PluginError::unsupported("no internals"))
    }

    fn progress(&self, done: u64, total: u64) -> bool {
        self.progress.lock().unwrap().push((done, total));
        true
    }
}
