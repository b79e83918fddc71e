//! `rinseq run EXP.toml`: the experiment format (the README's example, unknown keys with
//! line:column, unknown methods, paths relative to the file), `--dry-run`, a local sweep of two
//! attributions on the tiny GPT-2 fixture, and a rerun that skips finished work.

mod plugin_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use plugin_support::build::{root, workspace_plugin};
use rinseq::experiment::{Experiment, ExperimentError};
use rinseq::output::FeatureAttributionOutput;

/// The README's example, verbatim.
const README_EXAMPLE: &str = r#"name = "capitals"
out_dir = "runs/capitals"        # relative to this file, or absolute
[model]
id = "smollm2-135m"              # anything -m accepts
kwargs = { dtype = "f32" }       # optional, as --model-kwargs
[dataset]
name = "json"                    # as -d
files = ["data.jsonl"]           # relative to this file, or absolute
input_text_field = "text"
generated_text_field = "target"  # optional
[generation]                     # optional, HF generate keys as --generation-kwargs
max_new_tokens = 10
[[attribution]]                  # one table per attribution: a sweep is several of them
name = "sal"                     # optional, defaults to the method name
method = "saliency"
attributed_fn = "probability"    # optional
step_scores = ["probability"]    # optional
attribution_kwargs = { }         # optional, as --attribution-kwargs
[slurm]                          # used by --slurm
array = 3                        # number of shards (array tasks)
sbatch_args = ["--time=01:00:00"]
"#;

/// A JSONL dataset of `n` prompts at `dir/data.jsonl`.
fn data(dir: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"text": format!("Example {i} says"), "target": "x"}).to_string()
        })
        .collect();
    std::fs::write(dir.join("data.jsonl"), lines.join("\n") + "\n").unwrap();
}

/// A two-attribution sweep on the GPT-2 fixture writing to `out_dir`.
fn sweep(out_dir: &str) -> String {
    format!(
        r#"name = "sweep"
out_dir = "{out_dir}"
[model]
id = "{model}"
[dataset]
name = "json"
files = ["data.jsonl"]
input_text_field = "text"
[generation]
max_new_tokens = 3
[[attribution]]
name = "sal"
method = "saliency"
step_scores = ["probability"]
[[attribution]]
method = "input_x_gradient"
attributed_fn = "logit"
[slurm]
array = 3
"#,
        model = root().join("tests/fixtures/models/gpt2").display()
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `rinseq run ARGS` from `cwd`, with the workspace's registry and plugins.
fn rinseq_run(cwd: &Path, args: &[&str], path: Option<&str>) -> Output {
    workspace_plugin("rinseq_gradient_methods");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rinseq"));
    cmd.arg("--registry")
        .arg(root().join("registry.toml"))
        .arg("run")
        .args(args)
        .current_dir(cwd)
        .env_remove("RINSEQ_PLUGIN_PATH")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT");
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The single `error: …` line of a failed run.
fn one_line_error(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(o.status.code(), Some(1), "expected failure: {err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn load_err(dir: &Path, text: &str) -> String {
    let path = write(dir, "exp.toml", text);
    match Experiment::load(&path) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            assert!(matches!(e, ExperimentError::At { .. }), "{e}");
            e.to_string()
        }
    }
}

#[test]
fn the_readme_example_parses_with_paths_relative_to_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    data(tmp.path(), 2);
    let path = write(tmp.path(), "exp.toml", README_EXAMPLE);
    // Loaded from another working folder: paths still resolve against the file.
    let e = Experiment::load(&path).unwrap();
    assert_eq!(e.name, "capitals");
    assert_eq!(e.out_dir, tmp.path().join("runs/capitals"));
    assert_eq!(e.model, "smollm2-135m");
    assert_eq!(e.model_kwargs, Some(serde_json::json!({"dtype": "f32"})));
    assert_eq!(e.dataset.files, vec![tmp.path().join("data.jsonl")]);
    assert_eq!(e.dataset.input_text_field, "text");
    assert_eq!(e.dataset.generated_text_field.as_deref(), Some("target"));
    assert_eq!(
        e.generation,
        Some(serde_json::json!({"max_new_tokens": 10}))
    );
    assert_eq!(e.attributions.len(), 1);
    let a = &e.attributions[0];
    assert_eq!((a.name.as_str(), a.method.as_str()), ("sal", "saliency"));
    assert_eq!(a.attributed_fn.as_deref(), Some("probability"));
    assert_eq!(a.step_scores, vec!["probability"]);
    assert_eq!(a.attribution_kwargs, Some(serde_json::json!({})));
    let s = e.slurm.as_ref().unwrap();
    assert_eq!(
        (s.array, s.sbatch_args.clone()),
        (3, vec!["--time=01:00:00".to_string()])
    );

    // Absolute paths stay; a default name is the method's.
    let abs = tmp.path().join("abs-out");
    let text = README_EXAMPLE
        .replace(
            "\"runs/capitals\"",
            &format!("{:?}", abs.display().to_string()),
        )
        .replace("name = \"sal\"                     # optional", "# no name");
    let e = Experiment::load(&write(tmp.path(), "exp.toml", &text)).unwrap();
    assert_eq!(e.out_dir, abs);
    assert_eq!(e.attributions[0].name, "saliency");
}

#[test]
fn bad_files_fail_with_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    data(tmp.path(), 2);
    let file = tmp.path().join("exp.toml").display().to_string();

    // An unknown key: line 4 (`colour` in [model]), column 1.
    let text = README_EXAMPLE.replace("[model]\n", "[model]\ncolour = \"red\"\n");
    let err = load_err(tmp.path(), &text);
    assert!(err.starts_with(&format!("{file}:4:1: ")), "{err}");
    assert!(err.contains("unknown field `colour`"), "{err}");
    assert!(!err.contains('\n'), "{err}");

    // A typo in an attribution key: line 17, column 1.
    let text = README_EXAMPLE.replace("step_scores =", "step_score =");
    let err = load_err(tmp.path(), &text);
    assert!(err.starts_with(&format!("{file}:17:1: ")), "{err}");
    assert!(err.contains("unknown field `step_score`"), "{err}");

    // Syntax errors have a place too.
    let err = load_err(tmp.path(), "name = \n");
    assert!(err.starts_with(&format!("{file}:1:")), "{err}");

    // A missing dataset file: the place of the path, and the resolved path.
    let text = README_EXAMPLE.replace("[\"data.jsonl\"]", "[\"nope.jsonl\"]");
    let err = load_err(tmp.path(), &text);
    assert!(err.starts_with(&format!("{file}:8:10: ")), "{err}");
    assert!(
        err.contains(&tmp.path().join("nope.jsonl").display().to_string()),
        "{err}"
    );

    // Two attributions with one name.
    let text = format!("{README_EXAMPLE}[[attribution]]\nname = \"sal\"\nmethod = \"saliency\"\n");
    let err = load_err(tmp.path(), &text);
    assert!(err.starts_with(&format!("{file}:23:8: ")), "{err}");
    assert!(err.contains("duplicate attribution name 'sal'"), "{err}");

    // Zero shards.
    let text = README_EXAMPLE.replace("array = 3 ", "array = 0 ");
    let err = load_err(tmp.path(), &text);
    assert!(err.starts_with(&format!("{file}:20:9: ")), "{err}");
    assert!(err.contains("slurm.array must be at least 1"), "{err}");
}

#[test]
fn the_cli_refuses_unknown_methods_and_missing_sbatch_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    data(tmp.path(), 2);
    let text = sweep("out").replace("\"saliency\"", "\"salency\"");
    write(tmp.path(), "exp.toml", &text);
    let err = one_line_error(&rinseq_run(tmp.path(), &["exp.toml", "--dry-run"], None));
    assert!(err.contains("exp.toml:13:10: "), "{err}");
    assert!(err.contains("did you mean 'saliency'?"), "{err}");

    let text = sweep("out").replace("\"logit\"", "\"logits\"");
    write(tmp.path(), "exp.toml", &text);
    let err = one_line_error(&rinseq_run(tmp.path(), &["exp.toml"], None));
    assert!(err.contains("exp.toml:17:17: "), "{err}");
    assert!(err.contains("did you mean 'logit'?"), "{err}");

    write(tmp.path(), "exp.toml", &sweep("out"));
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    let out = rinseq_run(tmp.path(), &["exp.toml", "--slurm"], Some(&path));
    let err = one_line_error(&out);
    assert!(err.contains("sbatch not found on PATH"), "{err}");
    // Nothing was written: validation comes first.
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn dry_run_lists_the_work_and_the_exact_commands() {
    let tmp = tempfile::tempdir().unwrap();
    data(tmp.path(), 5);
    write(tmp.path(), "exp.toml", &sweep("out"));
    let out = rinseq_run(tmp.path(), &["exp.toml", "--dry-run"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let o = tmp.path().join("out");
    for want in [
        "dataset: json (5 examples)".to_string(),
        "2 attribution(s):".to_string(),
        "- sal (saliency): to do".to_string(),
        "- input_x_gradient (input_x_gradient): to do".to_string(),
        format!("per-example files: {}/", o.join("sal").display()),
        format!("merged: {}", o.join("input_x_gradient.json").display()),
        format!(
            "-d json --dataset-files {} --input-text-field text --out-dir {} --hide-attributions --shard 0/1",
            tmp.path().join("data.jsonl").display(),
            o.join("sal").display()
        ),
        format!("merge {} -o {}", o.join("sal").display(), o.join("sal.json").display()),
        "--generation-kwargs '{\"max_new_tokens\":3}'".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert!(!o.exists(), "--dry-run wrote {}", o.display());

    // With --slurm: the scripts and sbatch commands, nothing written or submitted.
    let out = rinseq_run(tmp.path(), &["exp.toml", "--dry-run", "--slurm"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    for want in [
        "#SBATCH --array=0-2",
        "\"${SLURM_ARRAY_TASK_ID}/3\"",
        "sbatch --parsable",
        "--dependency=afterok:JOBID",
        "attribute.sbatch",
        "merge.sbatch",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!o.exists(), "--dry-run --slurm wrote {}", o.display());
}

#[test]
fn a_local_sweep_writes_every_merged_file_and_a_rerun_skips_it() {
    let tmp = tempfile::tempdir().unwrap();
    data(tmp.path(), 4);
    write(tmp.path(), "exp.toml", &sweep("out"));
    let out = rinseq_run(tmp.path(), &["exp.toml"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = tmp.path().join("out");
    for (name, method) in [
        ("sal", "saliency"),
        ("input_x_gradient", "input_x_gradient"),
    ] {
        let merged = FeatureAttributionOutput::load(o.join(format!("{name}.json"))).unwrap();
        assert_eq!(merged.len(), 4, "{name}");
        assert_eq!(merged.info["attribution_method"], method);
        assert!(o.join(name).join("manifest.json").is_file());
    }
    let stamp = |name: &str| std::fs::metadata(o.join(name)).unwrap().modified().unwrap();
    let before = (stamp("sal.json"), stamp("input_x_gradient.json"));

    // Rerun: nothing to do, nothing rewritten.
    let out = rinseq_run(tmp.path(), &["exp.toml"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("every attribution is done"),
        "{}",
        stdout(&out)
    );
    assert_eq!(before, (stamp("sal.json"), stamp("input_x_gradient.json")));
    let dry = stdout(&rinseq_run(tmp.path(), &["exp.toml", "--dry-run"], None));
    assert!(dry.contains("- sal (saliency): done (skipped)"), "{dry}");

    // A lost merged file and example: the attribution resumes, the other stays untouched.
    std::fs::remove_file(o.join("sal.json")).unwrap();
    std::fs::remove_file(o.join("sal/examples/000001.json")).unwrap();
    let dry = stdout(&rinseq_run(tmp.path(), &["exp.toml", "--dry-run"], None));
    assert!(
        dry.contains("- sal (saliency): started (resumes), 3 of 4 examples done"),
        "{dry}"
    );
    let out = rinseq_run(tmp.path(), &["exp.toml"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        FeatureAttributionOutput::load(o.join("sal.json"))
            .unwrap()
            .len(),
        4
    );
    assert_eq!(before.1, stamp("input_x_gradient.json"));
    let before = (stamp("sal.json"), stamp("input_x_gradient.json"));

    // A third attribution: only it runs.
    let text = format!(
        "{}[[attribution]]\nname = \"sal2\"\nmethod = \"saliency\"\n",
        sweep("out")
    );
    write(tmp.path(), "exp.toml", &text);
    let out = rinseq_run(tmp.path(), &["exp.toml"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(o.join("sal2.json").is_file());
    assert_eq!(before, (stamp("sal.json"), stamp("input_x_gradient.json")));

    // A changed attribution under a finished name is refused, not silently skipped.
    let text = sweep("out").replace("[\"probability\"]", "[\"entropy\"]");
    write(tmp.path(), "exp.toml", &text);
    let err = one_line_error(&rinseq_run(tmp.path(), &["exp.toml"], None));
    assert!(err.contains("attribution 'sal' changed"), "{err}");
}
