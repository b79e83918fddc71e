//! What the parity tests against Python inseq share: the workspace plugins, the tiny fixture
//! models with their generation settings, reference maps read from JSON (null = NaN) and the
//! comparisons (maps within an absolute tolerance, same NaN pattern; scalars within a tolerance
//! relative to the reference), fixture models through the library API ([`api_model`]) and a
//! host over a fixture model for direct requests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::DType;
use rinseq::attribution::{EncodedSequence, ModelHost};
use rinseq::generation::{GenerationConfig, GenerationParams};
use rinseq::models::load::{load_model, LoadedModel, ModelFiles};
use rinseq::plugins::{PluginRegistry, PluginSources};
use rinseq::{AttributionModel, LoadOptions};
use rinseq_sdk::abi::LoadedStepFunction;
use serde_json::Value;

use crate::plugin_support::build::{root, workspace_plugin};

/// Tolerance on step scores: `1e-4 · (1 + |reference|)`.
pub const STEP_SCORE_TOL: f64 = 1e-4;
/// Absolute tolerance on aggregated attribution maps.
pub const MAP_TOL: f32 = 1e-3;

/// The workspace's plugin libraries (built by cargo once per process).
pub fn workspace_sources() -> PluginSources {
    PluginSources {
        extra: [
            "rinseq_step_functions",
            "rinseq_aggregators",
            "rinseq_gradient_methods",
            "rinseq_internals_methods",
            "rinseq_perturbation_methods",
        ]
        .iter()
        .map(|c| workspace_plugin(c))
        .collect(),
        ..Default::default()
    }
}

/// The registry of the workspace's plugins.
pub fn registry() -> PluginRegistry {
    PluginRegistry::load(&workspace_sources()).unwrap()
}

/// Fixture model `name` of tests/fixtures/models through the library API, attributing with
/// `method` and the workspace plugins.
pub fn api_model(name: &str, method: &str) -> AttributionModel {
    api_folder_model(&fixture_folder(name), method)
}

/// The model in `folder` through the library API, as [`api_model`].
pub fn api_folder_model(folder: &Path, method: &str) -> AttributionModel {
    let options = LoadOptions::default().plugin_sources(workspace_sources());
    AttributionModel::load_with(folder.to_str().unwrap(), method, options).unwrap()
}

/// The SmolLM2-135M-Instruct GGUF (`RINSEQ_SMOLLM2_GGUF`, else ../shared/models), if present.
pub fn smollm2_gguf() -> Option<std::path::PathBuf> {
    let p = std::env::var_os("RINSEQ_SMOLLM2_GGUF")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            super::plugin_support::build::root()
                .join("../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    p.is_file().then_some(p)
}

/// A fixture model by folder name, or `"smollm2"`, through the library API with `method`;
/// `None` when the SmolLM2 GGUF is absent.
pub fn api_case_model(name: &str, method: &str) -> Option<AttributionModel> {
    match name {
        "smollm2" => Some(api_folder_model(&smollm2_gguf()?, method)),
        n => Some(api_model(n, method)),
    }
}

/// A fixture model of tests/fixtures/models and its generation settings: the folder's
/// generation_config.json under the HF `generate` kwargs `generation_kwargs`.
pub fn fixture_model(name: &str, generation_kwargs: &Value) -> (LoadedModel, GenerationParams) {
    folder_model(&fixture_folder(name), generation_kwargs)
}

/// The folder of fixture model `name`.
fn fixture_folder(name: &str) -> PathBuf {
    root().join("tests/fixtures/models").join(name)
}

/// A copy of fixture model `name` in `dir/name` whose config.json `edit` changed (same weights):
/// a variant for one test, e.g. another activation or dropout.
pub fn fixture_variant(name: &str, dir: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(fixture_folder(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
    let cfg_path = to.join("config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    to
}

/// The model in `folder` with its generation settings, as [`fixture_model`].
pub fn folder_model(folder: &Path, generation_kwargs: &Value) -> (LoadedModel, GenerationParams) {
    let loaded = load_model(&ModelFiles::HfFolder(folder.to_path_buf()), DType::F32).unwrap();
    let defaults = GenerationConfig::from_model_dir(folder).unwrap();
    let user = GenerationConfig::from_kwargs_value(generation_kwargs.clone()).unwrap();
    let generation = GenerationParams::resolve(&defaults.merged_with(&user), &loaded.spec).unwrap();
    (loaded, generation)
}

/// Rows of a 2-D tensor.
pub fn rows(t: &rinseq_sdk::Tensor) -> Vec<Vec<f32>> {
    let cols = t.shape[1];
    t.data.chunks(cols).map(|c| c.to_vec()).collect()
}

/// A reference matrix (rows of numbers, null = NaN).
pub fn nullable_matrix(v: &Value) -> Vec<Vec<f32>> {
    serde_json::from_value::<Vec<Vec<Option<f32>>>>(v.clone())
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect())
        .collect()
}

/// The differences between two maps: shape, NaN pattern, values beyond `tol`.
pub fn map_mismatches(name: &str, got: &[Vec<f32>], want: &[Vec<f32>], tol: f32) -> Vec<String> {
    let shape = |m: &[Vec<f32>]| (m.len(), m.first().map_or(0, Vec::len));
    if shape(got) != shape(want) || got.iter().zip(want).any(|(g, w)| g.len() != w.len()) {
        return vec![format!(
            "{name}: shape {:?} vs {:?}",
            shape(got),
            shape(want)
        )];
    }
    let mut out = Vec::new();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            if a.is_nan() != b.is_nan() {
                out.push(format!("{name}: NaN pattern at ({i}, {j}): {a} vs {b}"));
            } else if !a.is_nan() && (a - b).abs() >= tol {
                out.push(format!("{name}: ({i}, {j}) {a} vs {b}"));
            }
        }
    }
    out
}

/// The differences between the aggregated maps of `scores` and the reference's
/// `source_attributions` / `target_attributions` in `want` (absent or null where a side is not
/// attributed), within `tol`.
pub fn aggregated_map_mismatches(
    name: &str,
    scores: &rinseq_sdk::SequenceScores,
    want: &Value,
    tol: f32,
) -> Vec<String> {
    let sides = [
        ("source_attributions", &scores.source),
        ("target_attributions", &scores.target),
    ];
    let mut bad = Vec::new();
    for (side, got) in sides {
        let label = format!("{name} {side}");
        match (got.as_ref(), want.get(side).filter(|v| !v.is_null())) {
            (None, None) => {}
            (Some(_), None) => bad.push(format!("{label}: unexpected")),
            (None, Some(_)) => bad.push(format!("{label}: missing")),
            (Some(t), Some(w)) => {
                bad.extend(map_mismatches(&label, &rows(t), &nullable_matrix(w), tol))
            }
        }
    }
    bad
}

/// Panics unless the maps agree within [`MAP_TOL`] with the same NaN pattern.
pub fn assert_close_maps(name: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    let bad = map_mismatches(name, got, want, MAP_TOL);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The differences between two score vectors beyond `tol · (1 + |reference|)`.
pub fn score_mismatches(name: &str, got: &[f32], want: &[f64], tol: f64) -> Vec<String> {
    if got.len() != want.len() {
        return vec![format!("{name}: {} values vs {}", got.len(), want.len())];
    }
    got.iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (a, b))| {
            let a = **a as f64;
            a.is_nan() != b.is_nan() || (a - **b).abs() >= tol * (1.0 + b.abs())
        })
        .map(|(i, (a, b))| format!("{name}[{i}]: {a} vs {b}"))
        .collect()
}

/// A host serving `seqs` of `loaded` to direct SDK requests: no dropout, target attributed, 64
/// tokens per forward, the per-row path (override fields with `..test_host(...)`).
pub fn test_host<'a>(
    loaded: &'a LoadedModel,
    seqs: &'a [EncodedSequence],
    target_fn: &'a LoadedStepFunction,
) -> ModelHost<'a> {
    ModelHost {
        model: loaded.model.as_ref(),
        name: loaded.spec.model_type.clone(),
        sequences: seqs,
        target_fn,
        dropout_samples: 0,
        special_ids: vec![],
        method_flags: rinseq_sdk::Flags::USES_GRADIENTS
            | rinseq_sdk::Flags::USES_BASELINES
            | rinseq_sdk::Flags::USES_INTERNALS,
        attribute_target: true,
        tokens_per_forward: 64,
        memory_budget: u64::MAX,
        force_contrast_inputs: false,
        share_forward: false,
        prefix_reuse: rinseq::attribution::serve::PrefixReuse::Never,
    }
}
