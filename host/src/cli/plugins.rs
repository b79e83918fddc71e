//! `rinseq plugins list | info NAME`.

use clap::Subcommand;
use serde_json::Value;

use crate::plugins::{PluginRegistry, PluginSources, RegisteredPlugin};

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// One line per plugin: kind, name, version, library, source (built-in registry, user
    /// registry PATH, RINSEQ_PLUGIN_PATH or --plugin), description. A user registry that
    /// disables or redefines built-in libraries is noted in one line on stderr.
    List,
    /// Parameters, defaults and capability flags of a plugin.
    Info {
        /// The plugin's name.
        name: String,
    },
}

/// Runs a plugins subcommand.
pub fn run(
    cmd: &PluginsCommand,
    sources: &PluginSources,
) -> Result<(), Box<dyn std::error::Error>> {
    let reg = PluginRegistry::load(sources)?;
    match cmd {
        PluginsCommand::List => {
            // On stderr, so that the table on stdout stays one row per plugin.
            if let Some(note) = reg.shadow_note() {
                eprintln!("{note}");
            }
            print!("{}", list(&reg));
        }
        PluginsCommand::Info { name } => print!("{}", info(&reg, name)?),
    }
    Ok(())
}

/// The `plugins list` table.
pub fn list(reg: &PluginRegistry) -> String {
    let mut rows: Vec<[String; 6]> = reg
        .plugins()
        .iter()
        .map(|p| {
            [
                p.kind.to_string(),
                p.descriptor.name.to_string(),
                p.descriptor.version.to_string(),
                reg.libraries[p.library].name.clone(),
                source(reg, p.library),
                p.descriptor.description.to_string(),
            ]
        })
        .collect();
    rows.sort();
    let header = [
        "KIND",
        "NAME",
        "VERSION",
        "LIBRARY",
        "SOURCE",
        "DESCRIPTION",
    ]
    .map(String::from);
    let mut widths = [0usize; 5];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, c) in widths.iter().zip(r.iter()) {
            out.push_str(&format!("{c:<w$}  "));
        }
        out.push_str(&r[5]);
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no plugins loaded: check registry.toml or pass --plugin PATH)\n");
    }
    out
}

/// Where the library at `index` came from, for listings.
fn source(reg: &PluginRegistry, index: usize) -> String {
    reg.library_source(index)
        .map_or_else(|| "-".to_string(), ToString::to_string)
}

/// The `plugins info NAME` text (every kind that has a plugin with that name).
pub fn info(reg: &PluginRegistry, name: &str) -> Result<String, Box<dyn std::error::Error>> {
    let found = reg.named(name);
    if found.is_empty() {
        let suggestion = crate::plugins::registry::suggest(
            name,
            reg.plugins().iter().map(|p| p.descriptor.name.as_str()),
        );
        return Err(
            format!("no plugin named '{name}'{suggestion} (see `rinseq plugins list`)").into(),
        );
    }
    Ok(found
        .iter()
        .map(|p| describe(reg, p))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn describe(reg: &PluginRegistry, p: &RegisteredPlugin) -> String {
    let d = &p.descriptor;
    let lib = &reg.libraries[p.library];
    let caps = &d.capabilities;
    let flags = caps.flags.names();
    let mut s = format!(
        "{} ({} {})\n  {}\n  library: {} ({}) — {} {}, rinseq-sdk {}, {}\n  source: {}\n",
        d.name,
        p.kind,
        d.version,
        d.description,
        lib.name,
        lib.path.display(),
        lib.crate_name,
        lib.crate_version,
        lib.sdk_version,
        lib.rustc_version,
        source(reg, p.library)
    );
    s.push_str(&format!(
        "  flags: {}\n",
        if flags.is_empty() {
            "none".to_string()
        } else {
            flags.join(", ")
        }
    ));
    if let Some(output) = caps.output {
        s.push_str(&format!("  output: {}", output.name()));
        if let rinseq_sdk::OutputKind::MultiDimensional { extra_dims } = output {
            s.push_str(&format!(" ({extra_dims} extra dimensions)"));
        }
        s.push('\n');
    }
    if !caps.default_aggregation.is_empty() {
        s.push_str(&format!(
            "  default aggregation: {}\n",
            caps.default_aggregation.join(", ")
        ));
    }
    if let Some(span) = &caps.span_aggregation {
        s.push_str(&format!("  span aggregation: {span}\n"));
    }
    s.push_str(&parameters(d.params_schema.as_str(), &p.defaults));
    s
}

/// Parameter lines from a JSON Schema: name, type, default, description.
fn parameters(schema: &str, registry_defaults: &Value) -> String {
    let schema: Value = serde_json::from_str(schema).unwrap_or(Value::Null);
    let props = schema.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = props.filter(|p| !p.is_empty()) else {
        return "  parameters: none\n".to_string();
    };
    let mut s = String::from("  parameters:\n");
    for (name, prop) in props {
        let ty = type_name(
            prop,
            schema.get("$defs").or_else(|| schema.get("definitions")),
        );
        let default = registry_defaults
            .get(name)
            .map(|v| format!("{v} (registry)"))
            .or_else(|| prop.get("default").map(|v| v.to_string()))
            .unwrap_or_else(|| {
                if required.contains(&name.as_str()) {
                    "required".into()
                } else {
                    "none".into()
                }
            });
        let desc = prop
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        s.push_str(&format!("    {name}: {ty} = {default}  {desc}\n"));
    }
    s
}

fn type_name(prop: &Value, defs: Option<&Value>) -> String {
    // `$ref` (schemars puts enums and nested types under `$defs`).
    if let Some(target) = prop
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| defs?.get(name))
    {
        return type_name(target, defs);
    }
    // One of several string constants: an enum.
    let alternatives = prop
        .get("oneOf")
        .or_else(|| prop.get("anyOf"))
        .and_then(Value::as_array);
    if let Some(alts) = alternatives {
        let names: Vec<String> = alts
            .iter()
            .map(|a| match (a.get("const"), a.get("enum")) {
                (Some(c), _) => c.to_string(),
                (None, Some(Value::Array(e))) => {
                    e.iter().map(Value::to_string).collect::<Vec<_>>().join("|")
                }
                _ => type_name(a, defs),
            })
            .collect();
        return names.join("|");
    }
    match prop.get("type") {
        Some(Value::String(t)) if prop.get("enum").is_none() => t.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        _ => match prop.get("enum") {
            Some(Value::Array(e)) => e.iter().map(Value::to_string).collect::<Vec<_>>().join("|"),
            _ => "any".into(),
        },
    }
}
