//! The work of an experiment: each attribution as the `rinseq attribute-dataset` and
//! `rinseq merge` command lines that produce it, and how far it already got.
//!
//! The same argument lists run in-process (local runs parse them with the `Cli`) and go into the
//! sbatch scripts, so a Slurm run computes exactly what a local run computes.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::{Attribution, Dataset, Experiment};
use super::ExperimentError;
use crate::dataset::load::{load_dataset, DatasetSpec, Format};
use crate::dataset::store::EXAMPLES;
use crate::plugins::PluginSources;

/// An experiment turned into commands.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The validated experiment.
    pub experiment: Experiment,
    /// Global options every command gets (`--registry`, `--plugin`), with absolute paths so
    /// that they mean the same thing on any node and in any working folder.
    pub global: Vec<String>,
    /// Examples in the dataset, when the dataset is local files rinseq can count.
    pub examples: Option<usize>,
    /// One entry per `[[attribution]]`, in file order.
    pub attributions: Vec<PlannedAttribution>,
}

/// One attribution's commands and outputs.
#[derive(Debug, Clone)]
pub struct PlannedAttribution {
    /// Its name.
    pub name: String,
    /// Its method.
    pub method: String,
    /// The per-example folder `<out_dir>/<name>/` (resumable).
    pub dir: PathBuf,
    /// The merged file `<out_dir>/<name>.json`.
    pub merged: PathBuf,
    /// `attribute-dataset` and its arguments, without the shard.
    pub attribute: Vec<String>,
    /// `merge` and its arguments.
    pub merge: Vec<String>,
    /// How far it got before this run.
    pub state: State,
}

/// How far an attribution got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing written yet.
    New,
    /// Some per-example files exist; the next run resumes.
    Started,
    /// The merged file exists: nothing to do.
    Done,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::New => "to do",
            Self::Started => "started (resumes)",
            Self::Done => "done (skipped)",
        })
    }
}

impl Plan {
    /// Plans `experiment`; `sources` gives the global plugin options to pass on. Fails when an
    /// attribution's recorded command (from an earlier run) differs from the current one.
    pub fn new(experiment: Experiment, sources: &PluginSources) -> Result<Self, ExperimentError> {
        let mut global = Vec::new();
        if let Some(r) = &sources.registry {
            global.push("--registry".to_string());
            global.push(absolute(r));
        }
        for p in &sources.extra {
            global.push("--plugin".to_string());
            global.push(absolute(p));
        }
        let examples = count_examples(&experiment.path, &experiment.dataset)?;
        let mut attributions = Vec::new();
        for a in &experiment.attributions {
            let dir = experiment.out_dir.join(&a.name);
            let merged = experiment.out_dir.join(format!("{}.json", a.name));
            let attribute = attribute_args(&experiment, a, &dir);
            let merge = vec![
                "merge".to_string(),
                path_arg(&dir),
                "-o".to_string(),
                path_arg(&merged),
            ];
            let planned = PlannedAttribution {
                name: a.name.clone(),
                method: a.method.clone(),
                state: if merged.is_file() {
                    State::Done
                } else if dir.exists() {
                    State::Started
                } else {
                    State::New
                },
                dir,
                merged,
                attribute,
                merge,
            };
            check_record(&experiment.out_dir, &planned)?;
            attributions.push(planned);
        }
        Ok(Self {
            experiment,
            global,
            examples,
            attributions,
        })
    }

    /// The attributions that still have work.
    pub fn pending(&self) -> impl Iterator<Item = &PlannedAttribution> {
        self.attributions.iter().filter(|a| a.state != State::Done)
    }

    /// The full argument list (program name first) of one shard of an attribution.
    pub fn attribute_argv(&self, a: &PlannedAttribution, shard: &str) -> Vec<String> {
        let mut argv = vec!["rinseq".to_string()];
        argv.extend(self.global.iter().cloned());
        argv.extend(a.attribute.iter().cloned());
        argv.push("--shard".to_string());
        argv.push(shard.to_string());
        argv
    }

    /// The full argument list (program name first) of an attribution's merge.
    pub fn merge_argv(&self, a: &PlannedAttribution) -> Vec<String> {
        let mut argv = vec!["rinseq".to_string()];
        argv.extend(self.global.iter().cloned());
        argv.extend(a.merge.iter().cloned());
        argv
    }

    /// Records an attribution's command under `<out_dir>/.rinseq/`, so that a later run with a
    /// changed attribution of the same name is refused instead of mixing results.
    pub fn record(&self, a: &PlannedAttribution) -> Result<(), ExperimentError> {
        let path = record_path(&self.experiment.out_dir, &a.name);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, record_text(a))
        };
        write(&path).map_err(|source| ExperimentError::Write { path, source })
    }
}

/// `attribute-dataset` and its flags for one attribution (no shard).
fn attribute_args(e: &Experiment, a: &Attribution, dir: &Path) -> Vec<String> {
    let d = &e.dataset;
    let mut v: Vec<String> = vec!["attribute-dataset".into(), "-m".into(), e.model.clone()];
    v.extend(["-a".into(), a.method.clone()]);
    flag(&mut v, "--attributed-fn", a.attributed_fn.clone());
    if !a.step_scores.is_empty() {
        v.push("--step-scores".into());
        v.extend(a.step_scores.iter().cloned());
    }
    let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    flag(&mut v, "--attribution-kwargs", json(&a.attribution_kwargs));
    flag(&mut v, "--generation-kwargs", json(&e.generation));
    flag(&mut v, "--model-kwargs", json(&e.model_kwargs));
    v.extend(["-d".into(), d.name.clone()]);
    if !d.files.is_empty() {
        v.push("--dataset-files".into());
        v.extend(d.files.iter().map(|f| path_arg(f)));
    }
    flag(&mut v, "--dataset-dir", d.dir.as_deref().map(path_arg));
    flag(&mut v, "--dataset-split", d.split.clone());
    flag(&mut v, "--dataset-config", d.config.clone());
    flag(&mut v, "--dataset-revision", d.revision.clone());
    flag(
        &mut v,
        "--input-text-field",
        Some(d.input_text_field.clone()),
    );
    flag(
        &mut v,
        "--generated-text-field",
        d.generated_text_field.clone(),
    );
    flag(&mut v, "--batch-size", a.batch_size.map(|b| b.to_string()));
    flag(&mut v, "--out-dir", Some(path_arg(dir)));
    // Results go to files (`rinseq show` views them); a heatmap per example only fills logs.
    v.push("--hide-attributions".into());
    v
}

/// Appends `flag value` when there is a value.
fn flag(v: &mut Vec<String>, flag: &str, value: Option<String>) {
    if let Some(value) = value {
        v.extend([flag.to_string(), value]);
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn absolute(p: &Path) -> String {
    path_arg(&std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
}

fn record_path(out_dir: &Path, name: &str) -> PathBuf {
    out_dir.join(".rinseq").join(format!("{name}.args"))
}

/// One argument per line: what identifies the results (the shard and plugin paths do not).
fn record_text(a: &PlannedAttribution) -> String {
    let mut s = a.attribute.join("\n");
    s.push('\n');
    s
}

/// Refuses an attribution whose recorded command differs from the planned one.
fn check_record(out_dir: &Path, a: &PlannedAttribution) -> Result<(), ExperimentError> {
    let Ok(recorded) = std::fs::read_to_string(record_path(out_dir, &a.name)) else {
        return Ok(());
    };
    if recorded == record_text(a) {
        return Ok(());
    }
    Err(ExperimentError::Changed {
        name: a.name.clone(),
        dir: a.dir.display().to_string(),
        merged: a.merged.display().to_string(),
    })
}

/// Example files already written in an attribution's folder (`DIR/examples/NNNNNN.json[.gz]`,
/// each complete: the store writes them atomically).
pub fn done_examples(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(EXAMPLES))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let stem = name
                .strip_suffix(".json.gz")
                .or_else(|| name.strip_suffix(".json"));
            stem.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        })
        .count()
}

/// Examples in a dataset of local files, read as `attribute-dataset` reads them (so a missing
/// field or an empty split fails here, before anything runs); `None` for hub datasets, which
/// are not downloaded to plan. `path` is the experiment file, for errors.
pub fn count_examples(path: &Path, d: &Dataset) -> Result<Option<usize>, ExperimentError> {
    if Format::from_name(&d.name).is_none() {
        return Ok(None);
    }
    let spec = DatasetSpec {
        name: d.name.clone(),
        files: d.files.clone(),
        dir: d.dir.clone(),
        split: d.split.clone().unwrap_or_else(|| "train".to_string()),
        config: d.config.clone(),
        revision: d.revision.clone(),
        input_field: d.input_text_field.clone(),
        generated_field: d.generated_text_field.clone(),
    };
    load_dataset(&spec)
        .map(|rows| Some(rows.len()))
        .map_err(|e| ExperimentError::Dataset {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// `s` quoted for a POSIX shell (unchanged when it needs no quoting).
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A command line for a shell: `program` then `args` (the first, the program name, skipped).
pub fn command_line(program: &Path, argv: &[String]) -> String {
    let mut parts = vec![shell_quote(&program.to_string_lossy())];
    parts.extend(argv.iter().skip(1).map(|a| shell_quote(a)));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b.json"), "a/b.json");
        assert_eq!(shell_quote("{\"k\": 1}"), "'{\"k\": 1}'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
