//! Loading plugin libraries: the registry, and one clear error per bad input.

mod plugin_support;

use std::path::{Path, PathBuf};

use plugin_support::build::{root, workspace_plugin};
use rinseq::plugins::{
    load_library, LibrarySource, PluginKind, PluginLoadError, PluginRegistry, PluginSources,
};
use serde_json::json;

fn registry_with(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("registry.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn lib_entry(name: &str, path: &Path) -> String {
    format!(
        "[[library]]\nname = \"{name}\"\npath = \"{}\"\n",
        path.display()
    )
}

fn core_registry(dir: &Path) -> PathBuf {
    let text = [
        lib_entry("step-functions", &workspace_plugin("rinseq_step_functions")),
        lib_entry("aggregators", &workspace_plugin("rinseq_aggregators")),
        lib_entry(
            "gradient-methods",
            &workspace_plugin("rinseq_gradient_methods"),
        ),
    ]
    .join("\n");
    registry_with(dir, &text)
}

fn load(registry: PathBuf) -> Result<PluginRegistry, PluginLoadError> {
    PluginRegistry::load(&PluginSources {
        registry: Some(registry),
        ..Default::default()
    })
}

#[test]
fn registry_loads_every_kind_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(core_registry(dir.path())).unwrap();
    text.push_str("[library.defaults.saliency]\nabs = false\n");
    let reg = load(registry_with(dir.path(), &text)).unwrap();
    for (kind, name) in [
        (PluginKind::Attribution, "saliency"),
        (PluginKind::Attribution, "input_x_gradient"),
        (PluginKind::StepFunction, "probability"),
        (PluginKind::Aggregator, "mean"),
    ] {
        let p = reg.find(kind, name).unwrap();
        assert_eq!(p.kind, kind);
    }
    assert_eq!(
        reg.find(PluginKind::Attribution, "saliency")
            .unwrap()
            .defaults,
        json!({"abs": false})
    );
    assert_eq!(reg.libraries.len(), 3);
    assert_eq!(reg.libraries[0].sdk_version, rinseq_sdk::SDK_VERSION);
}

#[test]
fn the_repository_registry_loads_with_templated_paths() {
    workspace_plugin("rinseq_step_functions"); // make sure they are built
    let reg = load(root().join("registry.toml")).unwrap();
    assert!(reg.find(PluginKind::StepFunction, "probability").is_ok());
    assert!(reg.find(PluginKind::Aggregator, "mean").is_ok());
    assert!(reg.find(PluginKind::Attribution, "saliency").is_ok());
}

#[test]
fn each_library_path_gets_its_own_library() {
    // RootModule::load_from_file would return the first library for every path.
    let a = load_library("a", &workspace_plugin("rinseq_step_functions")).unwrap();
    let b = load_library("b", &workspace_plugin("rinseq_aggregators")).unwrap();
    assert_eq!(a.crate_name, "rinseq-step-functions");
    assert_eq!(b.crate_name, "rinseq-aggregators");
}

#[test]
fn missing_file() {
    let e = load_library("ghost", Path::new("/nonexistent/libghost.so")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin library 'ghost': file not found: /nonexistent/libghost.so (build it with `cargo build --workspace`, or fix the path in the registry)"
    );
}

#[test]
fn not_a_shared_library() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.so");
    std::fs::write(&path, vec![7u8; 4096]).unwrap();
    let e = load_library("junk", &path).unwrap_err().to_string();
    assert!(e.starts_with("plugin library 'junk' ("), "{e}");
    assert!(
        e.contains("is not a loadable shared library: invalid ELF header"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn library_without_root_module() {
    let path = workspace_plugin("rinseq_test_not_a_plugin");
    let e = load_library("plain", &path).unwrap_err();
    assert!(matches!(e, PluginLoadError::NotAPlugin { .. }), "{e}");
    assert!(e
        .to_string()
        .contains("is not a rinseq plugin: it exports no rinseq root module"));
}

#[test]
fn duplicate_plugin_names_name_both_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let original = workspace_plugin("rinseq_step_functions");
    let copy = dir.path().join(format!(
        "{}copy{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(&original, &copy).unwrap();
    let text = [lib_entry("first", &original), lib_entry("second", &copy)].join("\n");
    let e = load(registry_with(dir.path(), &text))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("plugin 'logit' is provided by both 'first' and 'second'"),
        "{e}"
    );
}

#[test]
fn disabled_libraries_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[library]]\nname = \"off\"\npath = \"/nonexistent/x.so\"\nenabled = false\n";
    let reg = load(registry_with(dir.path(), text)).unwrap();
    assert!(reg.plugins().is_empty());
}

#[test]
fn malformed_registry_reports_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = registry_with(dir.path(), "[[library]]\nname = \"x\"\npaht = \"y\"\n");
    let e = load(path.clone()).err().unwrap().to_string();
    assert!(
        e.starts_with(&format!(
            "invalid plugin registry {} at line 3, column 1:",
            path.display()
        )),
        "{e}"
    );
    assert!(e.contains("unknown field `paht`"), "{e}");
    let path = registry_with(dir.path(), "[[library]\n");
    let e = load(path).err().unwrap().to_string();
    assert!(e.contains("at line 1, column"), "{e}");
}

#[test]
fn unreadable_registry() {
    let e = load(PathBuf::from("/nonexistent/registry.toml"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("cannot read plugin registry /nonexistent/registry.toml:"),
        "{e}"
    );
}

#[test]
fn unknown_names_suggest_the_nearest() {
    let dir = tempfile::tempdir().unwrap();
    let reg = load(core_registry(dir.path())).unwrap();
    let e = reg
        .attribution("salency", &json!({}))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, "no attribution plugin named 'salency'; did you mean 'saliency'? (see `rinseq plugins list`)");
    let e = reg.aggregator("zzz", &json!({})).err().unwrap().to_string();
    assert!(
        e.starts_with("no aggregator plugin named 'zzz'; available: absmax, max, mean"),
        "{e}"
    );
}

#[test]
fn params_that_do_not_fit_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let reg = load(core_registry(dir.path())).unwrap();
    let e = reg
        .attribution("saliency", &json!({"abss": true}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("bad parameters for attribution plugin 'saliency':"),
        "{e}"
    );
    assert!(e.contains("unknown field `abss`, expected `abs`"), "{e}");
    assert!(e.ends_with("(see `rinseq plugins info saliency`)"), "{e}");
    let e = reg
        .aggregator("mean", &json!({"normalize": "yes"}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("invalid type: string \"yes\", expected a boolean"),
        "{e}"
    );
    let e = reg
        .aggregator("mean", &json!({"normalize": true, "rescale": true}))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("mutually exclusive"), "{e}");
    assert!(reg.attribution("saliency", &json!({"abs": false})).is_ok());
}

/// The built-in layer in `builtin/registry.toml` and a user registry in `user/registry.toml`.
fn layered(dir: &Path, user: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir.join("builtin")).unwrap();
    std::fs::create_dir_all(dir.join("user")).unwrap();
    (
        core_registry(&dir.join("builtin")),
        registry_with(&dir.join("user"), user),
    )
}

fn load_layers(builtin: &Path, user: &Path) -> Result<PluginRegistry, PluginLoadError> {
    PluginRegistry::load(&PluginSources {
        builtin: Some(builtin.to_path_buf()),
        registry: Some(user.to_path_buf()),
        ..Default::default()
    })
}

fn source_of(reg: &PluginRegistry, kind: PluginKind, name: &str) -> LibrarySource {
    let p = reg.find(kind, name).unwrap();
    reg.library_source(p.library).unwrap().clone()
}

fn copy_of(lib: &Path, dir: &Path, stem: &str) -> PathBuf {
    let copy = dir.join(format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(lib, &copy).unwrap();
    copy
}

#[test]
fn a_user_registry_adds_to_the_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let mine = lib_entry("mine", &workspace_plugin("rinseq_test_faulty"));
    let (builtin, user) = layered(dir.path(), &mine);
    let reg = load_layers(&builtin, &user).unwrap();
    assert_eq!(
        source_of(&reg, PluginKind::StepFunction, "probability"),
        LibrarySource::Builtin(builtin.clone())
    );
    assert_eq!(
        source_of(&reg, PluginKind::Attribution, "panicking_method"),
        LibrarySource::UserRegistry(user.clone())
    );
    assert!(reg.find(PluginKind::Aggregator, "mean").is_ok());
    assert_eq!(reg.libraries.len(), 4);
    assert_eq!(reg.shadow_note(), None, "adding is not shadowing");
}

#[test]
fn the_same_library_reached_twice_loads_once() {
    let dir = tempfile::tempdir().unwrap();
    let steps = workspace_plugin("rinseq_step_functions");
    let user = format!(
        "{}[library.defaults.probability]\nlogprob = true\n",
        lib_entry("again", &steps)
    );
    let (builtin, user) = layered(dir.path(), &user);
    let reg = PluginRegistry::load(&PluginSources {
        builtin: Some(builtin.clone()),
        registry: Some(user),
        search_path: vec![workspace_plugin("rinseq_aggregators")],
        extra: vec![steps],
    })
    .unwrap();
    assert_eq!(reg.libraries.len(), 3);
    let p = reg.find(PluginKind::StepFunction, "probability").unwrap();
    assert_eq!(reg.libraries[p.library].name, "step-functions");
    assert_eq!(
        reg.library_source(p.library),
        Some(&LibrarySource::Builtin(builtin))
    );
    // The user entry's defaults still apply to the library loaded once.
    assert_eq!(p.defaults, json!({"logprob": true}));
}

#[test]
fn a_user_registry_disables_redefines_and_overrides_builtins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("user")).unwrap();
    let copy = copy_of(
        &workspace_plugin("rinseq_step_functions"),
        &dir.path().join("user"),
        "my_steps",
    );
    let user = format!(
        "[[library]]\nname = \"aggregators\"\nenabled = false\n\n\
         [[library]]\nname = \"step-functions\"\npath = \"{}\"\n\n\
         [[library]]\nname = \"gradient-methods\"\n[library.defaults.saliency]\nabs = false\n",
        copy.file_name().unwrap().to_str().unwrap()
    );
    let (builtin, user) = layered(dir.path(), &user);
    let reg = load_layers(&builtin, &user).unwrap();
    let e = reg
        .aggregator("mean", &json!({}))
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("no aggregator plugin named 'mean'"), "{e}");
    // Redefined: the user's file (relative to the user registry) in place of the built-in one.
    let p = reg.find(PluginKind::StepFunction, "probability").unwrap();
    assert_eq!(
        reg.libraries[p.library].path,
        std::fs::canonicalize(&copy).unwrap()
    );
    assert_eq!(
        reg.library_source(p.library),
        Some(&LibrarySource::UserRegistry(user.clone()))
    );
    // Defaults only: still the built-in library.
    let p = reg.find(PluginKind::Attribution, "saliency").unwrap();
    assert_eq!(p.defaults, json!({"abs": false}));
    assert_eq!(
        reg.library_source(p.library),
        Some(&LibrarySource::Builtin(builtin))
    );
    assert_eq!(
        reg.shadow_note(),
        Some(
            format!(
                "note: user registry {} disables built-in library 'aggregators' and redefines built-in library 'step-functions'",
                user.display()
            )
            .as_str()
        )
    );
}

#[test]
fn a_user_entry_without_path_must_name_a_builtin() {
    let dir = tempfile::tempdir().unwrap();
    let (builtin, user) = layered(dir.path(), "[[library]]\nname = \"nope\"\n");
    let e = load_layers(&builtin, &user).err().unwrap().to_string();
    assert_eq!(
        e,
        format!(
            "plugin registry {}: library 'nope' has no `path` (add one; only an entry changing the built-in library of that name may leave it out)",
            user.display()
        )
    );
}

#[test]
fn a_user_registry_that_is_the_builtin_one_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = core_registry(dir.path());
    let reg = load_layers(&builtin, &builtin).unwrap();
    assert_eq!(reg.libraries.len(), 3);
    assert_eq!(reg.shadow_note(), None);
}

#[test]
fn a_different_library_with_a_builtin_plugin_name_names_both_layers() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = core_registry(dir.path());
    let copy = copy_of(
        &workspace_plugin("rinseq_step_functions"),
        dir.path(),
        "copy",
    );
    let e = PluginRegistry::load(&PluginSources {
        builtin: Some(builtin),
        extra: vec![copy],
        ..Default::default()
    })
    .err()
    .unwrap()
    .to_string();
    let needle = format!(
        "plugin 'logit' is provided by both 'step-functions' and '{}copy' (from the built-in registry and --plugin): disable one of them",
        std::env::consts::DLL_PREFIX
    );
    assert!(e.contains(&needle), "{e}");
}
