//! `rinseq generate`: prints the continuation of each input text.
//!
//! ```text
//! rinseq generate -m smollm2-135m -i "The capital of France is" --generation-kwargs '{"max_new_tokens": 10}'
//! ```
//!
//! `--model` accepts a local HF-format folder, a `.gguf` file, a hub id `org/name[@revision]` or
//! an alias (`smollm2-135m`); see [`crate::source`] for the environment variables honoured
//! (`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `HF_TOKEN`, `RINSEQ_CACHE`,
//! `RINSEQ_SMOLLM2_GGUF`).

use candle_core::DType;

use crate::generation::{generate, GenerationConfig, GenerationInput, GenerationParams};
use crate::models::load::{load_model, ModelFiles};
use crate::models::ModelKind;
use crate::source::{resolve, SourceConfig};

/// Floating-point type the model runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DtypeArg {
    /// 32-bit floats (reference precision).
    F32,
    /// 16-bit floats.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<DtypeArg> for DType {
    fn from(d: DtypeArg) -> DType {
        match d {
            DtypeArg::F32 => DType::F32,
            DtypeArg::F16 => DType::F16,
            DtypeArg::Bf16 => DType::BF16,
        }
    }
}

/// Arguments of `rinseq generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Model: a local HF-format folder, a .gguf file, a hub id org/name[@revision], or an alias
    /// (smollm2-135m).
    #[arg(short = 'm', long)]
    pub model: String,
    /// Input text (repeat for a batch).
    #[arg(short = 'i', long = "input-text", required = true)]
    pub input_texts: Vec<String>,
    /// HF `generate` kwargs as a JSON object, e.g. '{"max_new_tokens": 10, "num_beams": 4}'.
    #[arg(long = "generation-kwargs")]
    pub generation_kwargs: Option<String>,
    /// Precision of the model weights and activations.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,
}

/// Runs `rinseq generate`: prints each continuation (special tokens skipped) on stdout.
pub fn run(args: &GenerateArgs) -> Result<(), Box<dyn std::error::Error>> {
    for text in generate_texts(args, &SourceConfig::from_env())? {
        println!("{text}");
    }
    Ok(())
}

/// The continuations `rinseq generate` prints, one per input text.
pub fn generate_texts(
    args: &GenerateArgs,
    sources: &SourceConfig,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let user = match &args.generation_kwargs {
        Some(json) => GenerationConfig::from_kwargs_json(json)?,
        None => GenerationConfig::default(),
    };
    let files = resolve(&args.model, sources)?;
    let defaults = match &files {
        ModelFiles::HfFolder(dir) => GenerationConfig::from_model_dir(dir)?,
        ModelFiles::Gguf(_) => GenerationConfig::default(),
    };
    let loaded = load_model(&files, args.dtype.into())?;
    let model = loaded.model.as_ref();
    let params = GenerationParams::resolve(&defaults.merged_with(&user), model.spec())?;
    let mut ids = Vec::with_capacity(args.input_texts.len());
    for text in &args.input_texts {
        ids.push(loaded.tokenizer.encode(text, true)?);
    }
    let input = match model.spec().kind {
        ModelKind::DecoderOnly => GenerationInput::decoder_only(ids),
        ModelKind::EncoderDecoder => GenerationInput::encoder_decoder(ids),
    };
    let out = generate(model, &input, &params)?;
    let mut texts = Vec::with_capacity(out.len());
    for new in out {
        texts.push(loaded.tokenizer.decode(&new, true)?);
    }
    Ok(texts)
}
