//! The plugins of an attribution, instantiated with their routed parameters: the method, the
//! attributed function and the step functions (no model needed: cheap, and bad arguments fail
//! before any model work).

use std::sync::Arc;

use rinseq_sdk::abi::{LoadedMethod, LoadedStepFunction};
use serde_json::{Map, Value};

use super::contrast::Contrast;
use super::ApiError;
use crate::attribution::result::sequence_class;
use crate::output::SequenceClass;
use crate::plugins::{Instance, PluginKind, PluginRegistry};

/// Which plugins an attribution uses and their arguments (Inseq's `method`, `attributed_fn`,
/// `step_scores` and `**attribution_args`).
#[derive(Debug, Clone)]
pub struct PluginChoice {
    /// The attribution method.
    pub method: String,
    /// The step function whose value is attributed.
    pub attributed_fn: String,
    /// The step functions recorded at every step.
    pub step_scores: Vec<String>,
    /// Arguments; each key goes to every plugin with a parameter of that name, the contrastive
    /// keys (`contrast_targets`, `contrast_sources`, `contrast_targets_alignments`,
    /// `contrast_force_inputs`) to the host.
    pub kwargs: Map<String, Value>,
}

/// The plugins of a run, instantiated with their routed parameters.
pub struct Plugins {
    /// The registry they come from (aggregators for the views come from it too).
    pub registry: Arc<PluginRegistry>,
    /// What was asked for.
    pub choice: PluginChoice,
    /// The attribution method.
    pub method: Instance<LoadedMethod>,
    /// The attributed function.
    pub target_fn: Instance<LoadedStepFunction>,
    /// The recorded step functions, by name.
    pub step_fns: Vec<(String, Instance<LoadedStepFunction>)>,
    /// The routed arguments: method, attributed function, then each step score.
    pub params: Vec<Value>,
    /// The host-level contrastive arguments taken out of the kwargs.
    pub contrast: Contrast,
    /// The output class of the method.
    pub class: SequenceClass,
    default_aggregation: String,
}

impl Plugins {
    /// Instantiates the plugins of `choice` from `registry`.
    pub fn prepare(registry: Arc<PluginRegistry>, choice: PluginChoice) -> Result<Self, ApiError> {
        let mut kwargs = choice.kwargs.clone();
        let mut targets = vec![
            (PluginKind::Attribution, choice.method.as_str()),
            (PluginKind::StepFunction, choice.attributed_fn.as_str()),
        ];
        targets.extend(
            choice
                .step_scores
                .iter()
                .map(|s| (PluginKind::StepFunction, s.as_str())),
        );
        let contrast = Contrast::take(&mut kwargs)?;
        let params = route(&kwargs, &targets, &registry)?;
        let method = registry.attribution(&choice.method, &params[0])?;
        let target_fn = registry.step_function(&choice.attributed_fn, &params[1])?;
        let step_fns = choice
            .step_scores
            .iter()
            .zip(&params[2..])
            .map(|(n, p)| Ok((n.clone(), registry.step_function(n, p)?)))
            .collect::<Result<Vec<_>, ApiError>>()?;
        let capabilities = &registry
            .find(PluginKind::Attribution, &choice.method)?
            .descriptor
            .capabilities;
        Ok(Self {
            class: sequence_class(capabilities.output),
            default_aggregation: capabilities.default_aggregation.join(","),
            registry,
            choice,
            method,
            target_fn,
            step_fns,
            params,
            contrast,
        })
    }

    /// The method's declared default aggregation (a comma-separated aggregator list).
    pub fn default_aggregation(&self) -> &str {
        &self.default_aggregation
    }

    /// `(plugin, library crate and version)` of the method, the attributed function and each
    /// step function, for provenance records.
    pub fn versions(&self) -> Vec<(String, String)> {
        let mut names = vec![
            (PluginKind::Attribution, self.method.name.as_str()),
            (PluginKind::StepFunction, self.target_fn.name.as_str()),
        ];
        names.extend(
            self.step_fns
                .iter()
                .map(|(n, _)| (PluginKind::StepFunction, n.as_str())),
        );
        names
            .into_iter()
            .filter_map(|(kind, name)| {
                let p = self.registry.find(kind, name).ok()?;
                let lib = self.registry.libraries.get(p.library)?;
                Some((
                    name.to_string(),
                    format!(
                        "{} {} ({} {})",
                        name,
                        p.descriptor.version.as_str(),
                        lib.crate_name,
                        lib.crate_version
                    ),
                ))
            })
            .collect()
    }
}

/// Splits attribution kwargs among the plugins whose parameters have each key (Inseq routes by
/// signature the same way); a key no plugin takes is an error.
pub fn route(
    kwargs: &Map<String, Value>,
    targets: &[(PluginKind, &str)],
    reg: &PluginRegistry,
) -> Result<Vec<Value>, ApiError> {
    let names: Vec<Vec<String>> = targets
        .iter()
        .map(|(k, n)| reg.param_names(*k, n))
        .collect::<Result<_, _>>()?;
    let mut out = vec![Map::new(); targets.len()];
    for (key, value) in kwargs {
        let mut used = false;
        for (i, params) in names.iter().enumerate() {
            if params.contains(key) {
                out[i].insert(key.clone(), value.clone());
                used = true;
            }
        }
        if !used {
            let plugins: Vec<&str> = targets.iter().map(|(_, n)| *n).collect();
            return Err(ApiError::Invalid(format!(
                "--attribution-kwargs key '{key}' is not a parameter of {} (see `rinseq plugins info NAME`)",
                plugins.join(", ")
            )));
        }
    }
    Ok(out.into_iter().map(Value::Object).collect())
}
