//! `rinseq new-plugin` end to end, for each kind: the scaffold is written, its unit tests (on
//! the SDK's test kit) pass, it builds, and the host loads it with `--plugin` and runs it.

mod plugin_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use plugin_support::build::{cargo_build_cdylibs, root, workspace_plugin};

fn rinseq(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rinseq"))
        .args(args)
        .current_dir(dir)
        .env_remove("RINSEQ_PLUGIN_PATH")
        .env_remove("RINSEQ_REGISTRY")
        .output()
        .expect("rinseq runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes the scaffold `name` of `kind` in a temp dir, runs its tests, builds its library.
fn scaffold(tmp: &Path, name: &str, kind: &str) -> PathBuf {
    let dir = tmp.join(name);
    let (ok, _, err) = rinseq(tmp, &["new-plugin", name, "--kind", kind, "--dir", name]);
    assert!(ok, "{err}");
    assert!(err.contains("wrote"), "{err}");
    let manifest = dir.join("Cargo.toml");
    // One target folder for every scaffold: the SDK and its dependencies build once.
    let target = root().join("target").join("new-plugin");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let test = Command::new(&cargo)
        .args(["test", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(
        test.status.success(),
        "cargo test in the {kind} scaffold failed:\n{}\n{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    cargo_build_cdylibs(&manifest, Some(&target), &[])
        .remove(name)
        .unwrap_or_else(|| panic!("no cdylib built for {name}"))
}

#[test]
fn every_kind_of_scaffold_builds_tests_and_loads() {
    for name in [
        "rinseq_step_functions",
        "rinseq_aggregators",
        "rinseq_gradient_methods",
    ] {
        workspace_plugin(name);
    }
    let tmp = tempfile::tempdir().unwrap();
    let method = scaffold(tmp.path(), "my_method", "method");
    let step = scaffold(tmp.path(), "my_step", "step-function");
    let agg = scaffold(tmp.path(), "my_agg", "aggregator");
    let model = root().join("tests/fixtures/models/gpt2");
    let out = tmp.path().join("out.json");
    let (lib_m, lib_s, lib_a) = (
        method.to_str().unwrap(),
        step.to_str().unwrap(),
        agg.to_str().unwrap(),
    );

    // The new method and the new step function (as target and as a step score) in one run.
    let (ok, _, err) = rinseq(
        &root(),
        &[
            "--plugin",
            lib_m,
            "--plugin",
            lib_s,
            "attribute",
            "-m",
            model.to_str().unwrap(),
            "-a",
            "my_method",
            "--attributed-fn",
            "my_step",
            "--step-scores",
            "my_step",
            "-i",
            "Hello world",
            "--generation-kwargs",
            "{\"max_new_tokens\": 3}",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let text = json.to_string();
    assert!(
        text.contains("my_method") && text.contains("my_step"),
        "{text}"
    );

    // The new aggregator on the saved file.
    let (ok, shown, err) = rinseq(
        &root(),
        &[
            "--plugin",
            lib_a,
            "show",
            out.to_str().unwrap(),
            "--aggregator",
            "my_agg",
        ],
    );
    assert!(ok, "{err}");
    assert!(!shown.is_empty());

    // The listing says where each came from.
    let (ok, listed, err) = rinseq(
        &root(),
        &[
            "--plugin", lib_m, "--plugin", lib_s, "--plugin", lib_a, "plugins", "list",
        ],
    );
    assert!(ok, "{err}");
    for name in ["my_method", "my_step", "my_agg"] {
        assert!(listed.contains(name), "{listed}");
    }
}

#[test]
fn bad_names_and_existing_folders_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = rinseq(tmp.path(), &["new-plugin", "My-Method", "--kind", "method"]);
    assert!(!ok && err.contains("not a valid plugin name"), "{err}");
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/x"), "x").unwrap();
    let (ok, _, err) = rinseq(tmp.path(), &["new-plugin", "taken", "--kind", "aggregator"]);
    assert!(
        !ok && err.contains("already exists and is not empty"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
