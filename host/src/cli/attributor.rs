//! An attribution set up once and run on many inputs: the plugins (`--attribution-kwargs`
//! routed by parameter name), the model and the generation parameters of
//! [`AttributionFlags`]. `rinseq attribute` runs it once, `rinseq attribute-dataset` once per
//! batch of examples.

use serde_json::Value;

use super::attribute::{generation_kwargs, info, parse_object, route, AttributionFlags, Contrast};
use super::generate::DtypeArg;
use super::load::load_with_defaults;
use crate::attribution::result::{sequence_class, to_output};
use crate::attribution::{attribute, encode_batch, AttributeOptions};
use crate::generation::{GenerationConfig, GenerationParams};
use crate::models::load::LoadedModel;
use crate::models::ModelKind;
use crate::output::{FeatureAttributionOutput, SequenceClass, TokenWithId};
use crate::plugins::{Instance, PluginKind, PluginRegistry, PluginSources};
use crate::source::SourceConfig;
use rinseq_sdk::{abi::LoadedMethod, abi::LoadedStepFunction};

type BoxError = Box<dyn std::error::Error>;

/// The plugins of a run, instantiated with their routed parameters (no model yet: cheap).
pub struct AttributionPlugins {
    /// The loaded registry (aggregators for the views come from it too).
    pub registry: PluginRegistry,
    /// The attribution method.
    pub method: Instance<LoadedMethod>,
    /// The attributed function.
    pub target_fn: Instance<LoadedStepFunction>,
    /// The recorded step functions, by name.
    pub step_fns: Vec<(String, Instance<LoadedStepFunction>)>,
    /// The routed `--attribution-kwargs`: method, attributed function, then each step score.
    pub params: Vec<Value>,
    /// The host-level contrastive arguments.
    pub contrast: Contrast,
    /// The output class of the method.
    pub class: SequenceClass,
    default_aggregation: String,
}

impl AttributionPlugins {
    /// Loads the registry and instantiates the plugins `flags` name.
    pub fn prepare(flags: &AttributionFlags, sources: &PluginSources) -> Result<Self, BoxError> {
        let registry = PluginRegistry::load(sources)?;
        let mut kwargs = parse_object("--attribution-kwargs", &flags.attribution_kwargs)?;
        // Checked here too so that a bad --model-kwargs fails before any plugin error, as before.
        dtype(flags)?;
        let mut targets = vec![
            (PluginKind::Attribution, flags.method.as_str()),
            (PluginKind::StepFunction, flags.attributed_fn.as_str()),
        ];
        targets.extend(
            flags
                .step_scores
                .iter()
                .map(|s| (PluginKind::StepFunction, s.as_str())),
        );
        let contrast = Contrast::take(&mut kwargs)?;
        let params = route(&kwargs, &targets, &registry)?;
        let method = registry.attribution(&flags.method, &params[0])?;
        let target_fn = registry.step_function(&flags.attributed_fn, &params[1])?;
        let step_fns = flags
            .step_scores
            .iter()
            .zip(&params[2..])
            .map(|(n, p)| Ok((n.clone(), registry.step_function(n, p)?)))
            .collect::<Result<Vec<_>, BoxError>>()?;
        let capabilities = &registry
            .find(PluginKind::Attribution, &flags.method)?
            .descriptor
            .capabilities;
        Ok(Self {
            class: sequence_class(capabilities.output),
            default_aggregation: capabilities.default_aggregation.join(","),
            registry,
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

/// The model precision of `--model-kwargs` (only `dtype` is supported).
fn dtype(flags: &AttributionFlags) -> Result<DtypeArg, BoxError> {
    let model_kwargs = parse_object("--model-kwargs", &flags.model_kwargs)?;
    Ok(model_dtype(&model_kwargs)?)
}

/// The model precision of a `--model-kwargs` object: `dtype` f32 | f16 | bf16 (default f32);
/// any other key is an error.
pub fn model_dtype(model_kwargs: &serde_json::Map<String, Value>) -> Result<DtypeArg, String> {
    if let Some(k) = model_kwargs.keys().find(|k| k.as_str() != "dtype") {
        return Err(format!(
            "--model-kwargs key '{k}' is not supported (supported: dtype)"
        ));
    }
    match model_kwargs.get("dtype").and_then(Value::as_str) {
        None | Some("f32") | Some("float32") => Ok(DtypeArg::F32),
        Some("f16") | Some("float16") => Ok(DtypeArg::F16),
        Some("bf16") | Some("bfloat16") => Ok(DtypeArg::Bf16),
        Some(other) => Err(format!(
            "--model-kwargs dtype '{other}' is not one of f32, f16, bf16"
        )),
    }
}

/// The result of one [`Attributor::attribute`] call.
pub struct Attributed {
    /// Inseq's output (raw scores, no step attributions).
    pub output: FeatureAttributionOutput,
    /// The attributed target positions of each sequence (for step attributions).
    pub positions: Vec<Vec<usize>>,
    /// Each sequence's target tokens before contrastive renaming (step prefixes show these).
    pub plain_targets: Vec<Vec<TokenWithId>>,
}

impl Attributed {
    /// The output, with Inseq's `step_attributions` when `steps` is set.
    pub fn output_with_steps(self, steps: bool) -> FeatureAttributionOutput {
        let mut out = self.output;
        if steps {
            out.step_attributions = Some(crate::output::steps::step_outputs_with_prefixes(
                &out.sequence_attributions,
                &self.positions,
                &self.plain_targets,
            ));
        }
        out
    }
}

/// Plugins, model and generation parameters, ready to attribute any inputs.
pub struct Attributor {
    /// The plugins.
    pub plugins: AttributionPlugins,
    /// The model.
    pub loaded: LoadedModel,
    flags: AttributionFlags,
    generation: GenerationParams,
}

impl Attributor {
    /// Loads the model of `flags` and resolves its generation parameters.
    pub fn new(flags: &AttributionFlags, plugins: AttributionPlugins) -> Result<Self, BoxError> {
        let (loaded, defaults) = load_with_defaults(
            &flags.model,
            dtype(flags)?.into(),
            &SourceConfig::from_env(),
        )?;
        let user = match &flags.generation_kwargs {
            Some(json) => GenerationConfig::from_kwargs_json(json)?,
            None => GenerationConfig::default(),
        };
        let generation = GenerationParams::resolve(&defaults.merged_with(&user), &loaded.spec)?;
        Ok(Self {
            plugins,
            loaded,
            flags: flags.clone(),
            generation,
        })
    }

    /// Attributes `inputs` (with forced `generated` targets when not empty). `rows[k]` is the
    /// position of input `k` in the lists of `contrast_targets` / `contrast_sources` /
    /// `contrast_targets_alignments` given in `--attribution-kwargs`.
    pub fn attribute(
        &self,
        inputs: &[String],
        generated: &[String],
        rows: &[usize],
    ) -> Result<Attributed, BoxError> {
        let flags = &self.flags;
        let c = &self.plugins.contrast;
        let pick = |list: &[String]| -> Vec<String> {
            rows.iter().filter_map(|&r| list.get(r).cloned()).collect()
        };
        let opts = AttributeOptions {
            generated_texts: generated.to_vec(),
            attribute_target: flags.attribute_target,
            attr_pos_start: flags.start_pos,
            attr_pos_end: flags.end_pos,
            include_eos_baseline: flags.include_eos_baseline,
            batch_size: flags.batch_size,
            contrast_targets: pick(&c.targets),
            contrast_sources: pick(&c.sources),
            contrast_targets_alignments: rows
                .iter()
                .filter_map(|&r| c.alignments.get(r).cloned())
                .collect(),
            contrast_force_inputs: c.force_inputs,
        };
        let sequences = encode_batch(&self.loaded, inputs, &opts, &self.generation)?;
        let run = attribute(
            &self.loaded,
            &flags.model,
            sequences,
            &self.plugins.method,
            &self.plugins.target_fn,
            &self.plugins.step_fns,
            &opts,
        )?;
        let decoder_only = self.loaded.spec.kind == ModelKind::DecoderOnly;
        let mut info = info(
            flags,
            (inputs, generated),
            &self.loaded,
            &self.plugins.params,
            &generation_kwargs(flags)?,
        );
        let tok = self
            .loaded
            .target_tokenizer
            .as_ref()
            .unwrap_or(&self.loaded.tokenizer);
        let texts = run
            .sequences
            .iter()
            .map(|a| tok.decode(&a.sequence.target_ids, true))
            .collect::<Result<Vec<_>, _>>()?;
        info.insert("generated_texts".into(), texts.into());
        let positions = run
            .sequences
            .iter()
            .map(|a| a.sequence.steps.clone())
            .collect();
        let plain_targets = run
            .sequences
            .iter()
            .map(|a| {
                a.sequence
                    .target_tokens
                    .iter()
                    .map(TokenWithId::from)
                    .collect()
            })
            .collect();
        Ok(Attributed {
            output: to_output(&run, decoder_only, self.plugins.class, info),
            positions,
            plain_targets,
        })
    }
}
