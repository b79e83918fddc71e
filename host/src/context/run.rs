//! The whole context attribution (Inseq's `attribute_context_with_model`): prepare the outputs,
//! tokenize, CTI, selection, CCI for every selected token.

use rinseq_sdk::{abi::LoadedMethod, abi::LoadedStepFunction};

use super::cci::{self, Selected};
use super::cti::{self, CtiTexts};
use super::settings::Validated;
use super::text::{concat_with_sep, format_template, Texts, Tok};
use super::{outputs, select, AttributeContextOutput, ContextError};
use crate::aggregation::AggregationSpec;
use crate::generation::GenerationParams;
use crate::models::load::LoadedModel;
use crate::output::FeatureAttributionOutput;
use crate::plugins::{Instance, PluginRegistry};

/// The plugins of a run, built by the caller.
pub struct ContextPlugins {
    /// The registry (aggregators for CCI).
    pub registry: PluginRegistry,
    /// The CCI method.
    pub method: Instance<LoadedMethod>,
    /// The CCI attributed function (`probability` when none was given).
    pub target_fn: Instance<LoadedStepFunction>,
    /// Whether an attributed function was given (Inseq contrasts only then).
    pub attributed_fn_given: bool,
    /// The CTI metric, one entry named by its plugin name.
    pub metric: Vec<(String, Instance<LoadedStepFunction>)>,
    /// The aggregation of CCI attributions before the context scores are read.
    pub aggregation: AggregationSpec,
}

/// What CCI needs from the preparation.
pub struct Prepared<'a> {
    /// The model.
    pub loaded: &'a LoadedModel,
    /// Token helpers.
    pub texts: Texts<'a>,
    /// The options.
    pub v: &'a Validated,
    /// Generation settings (contextless next tokens).
    pub generation: &'a GenerationParams,
    /// Tokens of the full input.
    pub input_full_tokens: Vec<Tok>,
    /// Tokens of the full output (decoder-only: input included).
    pub output_full_tokens: Vec<Tok>,
    /// Tokens of the current output.
    pub output_current_tokens: Vec<Tok>,
    /// Where the current output starts in `output_full_tokens`.
    pub offset: usize,
    /// The contextless input (decoder-only: with the separator).
    pub contextless_input: String,
    /// The contextless output template's prefix.
    pub contextless_prefix: String,
    /// Tokens of the input template before `{context}`.
    pub input_prefix_len: usize,
    /// Tokens of the input context.
    pub input_context_len: usize,
    /// Tokens of the output template before `{context}`.
    pub output_prefix_len: usize,
    /// Tokens of the output context.
    pub output_context_len: usize,
}

/// The result with what its views need.
pub struct ContextRun {
    /// Inseq's output.
    pub output: AttributeContextOutput,
    /// The CTI selection threshold.
    pub cti_threshold: f64,
    /// The CTI step scores as an attribution output (`--show-intermediate-outputs`).
    pub cti_intermediate: Option<FeatureAttributionOutput>,
    /// The aggregated CCI attributions, one per selected token.
    pub cci_intermediate: Vec<FeatureAttributionOutput>,
}

/// Runs context attribution with the validated options `v`.
pub fn attribute_context(
    loaded: &LoadedModel,
    v: &Validated,
    plugins: &ContextPlugins,
    generation: &GenerationParams,
) -> Result<ContextRun, ContextError> {
    let s = &v.s;
    let texts = Texts::new(loaded, &s.special_tokens_to_keep);
    let enc_dec = texts.encoder_decoder();
    let sep = s.decoder_input_output_separator.as_str();
    let input_full_text = format_template(
        &v.input_template,
        &s.input_current_text,
        s.input_context_text.as_deref(),
    );
    let (output_context, output_current) =
        outputs::prepare(loaded, &texts, v, &input_full_text, generation)?;
    let mut output_full_text = format_template(
        &v.output_template,
        &output_current,
        output_context.as_deref(),
    );
    let input_context_tokens = s
        .input_context_text
        .as_deref()
        .map(|c| texts.filtered(c, false))
        .transpose()?;
    if !enc_dec {
        output_full_text = concat_with_sep(&input_full_text, &output_full_text, sep);
    }
    let output_current_tokens = texts.filtered(&output_current, true)?;
    let output_context_tokens = output_context
        .as_deref()
        .map(|c| texts.filtered(c, true))
        .transpose()?;
    let input_full_tokens = texts.filtered(&input_full_text, false)?;
    let output_full_tokens = texts.filtered(&output_full_text, true)?;
    let offset = output_full_tokens
        .len()
        .checked_sub(output_current_tokens.len())
        .ok_or_else(|| {
            ContextError::bad("the current output has more tokens than the full output")
        })?;
    let mut contextless_input = format_template(&v.contextless_input, &s.input_current_text, None);
    let mut contextless_output = format_template(&v.contextless_output, &output_current, None);
    if !enc_dec {
        contextless_input = concat_with_sep(&contextless_input, "", sep);
        contextless_output = format!("{contextless_input}{contextless_output}");
    }
    let contextless_prefix = v
        .contextless_output
        .split("{current}")
        .next()
        .unwrap_or_default()
        .to_string();
    let prefix_len = texts.filtered(&contextless_prefix, true)?.len();

    // Part 1: context-sensitive token identification.
    let cti = cti::run(
        loaded,
        &texts,
        &CtiTexts {
            contextless_input: contextless_input.trim_end_matches(' '),
            contextless_output: &contextless_output,
            full_input: &input_full_text,
            full_output: &output_full_text,
            prefix_len,
        },
        &plugins.metric,
        generation,
    )?;
    let (ranked, cti_threshold) = select::rank(
        &cti.scores,
        s.context_sensitivity_std_threshold,
        s.context_sensitivity_topk,
    );
    let as_strings = |t: &Option<Vec<Tok>>| {
        t.as_ref()
            .map(|v| v.iter().map(|t| t.text.clone()).collect::<Vec<_>>())
    };
    let mut output = AttributeContextOutput {
        input_context: s.input_context_text.clone(),
        input_context_tokens: as_strings(&input_context_tokens),
        output_context: output_context.clone(),
        output_context_tokens: as_strings(&output_context_tokens),
        output_current: Some(output_current.clone()),
        output_current_tokens: Some(cti.tokens.clone()),
        cti_scores: Some(cti.scores.iter().map(|&x| f64::from(x)).collect()),
        cci_scores: Vec::new(),
        info: s.add_output_info.then(|| v.info()),
    };
    if let Some(info) = output.info.as_mut() {
        // The texts actually attributed (generated ones included), as Inseq's args hold them.
        info.insert("output_context_text".into(), output_context.clone().into());
        info.insert("output_current_text".into(), output_current.clone().into());
    }

    // Part 2: contextual cues imputation.
    let input_prefix = v
        .input_template
        .split("{context}")
        .next()
        .unwrap_or_default();
    let input_prefix = if input_prefix.contains("{current}") {
        format_template(input_prefix, &s.input_current_text, None)
    } else {
        input_prefix.to_string()
    };
    let mut output_prefix = v
        .output_template
        .split("{context}")
        .next()
        .unwrap_or_default()
        .to_string();
    if !enc_dec && !output_prefix.is_empty() {
        output_prefix = format!("{sep}{output_prefix}");
    }
    let prepared = Prepared {
        loaded,
        v,
        generation,
        input_prefix_len: texts.filtered(&input_prefix, false)?.len(),
        input_context_len: input_context_tokens.as_ref().map_or(0, Vec::len),
        output_prefix_len: texts.filtered(&output_prefix, true)?.len(),
        output_context_len: output_context_tokens.as_ref().map_or(0, Vec::len),
        texts,
        input_full_tokens,
        output_full_tokens,
        output_current_tokens,
        offset,
        contextless_input,
        contextless_prefix,
    };
    let mut cci_intermediate = Vec::new();
    for (rank, &idx) in ranked.iter().enumerate() {
        let sel = Selected {
            idx,
            score: cti.scores[idx],
            token: cti.tokens[idx].clone(),
            rank,
        };
        let (cci_out, attr) = cci::run(&prepared, plugins, &sel, ranked.len())?;
        output.cci_scores.push(cci_out);
        if s.show_intermediate_outputs {
            cci_intermediate.push(attr);
        }
    }
    let cti_intermediate = s.show_intermediate_outputs.then(|| {
        let name = plugins.metric.first().map_or("metric", |m| m.0.as_str());
        cti_as_output(&cti, !enc_dec, name)
    });
    Ok(ContextRun {
        output,
        cti_threshold,
        cti_intermediate,
        cci_intermediate,
    })
}

/// The CTI step scores as an attribution output without attributions (Inseq's `dummy` output).
fn cti_as_output(cti: &cti::Cti, decoder_only: bool, metric: &str) -> FeatureAttributionOutput {
    let run = crate::attribution::AttributionRun {
        sequences: vec![crate::attribution::AttributedSequence {
            sequence: cti.sequence.clone(),
            scores: Default::default(),
            step_scores: vec![(metric.to_string(), cti.step_scores.clone())],
        }],
        exec_time: 0.0,
    };
    crate::attribution::result::to_output(
        &run,
        decoder_only,
        crate::output::SequenceClass::Base,
        Default::default(),
    )
}
