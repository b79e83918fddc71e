//! The example files of an `--out-dir`: `DIR/examples/000042.json` (`.json.gz` compressed),
//! one Inseq file per example, named by dataset index and written atomically (a temporary file
//! in the same folder, then a rename), so a file that exists is complete: after `kill -9` a
//! rerun skips exactly the examples that are done.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::output::gzip::gzip;
use crate::output::{FeatureAttributionOutput, OutputError, SaveOptions};

/// The folder of example files inside an `--out-dir`.
pub const EXAMPLES: &str = "examples";

/// Gzip level of compressed example files (Inseq's `compress=True` default).
const GZIP_LEVEL: u32 = 5;

/// An example file that cannot be written.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The file system refused.
    #[error("cannot write {}: {source}; check that the --out-dir is writable and has space", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The output could not be encoded.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// The example files of one `--out-dir`.
#[derive(Debug, Clone)]
pub struct ExampleStore {
    dir: PathBuf,
    compress: bool,
}

impl ExampleStore {
    /// The store of `out_dir` (`compress`: `.json.gz` files).
    pub fn new(out_dir: &Path, compress: bool) -> Self {
        Self {
            dir: out_dir.join(EXAMPLES),
            compress,
        }
    }

    /// The file of the example with dataset index `index`.
    pub fn path(&self, index: usize) -> PathBuf {
        let gz = if self.compress { ".gz" } else { "" };
        self.dir.join(format!("{index:06}.json{gz}"))
    }

    /// Whether the example is done (its file exists, hence is complete).
    pub fn is_done(&self, index: usize) -> bool {
        self.path(index).is_file()
    }

    /// Removes the temporary files a killed process left for the examples `mine` selects (this
    /// shard's: no other process writes them).
    pub fn remove_temporaries(&self, mine: impl Fn(usize) -> bool) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let index = name
                .strip_prefix('.')
                .filter(|n| n.contains(".tmp-"))
                .and_then(|n| n.split('.').next())
                .and_then(|i| i.parse::<usize>().ok());
            if index.is_some_and(&mine) {
                // A file that cannot be removed is only clutter: merge ignores it.
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Writes one example's output atomically and returns its path.
    pub fn write(
        &self,
        index: usize,
        out: &FeatureAttributionOutput,
        options: &SaveOptions,
    ) -> Result<PathBuf, StoreError> {
        let path = self.path(index);
        let text = out.to_inseq_json(options).map_err(|e| e.at(&path))?;
        let bytes = if self.compress {
            gzip(text.as_bytes(), GZIP_LEVEL)
        } else {
            text.into_bytes()
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = self.dir.join(format!(
            ".{}.tmp-{}",
            name.unwrap_or_default(),
            std::process::id()
        ));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        // Synced before the rename: a machine crash must not leave a complete-looking empty file.
        let written = file
            .write_all(&bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&path)(e));
        }
        Ok(path)
    }
}
