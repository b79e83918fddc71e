//! Building plugin libraries from tests with `cargo build --message-format=json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Builds `packages` of the workspace at `manifest` and returns the cdylib of each crate, by
/// crate name (e.g. `rinseq_step_functions`).
pub fn cargo_build_cdylibs(
    manifest: &Path,
    target_dir: Option<&Path>,
    packages: &[&str],
) -> HashMap<String, PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(manifest);
    for p in packages {
        cmd.args(["-p", p]);
    }
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building {packages:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut libs = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let kinds = &msg["target"]["crate_types"];
        if !kinds
            .as_array()
            .is_some_and(|k| k.iter().any(|t| t == "cdylib"))
        {
            continue;
        }
        let name = msg["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .replace('-', "_");
        for f in msg["filenames"].as_array().into_iter().flatten() {
            let f = f.as_str().unwrap_or_default();
            if f.ends_with(std::env::consts::DLL_SUFFIX) {
                libs.insert(name.clone(), PathBuf::from(f));
            }
        }
    }
    libs
}

/// Runs `f` holding an exclusive lock file (nextest runs tests in separate processes).
fn locked<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let dir = root().join("target");
    std::fs::create_dir_all(&dir).expect("target dir");
    let lock = std::fs::File::create(dir.join(format!("{name}.lock"))).expect("lock file");
    lock.lock().expect("lock");
    let r = f();
    drop(lock);
    r
}

/// The in-tree plugin libraries and test fixtures, built once per test process.
pub fn workspace_plugin(crate_name: &str) -> PathBuf {
    static LIBS: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    LIBS.get_or_init(|| {
        locked("workspace-plugins", || {
            cargo_build_cdylibs(
                &root().join("Cargo.toml"),
                None,
                &[
                    "rinseq-step-functions",
                    "rinseq-aggregators",
                    "rinseq-gradient-methods",
                    "rinseq-internals-methods",
                    "rinseq-perturbation-methods",
                    "rinseq-test-not-a-plugin",
                    "rinseq-test-faulty",
                ],
            )
        })
    })
    .get(crate_name)
    .unwrap_or_else(|| panic!("no cdylib named {crate_name} was built"))
    .clone()
}

/// Where out-of-tree builds go: one target folder, so abi_stable compiles once for all of them.
pub fn third_party_target() -> PathBuf {
    root().join("target").join("third-party")
}

/// The out-of-tree example plugin (examples/third-party-plugin), built in its own workspace.
pub fn third_party_plugin() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        locked("third-party", || {
            let manifest = root().join("examples/third-party-plugin/Cargo.toml");
            cargo_build_cdylibs(&manifest, Some(&third_party_target()), &[])
                .remove("third_party_plugin")
                .expect("the example plugin builds a cdylib")
        })
    })
    .clone()
}

/// The example plugin built against a copy of the SDK whose version is `version` (e.g. a
/// future `0.3.0`): what a user gets when plugin and host come from different SDK series.
pub fn plugin_built_with_sdk(version: &str) -> PathBuf {
    locked("sdk-variant", || {
        let base = third_party_target()
            .join("variants")
            .join(format!("sdk-{version}"));
        let sdk = base.join("sdk");
        let plugin = base.join("plugin");
        // A fresh copy: files the SDK no longer has must not linger.
        let _ = std::fs::remove_dir_all(sdk.join("src"));
        copy_dir(&root().join("sdk"), &sdk);
        copy_dir(&root().join("examples/third-party-plugin"), &plugin);
        // The SDK's manifest stands alone: only its version changes.
        let manifest =
            std::fs::read_to_string(root().join("sdk/Cargo.toml")).expect("sdk manifest");
        let current = format!("version = \"{}\"", rinseq_sdk::SDK_VERSION);
        assert!(manifest.contains(&current), "sdk/Cargo.toml has {current}");
        let manifest = manifest.replace(&current, &format!("version = \"{version}\""));
        write_if_changed(&sdk.join("Cargo.toml"), &(manifest + "\n[workspace]\n"));
        let pm = std::fs::read_to_string(root().join("examples/third-party-plugin/Cargo.toml"))
            .expect("plugin manifest")
            .replace("path = \"../../sdk\"", "path = \"../sdk\"")
            .replace(
                "name = \"third-party-plugin\"",
                "name = \"third-party-plugin-variant\"",
            );
        write_if_changed(&plugin.join("Cargo.toml"), &pm);
        cargo_build_cdylibs(&plugin.join("Cargo.toml"), Some(&third_party_target()), &[])
            .remove("third_party_plugin_variant")
            .expect("the variant builds a cdylib")
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "Cargo.toml" || name == "Cargo.lock" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(name));
        } else {
            let dest = to.join(&name);
            let same = std::fs::read(&dest).ok() == std::fs::read(&p).ok();
            if !same {
                std::fs::copy(&p, &dest).expect("copy");
            }
        }
    }
}

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).expect("write");
    }
}
