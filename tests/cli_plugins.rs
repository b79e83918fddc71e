//! The `rinseq` binary: `plugins list`, `plugins info`, `--version`, and one-line errors with a
//! non-zero exit for bad plugin inputs.

mod plugin_support;

use std::path::Path;
use std::process::Command;

use plugin_support::build::{root, third_party_plugin, workspace_plugin};

fn rinseq(args: &[&str]) -> (i32, String, String) {
    rinseq_in(&root(), args, None)
}

/// `rinseq ARGS` run in `dir`, with `RINSEQ_PLUGIN_PATH` set to `plugin_path` or unset.
fn rinseq_in(dir: &Path, args: &[&str], plugin_path: Option<&Path>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rinseq"));
    cmd.env_remove("RINSEQ_PLUGIN_PATH");
    if let Some(p) = plugin_path {
        cmd.env("RINSEQ_PLUGIN_PATH", p);
    }
    let out = cmd
        .args(args)
        .current_dir(dir)
        .env_remove("RINSEQ_REGISTRY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugins_list_shows_the_registry() {
    workspace_plugin("rinseq_step_functions");
    let (code, out, err) = rinseq(&["plugins", "list"]);
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    for col in ["KIND", "NAME", "VERSION", "LIBRARY", "DESCRIPTION"] {
        assert!(header.contains(col));
    }
    let line = out.lines().find(|l| l.contains(" saliency ")).unwrap();
    assert!(
        line.starts_with("attribution") && line.contains("gradient-methods"),
        "{line}"
    );
    assert!(out
        .lines()
        .any(|l| l.starts_with("step function") && l.contains(" probability ")));
    assert!(out
        .lines()
        .any(|l| l.starts_with("aggregator") && l.contains(" mean ")));
}

#[test]
fn plugins_info_shows_parameters_defaults_and_flags() {
    workspace_plugin("rinseq_step_functions");
    let (code, out, err) = rinseq(&["plugins", "info", "saliency"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("flags: uses_gradients"), "{out}");
    assert!(out.contains("output: granular"), "{out}");
    assert!(out.contains("default aggregation: vnorm"), "{out}");
    assert!(out.contains("abs: boolean = true"), "{out}");
    let (_, out, _) = rinseq(&["plugins", "info", "probability"]);
    assert!(out.contains("logprob: boolean = false"), "{out}");
    assert!(out.contains("span aggregation: prod"), "{out}");
}

#[test]
fn version_names_host_and_sdk() {
    let (code, out, _) = rinseq(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!(
            "rinseq {} (rinseq-sdk {})",
            env!("CARGO_PKG_VERSION"),
            rinseq_sdk::SDK_VERSION
        )
    );
}

#[test]
fn extra_plugins_from_flag_and_environment() {
    workspace_plugin("rinseq_step_functions");
    let lib = third_party_plugin();
    let lib = lib.to_str().unwrap();
    let (code, out, err) = rinseq(&["plugins", "list", "--plugin", lib]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("token_gradient_norm"), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_rinseq"))
        .args(["plugins", "info", "log_odds"])
        .current_dir(root())
        .env("RINSEQ_PLUGIN_PATH", lib)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Log-odds of the target token"));
}

#[test]
fn bad_inputs_give_one_line_and_a_non_zero_exit() {
    workspace_plugin("rinseq_step_functions");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[library]]\nname = 1\n").unwrap();
    let junk = dir.path().join("junk.so");
    std::fs::write(&junk, b"not a library").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["plugins".into(), "info".into(), "salency".into()],
            "did you mean 'saliency'?",
        ),
        (
            vec![
                "--plugin".into(),
                "/nonexistent/libx.so".into(),
                "plugins".into(),
                "list".into(),
            ],
            "file not found: /nonexistent/libx.so",
        ),
        (
            vec![
                "--plugin".into(),
                junk.display().to_string(),
                "plugins".into(),
                "list".into(),
            ],
            "is not a loadable shared library",
        ),
        (
            vec![
                "--registry".into(),
                bad.display().to_string(),
                "plugins".into(),
                "list".into(),
            ],
            "at line 2, column",
        ),
        (
            vec![
                "--plugin".into(),
                workspace_plugin("rinseq_test_not_a_plugin")
                    .display()
                    .to_string(),
                "plugins".into(),
                "list".into(),
            ],
            "is not a rinseq plugin",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = rinseq(&args);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
}

/// The `plugins list` columns (separated by two spaces or more) of plugin `name`.
fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .find(|cols| cols.get(1).is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
}

#[test]
fn plugins_list_shows_where_each_plugin_came_from() {
    workspace_plugin("rinseq_step_functions");
    let third = third_party_plugin();
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("mine.toml");
    std::fs::write(
        &user,
        format!(
            "[[library]]\nname = \"mine\"\npath = \"{}\"\n",
            third.display()
        ),
    )
    .unwrap();
    // A user registry adds to the built-in registry; the same library again via --plugin
    // loads once.
    let (code, out, err) = rinseq(&[
        "--registry",
        user.to_str().unwrap(),
        "--plugin",
        third.to_str().unwrap(),
        "plugins",
        "list",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "", "adding libraries is not shadowing");
    assert!(out.lines().next().unwrap().contains(" SOURCE "), "{out}");
    assert_eq!(
        row(&out, "probability")[3..5],
        ["step-functions", "built-in registry"]
    );
    assert_eq!(
        row(&out, "token_gradient_norm")[3..5],
        [
            "mine".to_string(),
            format!("user registry {}", user.display())
        ]
    );
    // RINSEQ_PLUGIN_PATH and --plugin.
    let (code, out, err) = rinseq_in(
        &root(),
        &["--plugin", third.to_str().unwrap(), "plugins", "list"],
        Some(&workspace_plugin("rinseq_test_faulty")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        row(&out, "panicking_step")[4],
        "RINSEQ_PLUGIN_PATH",
        "{out}"
    );
    assert_eq!(row(&out, "log_odds")[4], "--plugin", "{out}");
    let (_, info, _) = rinseq(&["plugins", "info", "probability"]);
    assert!(info.contains("  source: built-in registry\n"), "{info}");
}

#[test]
fn a_local_registry_that_disables_a_builtin_is_noted() {
    workspace_plugin("rinseq_step_functions");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("registry.toml"),
        "[[library]]\nname = \"aggregators\"\nenabled = false\n",
    )
    .unwrap();
    let (code, out, err) = rinseq_in(dir.path(), &["plugins", "list"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        "note: user registry registry.toml disables built-in library 'aggregators'\n"
    );
    assert!(!out.lines().any(|l| l.starts_with("aggregator")), "{out}");
    assert_eq!(row(&out, "probability")[4], "built-in registry", "{out}");
    assert_eq!(row(&out, "saliency")[4], "built-in registry", "{out}");
}

#[test]
fn errors_carry_no_backtrace_even_when_backtraces_are_on() {
    for name in [
        "rinseq_step_functions",
        "rinseq_gradient_methods",
        "rinseq_aggregators",
    ] {
        workspace_plugin(name);
    }
    // A model whose config does not fit its weights: the failure comes from deep in candle.
    let dir = tempfile::tempdir().unwrap();
    let fixture = root().join("tests/fixtures/models/gpt2");
    for entry in std::fs::read_dir(&fixture).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let config = dir.path().join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    c["n_head"] = serde_json::json!(c["n_head"].as_u64().unwrap() * 3);
    std::fs::write(&config, c.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rinseq"))
        .args([
            "attribute",
            "-m",
            dir.path().to_str().unwrap(),
            "-a",
            "saliency",
            "-i",
            "Hi",
        ])
        .current_dir(root())
        .env("RUST_BACKTRACE", "full")
        .env("RUST_LIB_BACKTRACE", "1")
        .env_remove("RINSEQ_PLUGIN_PATH")
        .env_remove("RINSEQ_REGISTRY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: ") && !err.contains("backtrace"),
        "{err}"
    );
}
