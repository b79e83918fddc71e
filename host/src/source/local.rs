//! Local sources: an HF-format folder or a `.gguf` file.

use std::path::Path;

use super::SourceError;
use crate::models::load::ModelFiles;

/// Checks that `path` is a usable local model: a folder with `config.json`, or a `.gguf` file.
pub fn resolve(path: &Path) -> Result<ModelFiles, SourceError> {
    if !path.exists() {
        return Err(SourceError::PathNotFound(path.to_path_buf()));
    }
    if path.is_dir() {
        if path.join("config.json").is_file() {
            return Ok(ModelFiles::HfFolder(path.to_path_buf()));
        }
        return Err(SourceError::NoConfig(path.to_path_buf()));
    }
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        || has_gguf_magic(path);
    if is_gguf {
        Ok(ModelFiles::Gguf(path.to_path_buf()))
    } else {
        Err(SourceError::NotGguf(path.to_path_buf()))
    }
}

/// Whether the file starts with the GGUF magic bytes.
fn has_gguf_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF"
}
