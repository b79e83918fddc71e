//! The experiment file: one TOML document naming a model, a dataset and a sweep of attributions.
//!
//! ```toml
//! name = "capitals"
//! out_dir = "runs/capitals"        # relative to this file, or absolute
//! [model]
//! id = "smollm2-135m"              # anything -m accepts
//! kwargs = { dtype = "f32" }       # optional, as --model-kwargs
//! [dataset]
//! name = "json"                    # as -d
//! files = ["data.jsonl"]           # relative to this file, or absolute
//! input_text_field = "text"
//! generated_text_field = "target"  # optional
//! [generation]                     # optional, HF generate keys as --generation-kwargs
//! max_new_tokens = 10
//! [[attribution]]                  # one table per attribution: a sweep is several of them
//! name = "sal"                     # optional, defaults to the method name
//! method = "saliency"
//! attributed_fn = "probability"    # optional
//! step_scores = ["probability"]    # optional
//! attribution_kwargs = { }         # optional, as --attribution-kwargs
//! [slurm]                          # used by --slurm
//! array = 3                        # number of shards (array tasks)
//! sbatch_args = ["--time=01:00:00"]
//! ```
//!
//! [`Experiment::load`] checks everything that needs no plugin; [`Experiment::check_plugins`]
//! checks the method and step-function names against the loaded registry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::ExperimentError;
use crate::plugins::{PluginKind, PluginRegistry};

/// A parsed, validated experiment: every path absolute, every name unique.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The experiment file (absolute).
    pub path: PathBuf,
    /// Its `name`.
    pub name: String,
    /// Where results go (absolute).
    pub out_dir: PathBuf,
    /// What `-m` gets: a local path is made absolute (relative to the file), anything else is
    /// kept as written (hub id, alias).
    pub model: String,
    /// `--model-kwargs`, if any.
    pub model_kwargs: Option<Value>,
    /// The dataset flags.
    pub dataset: Dataset,
    /// `--generation-kwargs`, if any.
    pub generation: Option<Value>,
    /// The attributions, in file order.
    pub attributions: Vec<Attribution>,
    /// The `[slurm]` table, if any.
    pub slurm: Option<Slurm>,
    /// The file's text, kept to turn byte offsets into line:column in later errors.
    text: String,
}

/// The `[dataset]` table, with paths made absolute.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `-d/--dataset-name` (`json`, `csv`, `text`, or a hub dataset).
    pub name: String,
    /// `--dataset-files` (absolute).
    pub files: Vec<PathBuf>,
    /// `--dataset-dir` (absolute).
    pub dir: Option<PathBuf>,
    /// `--dataset-split`.
    pub split: Option<String>,
    /// `--dataset-config`.
    pub config: Option<String>,
    /// `--dataset-revision`.
    pub revision: Option<String>,
    /// `--input-text-field`.
    pub input_text_field: String,
    /// `--generated-text-field`.
    pub generated_text_field: Option<String>,
}

/// One `[[attribution]]` table.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// Its name: the output folder `<out_dir>/<name>/` and file `<out_dir>/<name>.json`.
    pub name: String,
    /// `-a`: the attribution method.
    pub method: String,
    /// `--attributed-fn`, if given.
    pub attributed_fn: Option<String>,
    /// `--step-scores`.
    pub step_scores: Vec<String>,
    /// `--attribution-kwargs`, if given.
    pub attribution_kwargs: Option<Value>,
    /// `--batch-size`, if given.
    pub batch_size: Option<usize>,
    /// Byte offsets of the names above, for errors found after parsing.
    spans: AttributionSpans,
}

#[derive(Debug, Clone, Default)]
struct AttributionSpans {
    method: usize,
    attributed_fn: usize,
    step_scores: Vec<usize>,
}

/// The `[slurm]` table.
#[derive(Debug, Clone)]
pub struct Slurm {
    /// Number of shards: the array tasks `0..array`.
    pub array: u32,
    /// Extra `sbatch` arguments for both jobs (partition, account, time, …).
    pub sbatch_args: Vec<String>,
}

// The file as written. `deny_unknown_fields` turns typos into errors with a span.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Spanned<String>,
    out_dir: Spanned<PathBuf>,
    model: RawModel,
    dataset: RawDataset,
    generation: Option<toml::Table>,
    #[serde(default)]
    attribution: Vec<Spanned<RawAttribution>>,
    slurm: Option<RawSlurm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    kwargs: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    name: String,
    #[serde(default)]
    files: Vec<Spanned<PathBuf>>,
    dir: Option<Spanned<PathBuf>>,
    split: Option<String>,
    config: Option<String>,
    revision: Option<String>,
    input_text_field: String,
    generated_text_field: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttribution {
    name: Option<Spanned<String>>,
    method: Spanned<String>,
    attributed_fn: Option<Spanned<String>>,
    #[serde(default)]
    step_scores: Vec<Spanned<String>>,
    attribution_kwargs: Option<toml::Table>,
    batch_size: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlurm {
    array: Spanned<i64>,
    #[serde(default)]
    sbatch_args: Vec<String>,
}

impl Experiment {
    /// Reads and validates an experiment file: syntax, unknown keys, duplicate attribution
    /// names, missing dataset files and `slurm.array` < 1, each as one line with
    /// `file:line:column`.
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let abs = std::path::absolute(path).map_err(|source| ExperimentError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &abs)
    }

    /// Parses `text` as the experiment file at `path` (absolute: relative paths in the file
    /// are resolved against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ExperimentError> {
        let at = |offset: usize, message: String| at(path, text, offset, message);
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().replace('\n', "; "))
        })?;
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };

        let name = raw.name.get_ref().clone();
        check_name(&name, "name").map_err(|m| at(raw.name.span().start, m))?;
        let out_dir = resolve(raw.out_dir.get_ref());

        // `-m` takes local folders and files as well as hub ids and aliases: a relative id that
        // names something next to the experiment file is that thing, anything else is kept.
        let model_path = dir.join(&raw.model.id);
        let model = if !Path::new(&raw.model.id).is_absolute() && model_path.exists() {
            model_path.to_string_lossy().into_owned()
        } else {
            raw.model.id.clone()
        };

        let dataset_dir = match &raw.dataset.dir {
            Some(d) => {
                let p = resolve(d.get_ref());
                if !p.is_dir() {
                    return Err(at(
                        d.span().start,
                        format!(
                            "dataset folder {} not found (relative paths are relative to {})",
                            p.display(),
                            dir.display()
                        ),
                    ));
                }
                Some(p)
            }
            None => None,
        };

        let mut files = Vec::new();
        for f in &raw.dataset.files {
            // As `--dataset-files`: relative to `dir` when it is set.
            let p = match &dataset_dir {
                Some(d) if f.get_ref().is_relative() => d.join(f.get_ref()),
                _ => resolve(f.get_ref()),
            };
            if !p.is_file() {
                return Err(at(
                    f.span().start,
                    format!(
                        "dataset file {} not found (relative paths are relative to {})",
                        p.display(),
                        dataset_dir.as_deref().unwrap_or(&dir).display()
                    ),
                ));
            }
            files.push(p);
        }

        if raw.attribution.is_empty() {
            return Err(at(
                text.len(),
                "no [[attribution]] table: add one with at least `method = \"saliency\"`"
                    .to_string(),
            ));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut attributions = Vec::new();
        for (i, spanned) in raw.attribution.iter().enumerate() {
            let a = spanned.get_ref();
            let (name, name_at) = match &a.name {
                Some(n) => (n.get_ref().clone(), n.span().start),
                None => (a.method.get_ref().clone(), spanned.span().start),
            };
            check_name(&name, "attribution name").map_err(|m| at(name_at, m))?;
            if let Some(first) = seen.insert(name.clone(), i) {
                return Err(at(
                    name_at,
                    format!(
                        "duplicate attribution name '{name}' (attributions {} and {} write the \
                         same files): give each a distinct `name`",
                        first + 1,
                        i + 1
                    ),
                ));
            }
            let batch_size = match &a.batch_size {
                Some(b) if *b.get_ref() < 1 => {
                    return Err(at(
                        b.span().start,
                        format!("batch_size must be at least 1, got {}", b.get_ref()),
                    ))
                }
                Some(b) => Some(usize::try_from(*b.get_ref()).unwrap_or(usize::MAX)),
                None => None,
            };
            attributions.push(Attribution {
                name,
                method: a.method.get_ref().clone(),
                attributed_fn: a.attributed_fn.as_ref().map(|f| f.get_ref().clone()),
                step_scores: a.step_scores.iter().map(|s| s.get_ref().clone()).collect(),
                attribution_kwargs: a.attribution_kwargs.as_ref().map(table_to_json),
                batch_size,
                spans: AttributionSpans {
                    method: a.method.span().start,
                    attributed_fn: a.attributed_fn.as_ref().map_or(0, |f| f.span().start),
                    step_scores: a.step_scores.iter().map(|s| s.span().start).collect(),
                },
            });
        }

        let slurm = match raw.slurm {
            Some(s) => {
                let array = *s.array.get_ref();
                if array < 1 {
                    return Err(at(
                        s.array.span().start,
                        format!(
                            "slurm.array must be at least 1 (the number of shards), got {array}"
                        ),
                    ));
                }
                Some(Slurm {
                    array: u32::try_from(array).map_err(|_| {
                        at(
                            s.array.span().start,
                            format!("slurm.array is too large: {array}"),
                        )
                    })?,
                    sbatch_args: s.sbatch_args,
                })
            }
            None => None,
        };

        Ok(Self {
            path: path.to_path_buf(),
            name,
            out_dir,
            model,
            model_kwargs: raw.model.kwargs.as_ref().map(table_to_json),
            dataset: Dataset {
                name: raw.dataset.name,
                files,
                dir: dataset_dir,
                split: raw.dataset.split,
                config: raw.dataset.config,
                revision: raw.dataset.revision,
                input_text_field: raw.dataset.input_text_field,
                generated_text_field: raw.dataset.generated_text_field,
            },
            generation: raw.generation.as_ref().map(table_to_json),
            attributions,
            slurm,
            text: text.to_string(),
        })
    }

    /// Checks every attribution's method, attributed function and step scores against the
    /// loaded plugins, suggesting the nearest name.
    pub fn check_plugins(&self, registry: &PluginRegistry) -> Result<(), ExperimentError> {
        for a in &self.attributions {
            let mut names = vec![(PluginKind::Attribution, &a.method, a.spans.method)];
            if let Some(f) = &a.attributed_fn {
                names.push((PluginKind::StepFunction, f, a.spans.attributed_fn));
            }
            for (s, offset) in a.step_scores.iter().zip(&a.spans.step_scores) {
                names.push((PluginKind::StepFunction, s, *offset));
            }
            for (kind, name, offset) in names {
                if let Err(e) = registry.find(kind, name) {
                    return Err(at(
                        &self.path,
                        &self.text,
                        offset,
                        format!("attribution '{}': {e}", a.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `path:line:column: message` for a byte offset into `text`.
fn at(path: &Path, text: &str, offset: usize, message: String) -> ExperimentError {
    let (line, column) = line_column(text, offset);
    ExperimentError::At {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Names become file names: no separators, nothing hidden, nothing empty.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} '{name}' is not usable as a file name: use letters, digits, '_', '-', '.' or \
             '+', not starting with '.'"
        ))
    }
}

/// A TOML table as the JSON object the `--…-kwargs` flags take.
fn table_to_json(t: &toml::Table) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("a\nbc\n", 0), (1, 1));
        assert_eq!(line_column("a\nbc\n", 3), (2, 2));
        assert_eq!(line_column("a\nbc\n", 99), (3, 1));
    }

    #[test]
    fn names_must_be_file_names() {
        assert!(check_name("sal-1.b", "x").is_ok());
        assert!(check_name("a/b", "x").is_err());
        assert!(check_name(".x", "x").is_err());
        assert!(check_name("", "x").is_err());
    }
}
