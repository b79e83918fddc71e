//! Merging attribution outputs as Inseq's `FeatureAttributionOutput.merge_attributions`:
//! sequences (and step attributions) concatenated, `info` of the first output with
//! `input_texts` / `generated_texts` concatenated; and merging a whole `--out-dir` in dataset
//! order, refusing when examples are missing.

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use super::manifest::{Manifest, ManifestError};
use super::store::ExampleStore;
use crate::output::{FeatureAttributionOutput, OutputError};

/// How many missing indices a message lists.
const SHOWN_MISSING: usize = 5;

/// Why an `--out-dir` cannot be merged.
#[derive(Debug, Error)]
pub enum MergeError {
    /// No manifest, or an unreadable one.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Some examples have no file yet.
    #[error("{} is missing {count} of {total} examples (dataset indices {shown}): run the unfinished shards again (the same commands resume) and merge then", .dir.display())]
    Missing {
        /// The folder.
        dir: PathBuf,
        /// How many are missing.
        count: usize,
        /// The dataset size.
        total: usize,
        /// The first few missing indices, e.g. `2, 5, 8, …`.
        shown: String,
    },
    /// The dataset had no examples.
    #[error("{} holds no examples: nothing to merge", .0.display())]
    Empty(PathBuf),
    /// An example file cannot be read.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Inseq's `merge_attributions`: sequences and step attributions concatenated, `info` of the
/// first output with `input_texts` and `generated_texts` concatenated, `exec_time` summed and
/// `attr_pos_start` / `attr_pos_end` over all sequences (as one call over all inputs reports).
pub fn merge_outputs(parts: Vec<FeatureAttributionOutput>) -> FeatureAttributionOutput {
    let mut parts = parts.into_iter();
    let Some(mut merged) = parts.next() else {
        return FeatureAttributionOutput::default();
    };
    for part in parts {
        merged
            .sequence_attributions
            .extend(part.sequence_attributions);
        if let Some(steps) = part.step_attributions {
            merged
                .step_attributions
                .get_or_insert_with(Vec::new)
                .extend(steps);
        }
        for key in ["input_texts", "generated_texts"] {
            if let (Some(Value::Array(all)), Some(Value::Array(more))) =
                (merged.info.get_mut(key), part.info.get(key))
            {
                all.extend(more.iter().cloned());
            }
        }
        let time = |info: &serde_json::Map<String, Value>| {
            info.get("exec_time").and_then(Value::as_f64).unwrap_or(0.0)
        };
        let total = time(&merged.info) + time(&part.info);
        merged.info.insert("exec_time".into(), total.into());
    }
    let seqs = &merged.sequence_attributions;
    if let (Some(start), Some(end)) = (
        seqs.iter().map(|s| s.attr_pos_start).min(),
        seqs.iter().map(|s| s.attr_pos_end).max(),
    ) {
        merged.info.insert("attr_pos_start".into(), start.into());
        merged.info.insert("attr_pos_end".into(), end.into());
    }
    merged
}

/// The indices of `dir`'s examples that have no file yet.
pub fn missing(dir: &Path, manifest: &Manifest) -> Vec<usize> {
    let store = ExampleStore::new(dir, manifest.compress);
    (0..manifest.examples)
        .filter(|&i| !store.is_done(i))
        .collect()
}

/// All examples of the `--out-dir` `dir`, merged in dataset order.
pub fn merge_dir(dir: &Path) -> Result<FeatureAttributionOutput, MergeError> {
    let manifest = Manifest::read(dir)?.ok_or_else(|| ManifestError::Missing(dir.to_path_buf()))?;
    if manifest.examples == 0 {
        return Err(MergeError::Empty(dir.to_path_buf()));
    }
    let absent = missing(dir, &manifest);
    if !absent.is_empty() {
        let mut shown: Vec<String> = absent
            .iter()
            .take(SHOWN_MISSING)
            .map(usize::to_string)
            .collect();
        if absent.len() > SHOWN_MISSING {
            shown.push("…".into());
        }
        return Err(MergeError::Missing {
            dir: dir.to_path_buf(),
            count: absent.len(),
            total: manifest.examples,
            shown: shown.join(", "),
        });
    }
    let store = ExampleStore::new(dir, manifest.compress);
    let parts = (0..manifest.examples)
        .map(|i| FeatureAttributionOutput::load(store.path(i)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merge_outputs(parts))
}
