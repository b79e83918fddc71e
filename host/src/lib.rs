//! rinseq: feature attribution for text-generation models (host runtime).
//!
//! From Rust, as Inseq's `inseq.load_model(...).attribute(...)`: [`load_model`], then
//! [`AttributionModel::attribute`] (see the [`api`] module).
//!
//! The parts, by folder:
//! - [`api`]: the library API ([`load_model`], [`AttributionModel`], [`Attribution`]);
//! - [`models`]: differentiable candle models (one place per architecture) with named taps;
//! - [`plugins`]: the registry that loads attribution methods, step functions and aggregators
//!   from plugin libraries (the SDK boundary is the `rinseq-sdk` crate);
//! - [`aggregation`]: Inseq's aggregation pipelines over aggregator plugins;
//! - [`context`]: context attribution (Inseq's `attribute-context`, PECoRe): CTI and CCI;
//! - [`dataset`]: dataset loading and resumable, sharded dataset attribution;
//! - [`experiment`]: `rinseq run EXP.toml`: sweeps of dataset attributions, locally or on Slurm;
//! - [`views`]: the views of an aggregated output (console, HTML, SVG, PNG, CSV, LaTeX);
//! - [`progress`]: progress reports and Ctrl-C cancellation of the attribution loop;
//! - [`cli`]: the `rinseq` command line.

pub mod aggregation;
pub mod api;
pub mod attribution;
pub mod cli;
pub mod context;
pub mod dataset;
pub mod experiment;
pub mod generation;
pub mod models;
pub mod output;
pub mod plugins;
pub mod progress;
pub mod source;
pub mod views;

pub use aggregation::AggregationSpec;
pub use api::{
    load_model, ApiError, AttributeRequest, Attribution, AttributionModel, GenerationKwargs,
    LoadOptions,
};
pub use output::{FeatureAttributionOutput, SaveOptions};
