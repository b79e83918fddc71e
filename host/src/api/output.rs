//! [`Attribution`]: the result of [`AttributeRequest::run`](super::AttributeRequest::run):
//! Inseq's output, with saving, aggregation and the raw per-sequence results.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rinseq_sdk::SequenceAttribution;
use serde_json::{Map, Value};

use super::ApiError;
use crate::aggregation::{aggregate_for_view, aggregate_output, apply_named, AggregationSpec};
use crate::attribution::result::sequence_view;
use crate::attribution::{AttributionRun, EncodedSequence};
use crate::output::steps::step_outputs_with_prefixes;
use crate::output::{
    FeatureAttributionOutput, FeatureAttributionSequenceOutput, FeatureAttributionStepOutput,
    SaveOptions, TokenWithId,
};
use crate::plugins::PluginRegistry;

/// An attribution's result: Inseq's `FeatureAttributionOutput` (raw scores) and what it was
/// made from.
pub struct Attribution {
    pub(super) output: FeatureAttributionOutput,
    pub(super) run: AttributionRun,
    pub(super) plain_targets: Vec<Vec<TokenWithId>>,
    pub(super) decoder_only: bool,
    pub(super) step_attributions: bool,
    pub(super) registry: Arc<PluginRegistry>,
    pub(super) default_aggregation: String,
}

impl std::fmt::Debug for Attribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attribution")
            .field("output", &self.output)
            .field("step_attributions", &self.step_attributions)
            .field("default_aggregation", &self.default_aggregation)
            .finish_non_exhaustive()
    }
}

impl Attribution {
    /// Inseq's output, without step attributions (see [`Attribution::into_output`]).
    pub fn output(&self) -> &FeatureAttributionOutput {
        &self.output
    }

    /// Inseq's output, with `step_attributions` when the request asked for them.
    pub fn into_output(self) -> FeatureAttributionOutput {
        let steps = self.step_attributions;
        self.output_with_steps(steps)
    }

    /// Inseq's output, with `step_attributions` when `steps` is set.
    pub fn output_with_steps(self, steps: bool) -> FeatureAttributionOutput {
        let step_attributions = steps.then(|| self.step_outputs(&self.output));
        let mut out = self.output;
        if step_attributions.is_some() {
            out.step_attributions = step_attributions;
        }
        out
    }

    /// Inseq's `step_attributions` of `out` (this attribution's output or a copy).
    fn step_outputs(&self, out: &FeatureAttributionOutput) -> Vec<FeatureAttributionStepOutput> {
        let positions: Vec<Vec<usize>> = self.encoded().map(|s| s.steps.clone()).collect();
        step_outputs_with_prefixes(&out.sequence_attributions, &positions, &self.plain_targets)
    }

    /// Sequence `i` alone as an output (Inseq's split files), with its step attributions when
    /// `steps` is set.
    pub fn part(&self, i: usize, steps: bool) -> FeatureAttributionOutput {
        let mut part = self.output.split_part(i);
        if steps {
            let positions = self.run.sequences.get(i).map(|a| a.sequence.steps.clone());
            let plain = self.plain_targets.get(i).cloned().unwrap_or_default();
            part.step_attributions = Some(step_outputs_with_prefixes(
                &part.sequence_attributions,
                &[positions.unwrap_or_default()],
                &[plain],
            ));
        }
        part
    }

    /// The attributed sequences (Inseq's `sequence_attributions`).
    pub fn sequences(&self) -> &[FeatureAttributionSequenceOutput] {
        &self.output.sequence_attributions
    }

    /// The number of sequences.
    pub fn len(&self) -> usize {
        self.output.len()
    }

    /// Whether there are no sequences.
    pub fn is_empty(&self) -> bool {
        self.output.sequence_attributions.is_empty()
    }

    /// Inseq's `info` record of the run.
    pub fn info(&self) -> &Map<String, Value> {
        &self.output.info
    }

    /// The loop's raw result: encoded sequences, method scores, step scores.
    pub fn run(&self) -> &AttributionRun {
        &self.run
    }

    /// The encoded sequences (ids, tokens, attributed steps), one per input.
    pub fn encoded(&self) -> impl Iterator<Item = &EncodedSequence> {
        self.run.sequences.iter().map(|a| &a.sequence)
    }

    /// Sequence `i` in the SDK's sequence view (what aggregator plugins take).
    pub fn sequence_view(&self, i: usize) -> Option<SequenceAttribution> {
        let a = self.run.sequences.get(i)?;
        Some(sequence_view(a, self.decoder_only))
    }

    /// Sequence `i` in the SDK view, through the comma-separated aggregator plugins
    /// `aggregators` in order (e.g. `"vnorm"`, or [`Attribution::default_aggregation`]).
    pub fn aggregate_view(
        &self,
        i: usize,
        aggregators: &str,
    ) -> Result<SequenceAttribution, ApiError> {
        let view = self
            .sequence_view(i)
            .ok_or_else(|| ApiError::Invalid(format!("no sequence {i} in the attribution")))?;
        Ok(apply_named(&self.registry, aggregators, view)?)
    }

    /// The method's declared default aggregation (a comma-separated aggregator list).
    pub fn default_aggregation(&self) -> &str {
        &self.default_aggregation
    }

    /// Inseq's `aggregate(...)`: the output through the aggregation pipeline `spec` (the
    /// default spec: the output class's default aggregation).
    pub fn aggregate(&self, spec: &AggregationSpec) -> Result<FeatureAttributionOutput, ApiError> {
        Ok(aggregate_output(&self.registry, &self.output, spec)?)
    }

    /// The aggregation the views show (`rinseq attribute`'s heatmaps): `spec`, or the method's
    /// default aggregation when `spec` is the default one.
    pub fn aggregate_for_view(
        &self,
        spec: &AggregationSpec,
    ) -> Result<FeatureAttributionOutput, ApiError> {
        let spec = shown_aggregation(spec.clone(), &self.default_aggregation);
        Ok(aggregate_for_view(&self.registry, &self.output, &spec)?)
    }

    /// Saves Inseq's JSON to `path` as `rinseq attribute -o` does (replacing the file; with
    /// step attributions when asked for); returns the files written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<Vec<PathBuf>, ApiError> {
        let options = SaveOptions {
            overwrite: true,
            ..Default::default()
        };
        self.save_with(path, &options)
    }

    /// [`Attribution::save`] with explicit options (compression, precision, split files...).
    pub fn save_with(
        &self,
        path: impl AsRef<Path>,
        options: &SaveOptions,
    ) -> Result<Vec<PathBuf>, ApiError> {
        let written = if self.step_attributions {
            let mut out = self.output.clone();
            out.step_attributions = Some(self.step_outputs(&out));
            out.save(path, options)?
        } else {
            self.output.save(path, options)?
        };
        Ok(written)
    }
}

/// The aggregation of shown heatmaps: `user`, else the method's declared default aggregation
/// (a comma-separated aggregator list), else the output class's default.
pub fn shown_aggregation(user: AggregationSpec, method_default: &str) -> AggregationSpec {
    if !user.is_default() {
        return user;
    }
    let aggregators: Vec<String> = method_default
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    AggregationSpec {
        aggregators,
        ..user
    }
}
