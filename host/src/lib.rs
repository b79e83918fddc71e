//! rinseq: feature attribution for text-generation models (host runtime).
//!
//! The parts, by folder:
//! - [`models`]: differentiable candle models (one file per architecture) with named taps;
//! - [`plugins`]: the registry that loads attribution methods, step functions and aggregators
//!   from plugin libraries (the SDK boundary is the `rinseq-sdk` crate);
//! - [`aggregation`]: Inseq's aggregation pipelines over aggregator plugins;
//! - [`views`]: the views of an aggregated output (console, HTML, SVG, PNG, CSV, LaTeX);
//! - [`cli`]: the `rinseq` command line.

pub mod aggregation;
pub mod attribution;
pub mod cli;
pub mod generation;
pub mod models;
pub mod output;
pub mod plugins;
pub mod source;
pub mod views;
