//! Slurm: two sbatch scripts (a job array whose task `i` runs shard `i` of every attribution,
//! and a merge job), their submission with `sbatch --parsable`, and the wait for the merge.
//!
//! The merge job is submitted with `--dependency=afterok:<array job>`; if a shard fails, Slurm
//! keeps it pending forever (`DependencyNeverSatisfied`), so the wait polls `squeue` for both
//! jobs and cancels the merge when a shard fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::plan::{command_line, shell_quote, Plan};
use super::ExperimentError;

/// The scripts of one submission.
#[derive(Debug, Clone)]
pub struct Scripts {
    /// `<out_dir>/slurm/`: the scripts and the jobs' logs.
    pub dir: PathBuf,
    /// The job-array script.
    pub attribute: PathBuf,
    /// Its text.
    pub attribute_text: String,
    /// The merge script.
    pub merge: PathBuf,
    /// Its text.
    pub merge_text: String,
}

/// The submitted jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jobs {
    /// The job array's id.
    pub array: String,
    /// The merge job's id.
    pub merge: String,
}

/// The scripts for the pending attributions of `plan`, run by the binary at `exe`, with
/// `shards` array tasks (nothing is written).
pub fn scripts(plan: &Plan, exe: &Path, shards: u32) -> Scripts {
    let e = &plan.experiment;
    let dir = e.out_dir.join("slurm");
    let log = |name: &str| shell_quote(&dir.join(name).to_string_lossy());
    let header = |what: &str| {
        format!(
            "#!/bin/bash\n# rinseq run {}: {what} of experiment '{}'.\n# Written by `rinseq run \
             --slurm`, which submits it with `sbatch --parsable [slurm.sbatch_args] SCRIPT`.\n",
            shell_quote(&e.path.to_string_lossy()),
            e.name
        )
    };

    let mut attribute = header(&format!("{shards} shards of every attribution"));
    attribute.push_str(&format!(
        "#SBATCH --job-name={}\n#SBATCH --array=0-{}\n#SBATCH --output={}\n\nset -euo pipefail\n",
        shell_quote(&format!("rinseq-{}", e.name)),
        shards - 1,
        log("attribute-%A_%a.log"),
    ));
    for a in plan.pending() {
        // The shard is the only part that differs from a local run's command.
        let argv = plan.attribute_argv(a, "SHARD");
        let line = command_line(exe, &argv[..argv.len() - 1]);
        attribute.push_str(&format!(
            "\n# {} ({})\n{line} \"${{SLURM_ARRAY_TASK_ID}}/{shards}\"\n",
            a.name, a.method
        ));
    }

    let mut merge = header("the merge of every attribution's shards");
    merge.push_str(&format!(
        "#SBATCH --job-name={}\n#SBATCH --output={}\n\nset -euo pipefail\n",
        shell_quote(&format!("rinseq-{}-merge", e.name)),
        log("merge-%j.log"),
    ));
    for a in plan.pending() {
        merge.push_str(&format!(
            "\n# {}\n{}\n",
            a.name,
            command_line(exe, &plan.merge_argv(a))
        ));
    }

    Scripts {
        attribute: dir.join("attribute.sbatch"),
        merge: dir.join("merge.sbatch"),
        dir,
        attribute_text: attribute,
        merge_text: merge,
    }
}

/// The `sbatch` command lines that submit `scripts` (the merge's dependency as `JOBID`).
pub fn submit_commands(scripts: &Scripts, sbatch_args: &[String]) -> [Vec<String>; 2] {
    let mut array = vec!["sbatch".to_string(), "--parsable".to_string()];
    array.extend(sbatch_args.iter().cloned());
    let mut merge = array.clone();
    array.push(scripts.attribute.to_string_lossy().into_owned());
    merge.push("--dependency=afterok:JOBID".to_string());
    merge.push(scripts.merge.to_string_lossy().into_owned());
    [array, merge]
}

/// Writes the scripts (the log folder too).
pub fn write(scripts: &Scripts) -> Result<(), ExperimentError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExperimentError::Write { path, source }
    };
    std::fs::create_dir_all(&scripts.dir).map_err(io(&scripts.dir))?;
    for (path, text) in [
        (&scripts.attribute, &scripts.attribute_text),
        (&scripts.merge, &scripts.merge_text),
    ] {
        std::fs::write(path, text).map_err(io(path))?;
    }
    Ok(())
}

/// The path of `program` on `PATH`, or the error `rinseq run --slurm` reports.
pub fn find_program(program: &str) -> Result<PathBuf, ExperimentError> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| ExperimentError::SlurmMissing {
            program: program.to_string(),
        })
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Submits the job array, then the merge job depending on it; returns their ids.
pub fn submit(scripts: &Scripts, sbatch_args: &[String]) -> Result<Jobs, ExperimentError> {
    let [array_cmd, merge_cmd] = submit_commands(scripts, sbatch_args);
    let array = job_id(&output(&array_cmd)?);
    let merge_cmd: Vec<String> = merge_cmd
        .into_iter()
        .map(|a| a.replace("JOBID", &array))
        .collect();
    let merge = match output(&merge_cmd) {
        Ok(out) => job_id(&out),
        Err(e) => {
            // Without its merge the array's results would never be merged: do not leave it.
            let _ = output(&["scancel".to_string(), array.clone()]);
            return Err(e);
        }
    };
    Ok(Jobs { array, merge })
}

/// `sbatch --parsable` prints `id` or `id;cluster`.
fn job_id(out: &str) -> String {
    out.trim().split(';').next().unwrap_or_default().to_string()
}

/// Runs a command; its stdout, or an error with its stderr's last line.
fn output(argv: &[String]) -> Result<String, ExperimentError> {
    let command = argv.join(" ");
    let (program, args) = argv.split_first().ok_or_else(|| ExperimentError::Slurm {
        command: command.clone(),
        message: "empty command".to_string(),
    })?;
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ExperimentError::Slurm {
            command: command.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(ExperimentError::Slurm {
            command,
            message: last.map_or_else(|| out.status.to_string(), |l| l.trim().to_string()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Slurm job states that end a job without success.
const FAILED: &[&str] = &[
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "REVOKED",
];

/// `(id, state, reason)` of `job`, one line per array task (`id_task`, `-r`);
/// `None` when `squeue` no longer knows the job.
fn squeue(job: &str) -> Option<Vec<(String, String, String)>> {
    let argv: Vec<String> = [
        "squeue",
        "-h",
        "-r",
        "--states=all",
        "-j",
        job,
        "-o",
        "%i|%T|%r",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = output(&argv).ok()?;
    let rows: Vec<_> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, '|');
            Some((
                f.next()?.to_string(),
                f.next()?.to_string(),
                f.next().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    (!rows.is_empty()).then_some(rows)
}

/// The job's final state from accounting (`sacct`), when accounting is enabled.
fn sacct_state(job: &str) -> Option<String> {
    let argv: Vec<String> = ["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = output(&argv).ok()?;
    let state = out.lines().next()?.split_whitespace().next()?.to_string();
    Some(state)
}

/// Waits until the merge job has finished: `Ok` when it completed, an error naming the failed
/// job and its log otherwise (a failed shard cancels the merge). Polls every 2 s for the first
/// minute, then every 10 s.
pub fn wait(plan: &Plan, scripts: &Scripts, jobs: &Jobs) -> Result<(), ExperimentError> {
    let start = Instant::now();
    let mut last_report = String::new();
    // `squeue` can fail now and then on a busy controller: only a job unknown three polls in a
    // row has left the queue.
    let mut unknown = 0;
    loop {
        match squeue(&jobs.merge) {
            None if unknown < 2 => unknown += 1,
            None => return finished_elsewhere(plan, scripts, jobs),
            Some(rows) => {
                unknown = 0;
                let (_, state, reason) = rows[0].clone();
                if state == "COMPLETED" {
                    return Ok(());
                }
                if FAILED.contains(&state.as_str()) {
                    return Err(job_failed(&format!(
                        "merge job {} ended {state}: see {}",
                        jobs.merge,
                        scripts
                            .dir
                            .join(format!("merge-{}.log", jobs.merge))
                            .display()
                    )));
                }
                let mut report = format!("merge job {}: {state}", jobs.merge);
                // While the merge waits, a failed shard means it never runs.
                if state == "PENDING" {
                    let shards = squeue(&jobs.array).unwrap_or_default();
                    if let Some(failed) = failed_shard(scripts, jobs, &shards) {
                        let _ = output(&["scancel".to_string(), jobs.merge.clone()]);
                        return Err(job_failed(&format!(
                            "{failed}; merge job {} cancelled",
                            jobs.merge
                        )));
                    }
                    if reason == "DependencyNeverSatisfied" {
                        let _ = output(&["scancel".to_string(), jobs.merge.clone()]);
                        return Err(job_failed(&format!(
                            "a shard of job array {} failed (logs: {}); merge job {} cancelled",
                            jobs.array,
                            scripts.dir.display(),
                            jobs.merge
                        )));
                    }
                    report = format!("job array {}: {}; {report}", jobs.array, summary(&shards));
                }
                if report != last_report {
                    eprintln!("{report} ({:.0} s)", start.elapsed().as_secs_f64());
                    last_report = report;
                }
            }
        }
        let pause = if start.elapsed() < Duration::from_secs(60) {
            2
        } else {
            10
        };
        std::thread::sleep(Duration::from_secs(pause));
    }
}

/// The first array task that ended without success, with its log.
fn failed_shard(
    scripts: &Scripts,
    jobs: &Jobs,
    shards: &[(String, String, String)],
) -> Option<String> {
    let (id, state, _) = shards
        .iter()
        .find(|(_, s, _)| FAILED.contains(&s.as_str()))?;
    let task = id.rsplit('_').next().unwrap_or_default();
    Some(format!(
        "shard {task} (job {id}) ended {state}: see {}",
        scripts
            .dir
            .join(format!("attribute-{}_{task}.log", jobs.array))
            .display()
    ))
}

/// `2 RUNNING, 1 COMPLETED`: the array's tasks counted by state.
fn summary(shards: &[(String, String, String)]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (_, state, _) in shards {
        match counts.iter_mut().find(|(s, _)| s == state) {
            Some((_, n)) => *n += 1,
            None => counts.push((state, 1)),
        }
    }
    if counts.is_empty() {
        return "gone from the queue".to_string();
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The merge job left `squeue` between two polls: ask accounting, else look at the files.
fn finished_elsewhere(plan: &Plan, scripts: &Scripts, jobs: &Jobs) -> Result<(), ExperimentError> {
    match sacct_state(&jobs.merge) {
        Some(s) if s == "COMPLETED" => Ok(()),
        Some(s) => Err(job_failed(&format!(
            "merge job {} ended {s}: see {}",
            jobs.merge,
            scripts.dir.display()
        ))),
        None => {
            let missing: Vec<String> = plan
                .pending()
                .filter(|a| !a.merged.is_file())
                .map(|a| a.merged.display().to_string())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(job_failed(&format!(
                    "merge job {} left the queue without writing {} (logs: {})",
                    jobs.merge,
                    missing.join(", "),
                    scripts.dir.display()
                )))
            }
        }
    }
}

fn job_failed(message: &str) -> ExperimentError {
    ExperimentError::Job {
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsable_ids() {
        assert_eq!(job_id("12\n"), "12");
        assert_eq!(job_id("12;cluster\n"), "12");
    }
}
