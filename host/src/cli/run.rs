//! `rinseq run EXP.toml`: run an experiment (a sweep of dataset attributions) locally, or as a
//! Slurm job array plus a merge job.
//!
//! ```text
//! rinseq run capitals.toml --dry-run      # what would run, and the exact commands
//! rinseq run capitals.toml                # in this process, resumable
//! rinseq run capitals.toml --slurm --wait # sbatch, then wait for the merge
//! ```

use std::path::{Path, PathBuf};

use clap::Parser;

use super::progress::Interrupted;
use super::Cli;
use crate::experiment::plan::{command_line, done_examples, shell_quote, State};
use crate::experiment::{slurm, Experiment, ExperimentError, Plan, PlannedAttribution};
use crate::plugins::{PluginRegistry, PluginSources};

/// Arguments of `rinseq run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The experiment file (TOML; see the README, "Experiments and Slurm").
    #[arg(value_name = "EXP.toml")]
    pub experiment: PathBuf,
    /// List the work (attributions, examples, output paths, commands) without running it.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Submit to Slurm: a job array of `slurm.array` shards and a merge job depending on it.
    #[arg(long = "slurm")]
    pub slurm: bool,
    /// With --slurm: return when the merge job has finished (an error if a job failed).
    #[arg(long = "wait", requires = "slurm")]
    pub wait: bool,
}

/// Runs `rinseq run`.
pub fn run(args: &RunArgs, sources: &PluginSources) -> Result<(), Box<dyn std::error::Error>> {
    let experiment = Experiment::load(&args.experiment)?;
    // Every name is checked before anything runs: a typo in the last attribution of a sweep
    // must not surface hours later.
    let registry = PluginRegistry::load(sources)?;
    experiment.check_plugins(&registry)?;
    drop(registry);
    let plan = Plan::new(experiment, sources)?;
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| format!("cannot find the path of the rinseq binary: {e}"))?;

    let shards = plan.experiment.slurm.as_ref().map_or(1, |s| s.array);
    let sbatch_args = plan
        .experiment
        .slurm
        .as_ref()
        .map(|s| s.sbatch_args.clone())
        .unwrap_or_default();
    if args.dry_run {
        print_plan(&plan, &exe, args.slurm);
        if args.slurm && plan.pending().next().is_none() {
            println!("slurm: nothing to submit (every attribution is done)");
        } else if args.slurm {
            let scripts = slurm::scripts(&plan, &exe, shards);
            print_slurm(&scripts, &sbatch_args);
        }
        return Ok(());
    }
    if plan.pending().next().is_none() {
        println!("{}: every attribution is done", plan.experiment.name);
        print_outputs(&plan);
        return Ok(());
    }
    if args.slurm {
        run_slurm(&plan, &exe, shards, &sbatch_args, args.wait)
    } else {
        run_local(&plan)
    }
}

/// Runs every pending attribution in this process: all its examples, then the merge.
fn run_local(plan: &Plan) -> Result<(), Box<dyn std::error::Error>> {
    let total = plan.attributions.len();
    for (i, a) in plan.attributions.iter().enumerate() {
        eprintln!(
            "[{}/{total}] {} ({}): {}",
            i + 1,
            a.name,
            a.method,
            if a.state == State::Done {
                format!("done, {} exists", a.merged.display())
            } else {
                format!("{} → {}", examples(plan), a.dir.display())
            }
        );
        if a.state == State::Done {
            continue;
        }
        if crate::progress::is_cancelled() {
            return Err(interrupted(plan, a, "not started").into());
        }
        plan.record(a)?;
        run_in_process(plan, a, "attribute-dataset", &plan.attribute_argv(a, "0/1"))?;
        run_in_process(plan, a, "merge", &plan.merge_argv(a))?;
        eprintln!("[{}/{total}] {}: {}", i + 1, a.name, a.merged.display());
    }
    print_outputs(plan);
    Ok(())
}

/// Parses `argv` with the `Cli` and runs it here, as the `rinseq` binary would. A Ctrl-C stays
/// an [`Interrupted`] (exit code 130) whose note says how to resume the whole experiment.
fn run_in_process(
    plan: &Plan,
    a: &PlannedAttribution,
    step: &'static str,
    argv: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    let fail = |message: String| ExperimentError::Step {
        name: a.name.clone(),
        step,
        message,
    };
    let cli = Cli::try_parse_from(argv)
        .map_err(|e| fail(e.to_string().lines().next().unwrap_or_default().to_string()))?;
    match super::run(&cli) {
        Ok(()) => Ok(()),
        Err(e) if e.is::<Interrupted>() || crate::progress::is_cancelled() => {
            Err(interrupted(plan, a, &e.to_string()).into())
        }
        Err(e) => Err(fail(e.to_string()).into()),
    }
}

/// The Ctrl-C note of `rinseq run`: what the step kept, and the command that resumes.
fn interrupted(plan: &Plan, a: &PlannedAttribution, what: &str) -> Interrupted {
    Interrupted::new(format!(
        "attribution '{}': {}; `rinseq run {}` resumes the experiment",
        a.name,
        // The step's own advice names its command, not the experiment's.
        what.trim_start_matches("interrupted: ")
            .trim_end_matches("; run the same command again to resume"),
        shell_quote(&plan.experiment.path.to_string_lossy())
    ))
}

/// Writes the scripts, submits them, prints the job ids and, with `wait`, waits for the merge.
fn run_slurm(
    plan: &Plan,
    exe: &Path,
    shards: u32,
    sbatch_args: &[String],
    wait: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    slurm::find_program("sbatch")?;
    if wait {
        slurm::find_program("squeue")?;
    }
    for a in plan.pending() {
        plan.record(a)?;
    }
    let scripts = slurm::scripts(plan, exe, shards);
    slurm::write(&scripts)?;
    let jobs = slurm::submit(&scripts, sbatch_args)?;
    println!(
        "submitted job array {} ({shards} shards of {} attribution(s)) and merge job {} \
         (after {} succeeds); scripts and logs in {}",
        jobs.array,
        plan.pending().count(),
        jobs.merge,
        jobs.array,
        scripts.dir.display()
    );
    if !wait {
        println!("when merge job {} has finished:", jobs.merge);
        print_outputs(plan);
        return Ok(());
    }
    slurm::wait(plan, &scripts, &jobs)?;
    println!("merge job {} completed", jobs.merge);
    print_outputs(plan);
    Ok(())
}

/// `N examples` or `the dataset's examples` when they cannot be counted beforehand.
fn examples(plan: &Plan) -> String {
    match plan.examples {
        Some(n) => format!("{n} example{}", if n == 1 { "" } else { "s" }),
        None => "the dataset's examples".to_string(),
    }
}

/// The merged files, one per line.
fn print_outputs(plan: &Plan) {
    for a in &plan.attributions {
        println!("{}\t{}", a.name, a.merged.display());
    }
}

/// `--dry-run`: the attributions, their examples and outputs, and the exact commands.
fn print_plan(plan: &Plan, exe: &Path, slurm: bool) {
    let e = &plan.experiment;
    println!("experiment {} ({})", e.name, e.path.display());
    println!("  model: {}", e.model);
    println!("  dataset: {} ({})", e.dataset.name, examples(plan));
    for f in &e.dataset.files {
        println!("    {}", f.display());
    }
    println!("  out_dir: {}", e.out_dir.display());
    println!("{} attribution(s):", plan.attributions.len());
    let shards = e.slurm.as_ref().map_or(1, |s| s.array);
    for a in &plan.attributions {
        match (a.state, plan.examples) {
            (State::Started, Some(n)) => println!(
                "- {} ({}): {}, {} of {n} examples done",
                a.name,
                a.method,
                a.state,
                done_examples(&a.dir)
            ),
            _ => println!("- {} ({}): {}", a.name, a.method, a.state),
        }
        println!("    per-example files: {}/", a.dir.display());
        println!("    merged: {}", a.merged.display());
        if a.state == State::Done {
            continue;
        }
        if slurm {
            let argv = plan.attribute_argv(a, "SHARD");
            println!(
                "    $ {} \"${{SLURM_ARRAY_TASK_ID}}/{shards}\"",
                command_line(exe, &argv[..argv.len() - 1])
            );
        } else {
            println!(
                "    $ {}",
                command_line(exe, &plan.attribute_argv(a, "0/1"))
            );
        }
        println!("    $ {}", command_line(exe, &plan.merge_argv(a)));
    }
}

/// `--dry-run --slurm`: the scripts and the sbatch commands.
fn print_slurm(scripts: &slurm::Scripts, sbatch_args: &[String]) {
    let [array, merge] = slurm::submit_commands(scripts, sbatch_args);
    let line = |argv: &[String]| {
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("slurm (nothing submitted):");
    println!("  $ {}", line(&array));
    println!("  $ {}", line(&merge));
    for (path, text) in [
        (&scripts.attribute, &scripts.attribute_text),
        (&scripts.merge, &scripts.merge_text),
    ] {
        println!("--- {}", path.display());
        print!("{text}");
    }
}
