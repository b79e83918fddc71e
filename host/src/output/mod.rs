//! Attribution outputs (Inseq's `FeatureAttributionOutput` and friends) and their save/load in
//! Inseq 0.7.1's JSON format, so files move both ways between rinseq and Python Inseq.
//!
//! - [`model`]: the structs ([`FeatureAttributionOutput`], [`FeatureAttributionSequenceOutput`],
//!   [`FeatureAttributionStepOutput`], [`TokenWithId`], [`SequenceClass`]);
//! - [`convert`]: conversions to and from the plugin SDK's [`rinseq_sdk::SequenceAttribution`];
//! - [`compare`]: Inseq's `==` (tensors `allclose` with NaN equal);
//! - [`options`]: [`SaveOptions`] and [`ScorePrecision`];
//! - [`io`]: `save` / `load` on files (gzip, split sequences, overwrite check);
//! - [`json`], [`json_decode`]: the Inseq schema (`__instance_type__` wrappers, base64 safetensors
//!   blobs);
//! - [`pyjson`]: a JSON value with Python `json.dumps(indent=4, sort_keys=True)` output and NaN;
//! - [`safetensors_blob`], [`ndarray`]: the two tensor encodings Inseq uses; [`gzip`];
//! - [`error`] holds [`OutputError`].
//!
//! Building and saving an output:
//!
//! ```no_run
//! use rinseq::output::{
//!     FeatureAttributionOutput, FeatureAttributionSequenceOutput, SaveOptions, SequenceClass,
//!     TokenWithId,
//! };
//! use rinseq_sdk::Tensor;
//!
//! let target = vec![TokenWithId::new("Hello", 1), TokenWithId::new("Ġworld", 2)];
//! let mut seq = FeatureAttributionSequenceOutput::new(
//!     SequenceClass::Granular,
//!     target[..1].to_vec(),
//!     target.clone(),
//!     1,
//!     2,
//! );
//! seq.target_attributions = Some(Tensor::new(vec![2, 1, 1], vec![0.5, f32::NAN]).unwrap());
//! seq.step_scores
//!     .insert("probability".into(), Tensor::new(vec![1], vec![0.25]).unwrap());
//! let out = FeatureAttributionOutput::new(vec![seq], serde_json::Map::new());
//! out.save("out.json", &SaveOptions::default()).unwrap();
//! let back = FeatureAttributionOutput::load("out.json").unwrap();
//! assert!(back.allclose(&out, 1e-5));
//! ```

pub mod compare;
pub mod convert;
pub mod error;
pub mod gzip;
pub mod io;
pub mod json;
pub mod json_decode;
pub mod model;
pub mod ndarray;
pub mod options;
pub mod pyjson;
mod pyjson_parse;
pub mod safetensors_blob;
pub mod steps;

pub use error::OutputError;
pub use model::{
    FeatureAttributionOutput, FeatureAttributionSequenceOutput, FeatureAttributionStepOutput,
    ScoreMap, SequenceClass, TokenWithId,
};
pub use options::{SaveOptions, ScorePrecision};
