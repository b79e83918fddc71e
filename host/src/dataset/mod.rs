//! Datasets: loading a split ([`load`]), and attributing it in resumable, sharded runs
//! (`rinseq attribute-dataset --out-dir DIR --shard I/N`, then `rinseq merge`).
//!
//! - [`load`]: `load_dataset(&DatasetSpec)` → the examples (JSON Lines, CSV, parquet, hub);
//! - [`shard`]: `--shard I/N` and the SLURM job array variables;
//! - [`manifest`]: `DIR/manifest.json`, the settings that change results and their hash;
//! - [`store`]: `DIR/examples/NNNNNN.json`, one Inseq file per example, written atomically;
//! - [`merge`]: Inseq's `merge_attributions` and merging a whole folder in dataset order.

pub mod load;
pub mod manifest;
pub mod merge;
pub mod shard;
pub mod store;
