//! Turning the loop's result into Inseq's per-sequence view (tokens + tensors), as aggregators and
//! the output file see it.

use rinseq_sdk::{NamedTensor, SequenceAttribution, Tensor};

use crate::attribution::AttributedSequence;

/// Inseq's sequence view of one attributed sequence. Decoder-only: `source` is the prompt
/// (`target[..attr_pos_start]`) and only target attributions exist; the target axis stops at
/// `attr_pos_end`, as in Inseq. With `contrast_targets` the target tokens are named as Inseq
/// names them (`"{contrast} → {target}"`, id -1, see [`crate::attribution::contrast::rename_targets`]).
pub fn sequence_view(a: &AttributedSequence, decoder_only: bool) -> SequenceAttribution {
    let seq = &a.sequence;
    let target = seq
        .contrast
        .as_ref()
        .map_or(&seq.target_tokens, |c| &c.renamed_targets);
    let (start, end) = seq.attr_pos;
    let mut scores = a.scores.clone();
    if let Some(t) = &scores.target {
        scores.target = Some(truncate_rows(t, end));
    }
    for (name, values) in &a.step_scores {
        if let Ok(t) = Tensor::new(vec![values.len()], values.clone()) {
            scores.step_scores.push(NamedTensor::new(name.clone(), t));
        }
    }
    SequenceAttribution {
        source: if decoder_only {
            target[..start].to_vec()
        } else {
            seq.source_tokens.clone()
        },
        target: target.clone(),
        attr_pos_start: start,
        attr_pos_end: end,
        scores,
    }
}

/// The first `rows` rows of a `(len, ...)` tensor.
fn truncate_rows(t: &Tensor, rows: usize) -> Tensor {
    let len = t.shape.first().copied().unwrap_or(0);
    if rows >= len {
        return t.clone();
    }
    let per_row: usize = t.shape[1..].iter().product();
    let mut shape = t.shape.to_vec();
    shape[0] = rows;
    Tensor {
        shape,
        data: t.data[..rows * per_row].to_vec(),
    }
}

/// Inseq's output class for a method's output kind.
pub fn sequence_class(kind: Option<rinseq_sdk::OutputKind>) -> crate::output::SequenceClass {
    use crate::output::SequenceClass;
    use rinseq_sdk::OutputKind;
    match kind {
        Some(OutputKind::Granular) => SequenceClass::Granular,
        Some(OutputKind::Coarse) => SequenceClass::Coarse,
        Some(OutputKind::MultiDimensional { .. }) => SequenceClass::MultiDimensional,
        None => SequenceClass::Base,
    }
}

/// The whole run as Inseq's `FeatureAttributionOutput` (raw, not aggregated, as Inseq saves it).
pub fn to_output(
    run: &crate::attribution::AttributionRun,
    decoder_only: bool,
    class: crate::output::SequenceClass,
    mut info: serde_json::Map<String, serde_json::Value>,
) -> crate::output::FeatureAttributionOutput {
    use crate::output::FeatureAttributionSequenceOutput;
    let sequences: Vec<FeatureAttributionSequenceOutput> = run
        .sequences
        .iter()
        .map(|a| FeatureAttributionSequenceOutput::from_sdk(sequence_view(a, decoder_only), class))
        .collect();
    let start = sequences
        .iter()
        .map(|s| s.attr_pos_start)
        .min()
        .unwrap_or(0);
    let end = sequences.iter().map(|s| s.attr_pos_end).max().unwrap_or(0);
    info.insert("attr_pos_start".into(), start.into());
    info.insert("attr_pos_end".into(), end.into());
    info.insert("exec_time".into(), run.exec_time.into());
    crate::output::FeatureAttributionOutput::new(sequences, info)
}
