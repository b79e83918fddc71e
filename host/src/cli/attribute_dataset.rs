//! `rinseq attribute-dataset`: Inseq's `inseq attribute-dataset` (flags in kebab-case, every
//! `rinseq attribute` flag but `-i`/`-g`), plus resumable and sharded runs:
//!
//! ```text
//! rinseq attribute-dataset -m gpt2 -a saliency -d json --dataset-files prompts.jsonl \
//!     --input-text-field prompt --out-dir runs/exp1 --shard 0/4 --batch-size 8
//! rinseq merge runs/exp1 -o exp1.json
//! ```
//!
//! Without `--out-dir` the examples are attributed in memory and `-o` writes one file, as
//! Inseq does. With `--out-dir DIR` each finished example is written to `DIR/examples/` at once
//! (one batch of results in memory at most), `DIR/manifest.json` pins the configuration, and
//! the same command run again skips the finished examples.

use std::path::PathBuf;

use serde_json::Value;

use super::attribute::{parse_object, save_options, shown_aggregation, AttributionFlags};
use super::attributor::{prepare, AttributionPlugins, Attributor};
use super::paths::check_writable;
use super::progress::{Bars, Interrupted};
use crate::aggregation::{aggregate_for_view, AggregationSpec};
use crate::dataset::load::{load_dataset, DatasetSpec, Example};
use crate::dataset::manifest::{hex, Config, Manifest};
use crate::dataset::merge::merge_outputs;
use crate::dataset::shard::Shard;
use crate::dataset::store::ExampleStore;
use crate::output::FeatureAttributionOutput;
use crate::plugins::PluginSources;
use crate::views;

type BoxError = Box<dyn std::error::Error>;

/// Examples per batch with `--out-dir` when `--batch-size` is not given (bounds memory and
/// the work a kill loses).
pub const DEFAULT_OUT_DIR_BATCH: usize = 8;

/// Arguments of `rinseq attribute-dataset`.
#[derive(Debug, Clone, clap::Args)]
pub struct AttributeDatasetArgs {
    /// Dataset: json, csv or parquet (with --dataset-files or --dataset-dir), or a hub dataset
    /// id org/name.
    #[arg(short = 'd', long = "dataset-name", visible_alias = "dataset")]
    pub dataset_name: String,
    /// Data files (repeatable; relative ones are joined to --dataset-dir).
    #[arg(long = "dataset-files", num_args = 1..)]
    pub dataset_files: Vec<PathBuf>,
    /// Folder holding the data files.
    #[arg(long = "dataset-dir")]
    pub dataset_dir: Option<PathBuf>,
    /// The split to attribute.
    #[arg(long = "dataset-split", default_value = "train")]
    pub dataset_split: String,
    /// Dataset configuration (hub datasets).
    #[arg(long = "dataset-config")]
    pub dataset_config: Option<String>,
    /// Dataset revision (hub datasets).
    #[arg(long = "dataset-revision")]
    pub dataset_revision: Option<String>,
    /// Field holding the input texts.
    #[arg(long = "input-text-field", visible_alias = "input")]
    pub input_text_field: String,
    /// Field holding forced targets (decoder-only: prompt included); generation when absent.
    #[arg(long = "generated-text-field", visible_alias = "generated")]
    pub generated_text_field: Option<String>,
    /// Write one Inseq file per example to DIR/examples/ and DIR/manifest.json; running the same
    /// command again resumes. Merge with `rinseq merge DIR -o OUT.json`.
    #[arg(long = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Attribute only the examples with index % N == I (0-based I; default: from
    /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set, else all).
    #[arg(long = "shard", value_name = "I/N")]
    pub shard: Option<String>,
    /// Every `rinseq attribute` flag but -i/-g.
    #[command(flatten)]
    pub flags: AttributionFlags,
}

impl AttributeDatasetArgs {
    /// The dataset these flags name.
    pub fn spec(&self) -> DatasetSpec {
        DatasetSpec {
            name: self.dataset_name.clone(),
            files: self.dataset_files.clone(),
            dir: self.dataset_dir.clone(),
            split: self.dataset_split.clone(),
            config: self.dataset_config.clone(),
            revision: self.dataset_revision.clone(),
            input_field: self.input_text_field.clone(),
            generated_field: self.generated_text_field.clone(),
        }
    }

    /// The shard: `--shard`, else the SLURM job array task, else all examples.
    pub fn shard(&self) -> Result<Shard, BoxError> {
        Ok(Shard::resolve(self.shard.as_deref(), |k| {
            std::env::var(k).ok()
        })?)
    }
}

/// Flags that cannot go with `--out-dir` (each a one-line error naming the alternative).
fn check_flags(args: &AttributeDatasetArgs) -> Result<(), BoxError> {
    let f = &args.flags;
    if args.out_dir.is_some() {
        let refused = [
            (f.save_path.is_some(), "-o/--save-path", "`rinseq merge DIR -o OUT.json` writes one file once the shards are done"),
            (f.split_sequences, "--split-sequences", "the folder already holds one file per example"),
            (f.viz_path.is_some(), "--viz-path", "`rinseq merge DIR -o OUT.json` then `rinseq show OUT.json --format html -o OUT.html`"),
        ];
        if let Some((_, flag, instead)) = refused.iter().find(|(given, _, _)| *given) {
            return Err(format!("{flag} does not go with --out-dir: {instead}").into());
        }
    } else {
        if let Some(p) = &f.save_path {
            check_writable("--save-path", p)?;
        }
        if let Some(p) = &f.viz_path {
            check_writable("--viz-path", p)?;
        }
    }
    Ok(())
}

/// Runs `rinseq attribute-dataset`.
pub fn run(args: &AttributeDatasetArgs, sources: &PluginSources) -> Result<(), BoxError> {
    // Every bad input fails before anything is written or the model is loaded.
    let shard = args.shard()?;
    check_flags(args)?;
    let user_spec = args.flags.aggregation.spec()?;
    let examples = load_dataset(&args.spec())?;
    if examples.is_empty() {
        return Err(format!(
            "dataset {} (split {}) has no examples: check --dataset-files / --dataset-split",
            args.dataset_name, args.dataset_split
        )
        .into());
    }
    let plugins = prepare(&args.flags, sources)?;
    match &args.out_dir {
        Some(dir) => run_out_dir(args, dir, shard, &examples, plugins, user_spec),
        None => run_in_memory(args, shard, &examples, plugins, user_spec),
    }
}

/// The inputs, forced targets (all or none) and dataset rows of `batch`.
fn texts(batch: &[&Example]) -> (Vec<String>, Vec<String>, Vec<usize>) {
    let inputs = batch.iter().map(|e| e.input.clone()).collect();
    let generated: Option<Vec<String>> = batch.iter().map(|e| e.generated.clone()).collect();
    let rows = batch.iter().map(|e| e.index).collect();
    (inputs, generated.unwrap_or_default(), rows)
}

/// Prints the heatmaps of `out` (unless `--hide-attributions`) with the bars cleared.
fn show(
    attributor: &Attributor,
    out: &FeatureAttributionOutput,
    spec: &AggregationSpec,
    bars: &Bars,
) -> Result<(), BoxError> {
    let shown = aggregate_for_view(&attributor.plugins.registry, out, spec)?;
    bars.suspend(|| print!("{}", views::console(&shown, views::console_color_wanted())));
    Ok(())
}

/// Inseq's behaviour: every example of the shard in memory, one `-o` file at the end.
fn run_in_memory(
    args: &AttributeDatasetArgs,
    shard: Shard,
    examples: &[Example],
    plugins: AttributionPlugins,
    user_spec: AggregationSpec,
) -> Result<(), BoxError> {
    let flags = &args.flags;
    let mine: Vec<&Example> = examples
        .iter()
        .filter(|e| shard.contains(e.index))
        .collect();
    let attributor = Attributor::new(flags, plugins)?;
    let bars = Bars::start(flags.quiet, Some((0, mine.len() as u64)));
    let batch = flags.batch_size.unwrap_or(mine.len()).max(1);
    let mut parts = Vec::new();
    let interrupted = || {
        Interrupted::new(
            "nothing was saved (without --out-dir results stay in memory until the end); run the command again, with --out-dir DIR to keep finished examples",
        )
    };
    for chunk in mine.chunks(batch) {
        if crate::progress::is_cancelled() {
            return Err(interrupted().into());
        }
        let (inputs, generated, rows) = texts(chunk);
        match attributor.attribute(&inputs, &generated, &rows) {
            Err(_) if crate::progress::is_cancelled() => return Err(interrupted().into()),
            r => parts.push(r?.output_with_steps(flags.output_step_attributions)),
        }
        bars.examples_done(chunk.len() as u64);
    }
    let out = merge_outputs(parts);
    if !flags.hide_attributions || flags.viz_path.is_some() {
        let spec = shown_aggregation(user_spec, attributor.plugins.default_aggregation());
        let mut view = out.clone();
        view.step_attributions = None;
        if !flags.hide_attributions {
            show(&attributor, &view, &spec, &bars)?;
        }
        if let Some(path) = &flags.viz_path {
            let shown = aggregate_for_view(&attributor.plugins.registry, &view, &spec)?;
            let html = views::render(&shown, views::Format::Html, &Default::default())?;
            std::fs::write(path, html)
                .map_err(|e| format!("cannot write --viz-path {}: {e}", path.display()))?;
            eprintln!("saved {}", path.display());
        }
    }
    bars.finish();
    if let Some(path) = &flags.save_path {
        for written in out.save(path, &save_options(flags)?)? {
            eprintln!("saved {}", written.display());
        }
    }
    Ok(())
}

/// Resumable run into `dir`: one file per finished example, at most one batch in memory.
fn run_out_dir(
    args: &AttributeDatasetArgs,
    dir: &std::path::Path,
    shard: Shard,
    examples: &[Example],
    plugins: AttributionPlugins,
    user_spec: AggregationSpec,
) -> Result<(), BoxError> {
    let flags = &args.flags;
    let config = config(args, &plugins, examples)?;
    // A folder of another configuration is refused before the model loads.
    Manifest::check(dir, &config)?;
    let attributor = Attributor::new(flags, plugins)?;
    let manifest = Manifest {
        command_line: std::env::args().collect(),
        config_hash: config.hash(),
        config,
        examples: examples.len(),
        compress: flags.compress,
        model: flags.model.clone(),
        model_type: attributor.model.loaded().spec.model_type.clone(),
        rinseq_version: super::version_line().to_string(),
        plugins: attributor
            .plugins
            .versions()
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
    };
    let manifest = manifest.create_or_check(dir)?;
    if manifest.rinseq_version != super::version_line() {
        eprintln!(
            "warning: {} was started by rinseq {}; this is rinseq {}",
            dir.display(),
            manifest.rinseq_version,
            super::version_line()
        );
    }
    let store = ExampleStore::new(dir, manifest.compress);
    store.remove_temporaries(|i| shard.contains(i));
    let mine: Vec<&Example> = examples
        .iter()
        .filter(|e| shard.contains(e.index))
        .collect();
    let pending: Vec<&Example> = mine
        .iter()
        .copied()
        .filter(|e| !store.is_done(e.index))
        .collect();
    let mut done = mine.len() - pending.len();
    if pending.is_empty() {
        eprintln!(
            "all {} examples of shard {shard} are already in {}",
            mine.len(),
            dir.display()
        );
        return Ok(());
    }
    let spec = shown_aggregation(user_spec, attributor.plugins.default_aggregation());
    let options = save_options(flags)?;
    let bars = Bars::start(flags.quiet, Some((done as u64, mine.len() as u64)));
    let interrupted = |done: usize| {
        Interrupted::new(format!(
            "{done} of {} examples of shard {shard} are saved in {}; run the same command again to resume",
            mine.len(),
            dir.display()
        ))
    };
    let batch = flags.batch_size.unwrap_or(DEFAULT_OUT_DIR_BATCH).max(1);
    for chunk in pending.chunks(batch) {
        if crate::progress::is_cancelled() {
            return Err(interrupted(done).into());
        }
        let (inputs, generated, rows) = texts(chunk);
        let attributed = match attributor.attribute(&inputs, &generated, &rows) {
            Err(_) if crate::progress::is_cancelled() => return Err(interrupted(done).into()),
            r => r?,
        };
        if !flags.hide_attributions {
            show(&attributor, attributed.output(), &spec, &bars)?;
        }
        let time = attributed
            .info()
            .get("exec_time")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            / chunk.len() as f64;
        for (k, example) in chunk.iter().enumerate() {
            let mut part = attributed.part(k, flags.output_step_attributions);
            part.info.insert("exec_time".into(), time.into());
            store.write(example.index, &part, &options)?;
            done += 1;
            bars.examples_done(1);
        }
    }
    bars.finish();
    let left = crate::dataset::merge::missing(dir, &manifest).len();
    if left == 0 {
        eprintln!(
            "all {} examples are in {}: `rinseq merge {} -o OUT.json` writes one file",
            manifest.examples,
            dir.display(),
            dir.display()
        );
    } else {
        eprintln!(
            "shard {shard}: {done} examples in {} ({left} of {} still missing from other shards)",
            dir.display(),
            manifest.examples
        );
    }
    Ok(())
}

/// Everything that changes the results of `args`, in a fixed order (the manifest's config).
pub fn config(
    args: &AttributeDatasetArgs,
    plugins: &AttributionPlugins,
    examples: &[Example],
) -> Result<Config, BoxError> {
    let f = &args.flags;
    let step_params: serde_json::Map<String, Value> = plugins
        .step_fns
        .iter()
        .map(|(n, i)| (n.clone(), i.params.clone()))
        .collect();
    let files: Vec<String> = args
        .dataset_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let mut c = Config::default();
    c.set("--model-name-or-path", f.model.clone())
        .set(
            "--model-kwargs",
            parse_object("--model-kwargs", &f.model_kwargs)?,
        )
        .set("--attribution-method", f.method.clone())
        .set("--attributed-fn", f.attributed_fn.clone())
        .set("--step-scores", f.step_scores.clone())
        .set(
            "--attribution-kwargs",
            parse_object("--attribution-kwargs", &f.attribution_kwargs)?,
        )
        .set("method parameters", plugins.method.params.clone())
        .set("attributed-fn parameters", plugins.target_fn.params.clone())
        .set("step-scores parameters", step_params)
        .set(
            "--generation-kwargs",
            parse_object("--generation-kwargs", &f.generation_kwargs)?,
        )
        .set("--attribute-target", f.attribute_target)
        .set("--include-eos-baseline", f.include_eos_baseline)
        .set("--start-pos", f.start_pos)
        .set("--end-pos", f.end_pos)
        .set("--output-step-attributions", f.output_step_attributions)
        .set("--scores-precision", f.scores_precision.clone())
        .set("--compress", f.compress)
        .set("--dataset-name", args.dataset_name.clone())
        .set("--dataset-files", files)
        .set("--dataset-dir", path(&args.dataset_dir))
        .set("--dataset-split", args.dataset_split.clone())
        .set("--dataset-config", args.dataset_config.clone())
        .set("--dataset-revision", args.dataset_revision.clone())
        .set("--input-text-field", args.input_text_field.clone())
        .set("--generated-text-field", args.generated_text_field.clone())
        .set("dataset contents (sha256)", contents_hash(examples));
    Ok(c)
}

/// SHA-256 over every example's index and texts: a changed data file is a changed config.
fn contents_hash(examples: &[Example]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for e in examples {
        let record = serde_json::json!([e.index, e.input, e.generated]);
        h.update(record.to_string().as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}
