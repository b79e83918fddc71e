//! Output paths checked before any model work, so a typo fails in milliseconds, not after
//! the whole attribution.

use std::path::Path;

/// Fails early when `path` cannot be written: its folder is missing or is not a folder.
pub fn check_writable(flag: &str, path: &Path) -> Result<(), String> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "{flag} {}: folder {} does not exist; create it first",
            path.display(),
            parent.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "{flag} {} is a folder: give a file path",
            path.display()
        ));
    }
    Ok(())
}
