//! `rinseq new-plugin NAME --kind method|step-function|aggregator [--dir DIR]`: writes an
//! out-of-tree plugin crate (Cargo.toml with a working SDK dependency, a compiling skeleton
//! with a unit test on the SDK's test kit, a README) that builds and loads with `--plugin`.

use std::path::{Path, PathBuf};

/// The kind of plugin to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// An attribution method.
    Method,
    /// A step function (a score per step, usable as the attribution target).
    StepFunction,
    /// An aggregator.
    Aggregator,
}

/// Arguments of `rinseq new-plugin`.
#[derive(Debug, Clone, clap::Args)]
pub struct NewPluginArgs {
    /// The plugin's name (a Rust identifier, e.g. `my_method`): its registered name and crate.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// What kind of plugin.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Where to write the crate (default: ./NAME); must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The rinseq-sdk dependency, as a TOML value (default: a path dependency on the SDK of
    /// the source tree this binary was built from), e.g. '{ git = "URL", tag = "sdk-v0.3.0" }'.
    #[arg(long, value_name = "TOML")]
    pub sdk: Option<String>,
}

/// Why a scaffold could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NewPluginError {
    /// The name is not a plugin name.
    #[error("'{0}' is not a valid plugin name: use lowercase letters, digits and '_', starting with a letter (e.g. my_method)")]
    BadName(String),
    /// The target directory has files.
    #[error("{0} already exists and is not empty: choose another --dir or remove it")]
    NotEmpty(PathBuf),
    /// The SDK of the source tree is gone and no --sdk was given.
    #[error("the rinseq-sdk sources this binary was built from ({0}) are gone: pass --sdk '{{ path = \"…/rinseq/sdk\" }}' or a git dependency")]
    NoSdk(PathBuf),
    /// Writing failed.
    #[error("cannot write {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Runs `rinseq new-plugin`.
pub fn run(args: &NewPluginArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let files = scaffold(&args.name, args.kind, args.sdk.as_deref())?;
    write_all(&dir, &files)?;
    eprintln!(
        "wrote {} ({}): cd {} && cargo test && cargo build --release",
        dir.display(),
        kind_text(args.kind),
        dir.display()
    );
    Ok(())
}

/// `my_method` → `MyMethod`.
fn type_name(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn kind_text(kind: Kind) -> &'static str {
    match kind {
        Kind::Method => "attribution method",
        Kind::StepFunction => "step function",
        Kind::Aggregator => "aggregator",
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The SDK dependency: `--sdk`, else a path dependency on this source tree's SDK.
fn sdk_dependency(sdk: Option<&str>) -> Result<String, NewPluginError> {
    if let Some(s) = sdk {
        return Ok(s.to_string());
    }
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk"));
    let path = path
        .canonicalize()
        .map_err(|_| NewPluginError::NoSdk(path))?;
    Ok(format!(
        "{{ path = {} }}",
        toml::Value::String(path.display().to_string())
    ))
}

/// The files of the crate, by relative path.
pub fn scaffold(
    name: &str,
    kind: Kind,
    sdk: Option<&str>,
) -> Result<Vec<(&'static str, String)>, NewPluginError> {
    if !valid_name(name) {
        return Err(NewPluginError::BadName(name.to_string()));
    }
    let lib_file = format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let (source, kind_arg, usage) = match kind {
        Kind::Method => (
            include_str!("templates/method.rs.txt"),
            "method",
            format!("rinseq --plugin target/release/{lib_file} attribute -m smollm2-135m -a {name} -i \"The capital of France is\""),
        ),
        Kind::StepFunction => (
            include_str!("templates/step_function.rs.txt"),
            "step-function",
            format!("rinseq --plugin target/release/{lib_file} attribute -m smollm2-135m -a saliency --attributed-fn {name} --step-scores {name} -i \"The capital of France is\""),
        ),
        Kind::Aggregator => (
            include_str!("templates/aggregator.rs.txt"),
            "aggregator",
            format!("rinseq --plugin target/release/{lib_file} show out.json --aggregator {name}"),
        ),
    };
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate}}", name)
            .replace("{{Type}}", &type_name(name))
            .replace("{{kind}}", kind_arg)
            .replace("{{kind_text}}", kind_text(kind))
            .replace("{{lib_file}}", &lib_file)
            .replace("{{usage}}", &usage)
    };
    let manifest =
        fill(include_str!("templates/Cargo.toml.txt")).replace("{{sdk}}", &sdk_dependency(sdk)?);
    Ok(vec![
        ("Cargo.toml", manifest),
        ("src/lib.rs", fill(source)),
        ("README.md", fill(include_str!("templates/README.md.txt"))),
        (".gitignore", "/target\nCargo.lock\n".to_string()),
    ])
}

fn write_all(dir: &Path, files: &[(&str, String)]) -> Result<(), NewPluginError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| NewPluginError::Io(p, e)
    };
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(NewPluginError::NotEmpty(dir.to_path_buf()));
    }
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_typed() {
        assert_eq!(type_name("my_method_2"), "MyMethod2");
        for bad in ["My", "1x", "a-b", ""] {
            assert!(matches!(
                scaffold(bad, Kind::Method, Some("\"0.3\"")),
                Err(NewPluginError::BadName(_))
            ));
        }
        let files = scaffold("leave_out", Kind::Method, Some("{ path = \"/x\" }")).unwrap();
        assert!(files[0].1.contains("rinseq-sdk = { path = \"/x\" }"));
        assert!(files[1].1.contains("pub struct LeaveOut(Params);"));
        assert!(!files.iter().any(|(_, t)| t.contains("{{")));
    }
}
