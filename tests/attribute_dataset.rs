//! `rinseq attribute-dataset` and `rinseq merge` on the tiny GPT-2 fixture: an `--out-dir` run
//! killed with SIGKILL and resumed, three shards, SLURM's variables, Ctrl-C, and one-line
//! errors that leave nothing half written.

mod plugin_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use plugin_support::build::{root, workspace_plugin};
use rinseq::output::FeatureAttributionOutput;

const MODEL: &str = "tests/fixtures/models/gpt2";

/// A JSONL file of `n` prompts in `dir`.
fn prompts(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("prompts.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"id": i, "prompt": format!("Example number {i} says that")})
                .to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn command(args: &[&str]) -> Command {
    workspace_plugin("rinseq_gradient_methods");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rinseq"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("RINSEQ_PLUGIN_PATH")
        .env_remove("RINSEQ_REGISTRY")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("SLURM_ARRAY_TASK_MIN");
    cmd
}

/// `rinseq attribute-dataset` on `data` with the test's attribution flags, plus `extra`.
fn dataset_args<'a>(data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "attribute-dataset",
        "-m",
        MODEL,
        "-a",
        "saliency",
        "--step-scores",
        "probability",
        "-d",
        "json",
        "--dataset-files",
        data,
        "--generation-kwargs",
        r#"{"max_new_tokens": 4}"#,
        "--hide-attributions",
    ];
    if !extra.contains(&"--input-text-field") {
        args.extend(["--input-text-field", "prompt"]);
    }
    args.extend_from_slice(extra);
    args
}

fn run(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

fn ok(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command that must fail with exit code 1 and one line on stderr; returns that line.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The example files of an `--out-dir`, by index (temporary files excluded).
fn example_indices(dir: &Path) -> Vec<usize> {
    let Ok(entries) = std::fs::read_dir(dir.join("examples")) else {
        return Vec::new();
    };
    let mut out: Vec<usize> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    out
}

/// Waits until the out-dir has at least one example file (or the child ended).
fn wait_for_first_example(child: &mut Child, dir: &Path) {
    let start = Instant::now();
    while example_indices(dir).is_empty() {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no example file"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The `-o` reference of the same command, in `tmp`.
fn reference(tmp: &Path, data: &str) -> FeatureAttributionOutput {
    let path = tmp.join("reference.json");
    ok(&dataset_args(data, &["--batch-size", "2", "-o", s(&path)]));
    FeatureAttributionOutput::load(&path).unwrap()
}

/// Tokens and scores equal (`exec_time`-like fields of `info` ignored).
fn assert_same(merged: &FeatureAttributionOutput, reference: &FeatureAttributionOutput) {
    assert_eq!(merged.len(), reference.len());
    for (i, (a, b)) in merged
        .sequence_attributions
        .iter()
        .zip(&reference.sequence_attributions)
        .enumerate()
    {
        assert_eq!(a.target, b.target, "tokens of example {i}");
        assert!(a.allclose(b, 1e-4), "scores of example {i}");
    }
    for key in ["input_texts", "generated_texts", "attribution_method"] {
        assert_eq!(merged.info.get(key), reference.info.get(key), "info.{key}");
    }
}

fn merge(dir: &Path, out: &Path) -> FeatureAttributionOutput {
    ok(&["merge", s(dir), "-o", s(out)]);
    FeatureAttributionOutput::load(out).unwrap()
}

#[test]
fn commands_parse_as_the_experiment_runner_builds_them() {
    use clap::Parser;
    use rinseq::cli::{Cli, Command};
    let cli = Cli::try_parse_from(
        [
            &["rinseq"][..],
            &dataset_args("d.jsonl", &["--out-dir", "o", "--shard", "1/4"]),
        ]
        .concat(),
    )
    .unwrap();
    let Command::AttributeDataset(args) = cli.command else {
        panic!("not attribute-dataset");
    };
    assert_eq!(args.shard().unwrap().to_string(), "1/4");
    assert_eq!(args.flags.method, "saliency");
    let cli = Cli::try_parse_from(["rinseq", "merge", "o", "-o", "all.json"]).unwrap();
    assert!(matches!(cli.command, Command::Merge(_)));
}

#[test]
fn killed_run_resumes_and_merges_to_the_one_file_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prompts(tmp.path(), 40);
    let data = s(&data);
    let dir = tmp.path().join("run");
    let args = dataset_args(data, &["--batch-size", "1", "--out-dir", s(&dir)]);
    let mut child = command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_first_example(&mut child, &dir);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = example_indices(&dir);
    assert!(!before.is_empty());
    eprintln!("{} of 40 examples were done at the kill", before.len());
    ok(&args);
    assert_eq!(example_indices(&dir), (0..40).collect::<Vec<_>>());
    let files = std::fs::read_dir(dir.join("examples")).unwrap().count();
    assert_eq!(files, 40, "temporary files left behind");
    let merged = merge(&dir, &tmp.path().join("merged.json"));
    assert_same(&merged, &reference(tmp.path(), data));
    // A finished folder: the same command does nothing more.
    let again = run(&args);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already in"));
}

#[test]
fn three_shards_merge_to_the_one_file_run_and_slurm_picks_the_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prompts(tmp.path(), 7);
    let data = s(&data);
    let dir = tmp.path().join("shards");
    // Concurrently, as a job array runs them: one manifest, no clash.
    let shards = ["0/3", "1/3", "2/3"];
    let children: Vec<Child> = shards
        .iter()
        .map(|shard| {
            command(&dataset_args(
                data,
                &["--batch-size", "2", "--out-dir", s(&dir), "--shard", shard],
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let merged = merge(&dir, &tmp.path().join("merged.json"));
    assert_same(&merged, &reference(tmp.path(), data));

    let slurm = tmp.path().join("slurm");
    let out = command(&dataset_args(data, &["--out-dir", s(&slurm)]))
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(example_indices(&slurm), vec![1, 4]);
    let one = |d: &Path, i: usize| {
        FeatureAttributionOutput::load(d.join(format!("examples/{i:06}.json"))).unwrap()
    };
    for i in [1, 4] {
        assert!(one(&slurm, i).sequence_attributions[0]
            .allclose(&one(&dir, i).sequence_attributions[0], 1e-4));
    }
}

#[test]
fn ctrl_c_stops_cleanly_with_exit_code_130() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prompts(tmp.path(), 400);
    let dir = tmp.path().join("run");
    let args = dataset_args(s(&data), &["--batch-size", "1", "--out-dir", s(&dir)]);
    let mut child = command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_first_example(&mut child, &dir);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("interrupted: ") && last.contains("run the same command again"),
        "{last}"
    );
    let kept = example_indices(&dir);
    assert!(!kept.is_empty() && kept.len() < 400, "{}", kept.len());
    // Every kept file is whole.
    for i in kept {
        FeatureAttributionOutput::load(dir.join(format!("examples/{i:06}.json"))).unwrap();
    }
}

#[test]
fn bad_inputs_fail_in_one_line_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prompts(tmp.path(), 3);
    let data = s(&data);
    let dir = tmp.path().join("out");
    let out_dir = ["--out-dir", s(&dir)];

    let err = fails(&dataset_args(
        data,
        &["--input-text-field", "text", "--out-dir", s(&dir)],
    ));
    assert!(err.contains("\"text\"") && err.contains("prompt"), "{err}");

    let missing = tmp.path().join("missing.jsonl");
    let err = fails(&dataset_args(s(&missing), &out_dir));
    assert!(err.contains("missing.jsonl"), "{err}");

    let malformed = tmp.path().join("malformed.jsonl");
    std::fs::write(
        &malformed,
        "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n{bad\n",
    )
    .unwrap();
    let err = fails(&dataset_args(s(&malformed), &out_dir));
    assert!(err.contains(":3:"), "{err}");

    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let err = fails(&dataset_args(s(&empty), &out_dir));
    assert!(
        err.contains("no rows") || err.contains("no examples"),
        "{err}"
    );

    for shard in ["3/3", "a/b", "1"] {
        let err = fails(&dataset_args(
            data,
            &["--out-dir", s(&dir), "--shard", shard],
        ));
        assert!(err.contains(&format!("--shard '{shard}'")), "{err}");
    }
    assert!(!dir.exists(), "a failed run created {}", dir.display());

    let err = fails(&dataset_args(data, &["--out-dir", s(&dir), "-o", "x.json"]));
    assert!(err.contains("rinseq merge"), "{err}");
}

#[test]
fn changed_config_and_incomplete_merge_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prompts(tmp.path(), 5);
    let data = s(&data);
    let dir = tmp.path().join("out");
    ok(&dataset_args(
        data,
        &["--out-dir", s(&dir), "--shard", "0/3"],
    ));
    assert_eq!(example_indices(&dir), vec![0, 3]);
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();

    let err = fails(&dataset_args(
        data,
        &[
            "--out-dir",
            s(&dir),
            "--shard",
            "1/3",
            "--attributed-fn",
            "logit",
        ],
    ));
    assert!(
        err.contains("--attributed-fn") && err.contains("new --out-dir"),
        "{err}"
    );
    assert_eq!(example_indices(&dir), vec![0, 3]);
    assert_eq!(std::fs::read(dir.join("manifest.json")).unwrap(), manifest);

    let merged = tmp.path().join("merged.json");
    let err = fails(&["merge", s(&dir), "-o", s(&merged)]);
    assert!(
        err.contains("missing 3 of 5") && err.contains("1, 2, 4"),
        "{err}"
    );
    assert!(!merged.exists());

    let err = fails(&["merge", s(tmp.path()), "-o", s(&merged)]);
    assert!(err.contains("manifest.json"), "{err}");
}
