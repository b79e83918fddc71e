//! Loading errors name the file or field and the fix.

use std::path::Path;

use candle_core::DType;
use rinseq::models::load::{load_model, ModelFiles};

use super::root;

fn copy_fixture(name: &str, to: &Path) {
    let from = root().join("tests/fixtures/models").join(name);
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn err_of(dir: &Path) -> String {
    match load_model(&ModelFiles::HfFolder(dir.to_path_buf()), DType::F32) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, f: impl Fn(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, v.to_string()).unwrap();
}

#[test]
fn bad_model_folders_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_fixture("llama", dir);

    edit_config(dir, |v| {
        v.as_object_mut().unwrap().remove("model_type");
    });
    let e = err_of(dir);
    assert!(
        e.contains("has no \"model_type\" field") && e.contains("config.json"),
        "{e}"
    );

    edit_config(dir, |v| v["model_type"] = "falcon9".into());
    let e = err_of(dir);
    assert!(
        e.contains("unsupported model_type \"falcon9\"") && e.contains("gpt2, llama, "),
        "{e}"
    );

    edit_config(dir, |v| v["model_type"] = "llama".into());
    let st = dir.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let e = err_of(dir);
    assert!(
        e.contains("corrupt or truncated weight file") && e.contains("model.safetensors"),
        "{e}"
    );

    std::fs::remove_file(&st).unwrap();
    let e = err_of(dir);
    assert!(
        e.contains("no weights in") && e.contains("model.safetensors.index.json"),
        "{e}"
    );

    std::fs::write(&st, &bytes).unwrap();
    edit_config(dir, |v| v["num_hidden_layers"] = 3.into());
    let e = err_of(dir);
    assert!(
        e.contains("\"model.layers.2.input_layernorm.weight\" not found"),
        "{e}"
    );

    edit_config(dir, |v| v["num_hidden_layers"] = 2.into());
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let e = err_of(dir);
    assert!(
        e.contains("no tokenizer in") && e.contains("tokenizer.json"),
        "{e}"
    );

    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert!(err_of(dir).contains("no config.json in"));
    let e = ModelFiles::detect(&dir.join("missing.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a model"), "{e}");
    let e = load_model(
        &ModelFiles::HfFolder(root().join("tests/fixtures/models/gpt2")),
        DType::U8,
    )
    .unwrap_err();
    assert!(e.to_string().contains("u8"), "{e}");
}

#[test]
fn bf16_on_cpu_rounds_weights_and_computes_in_f32() {
    use candle_core::{Device, Tensor};
    use rinseq::models::{ForwardInput, LogitPositions, Side, SideInput, Taps};
    let dir = root().join("tests/fixtures/models/llama");
    let logits = |dtype| {
        let m = load_model(&ModelFiles::HfFolder(dir.clone()), dtype).unwrap();
        let ids = Tensor::new(&[[5u32, 9, 17, 33]], &Device::Cpu).unwrap();
        let input = ForwardInput {
            encoder: None,
            decoder: SideInput {
                embeds: m.model.embed(Side::Decoder, &ids).unwrap(),
                mask: Tensor::ones((1, 4), DType::U8, &Device::Cpu).unwrap(),
            },
            logits_at: LogitPositions::Last,
        };
        let out = m.model.forward(&input, &mut Taps::none()).unwrap().logits;
        assert_eq!(out.dtype(), DType::F32, "bf16 computes in f32 on the CPU");
        out.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let (full, half) = (logits(DType::F32), logits(DType::BF16));
    let diff = full
        .iter()
        .zip(&half)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff > 0.0, "bf16 weights must differ from f32 weights");
    assert!(diff < 0.05, "bf16 rounding error too large: {diff}");
}

#[test]
fn too_long_input_is_an_error() {
    use candle_core::{Device, Tensor};
    use rinseq::models::{ForwardInput, LogitPositions, Side, SideInput, Taps};
    let loaded = load_model(
        &ModelFiles::HfFolder(root().join("tests/fixtures/models/gpt2")),
        DType::F32,
    )
    .unwrap();
    let n = loaded.spec.max_positions + 1;
    let ids = Tensor::zeros((1, n), DType::U32, &Device::Cpu).unwrap();
    let embeds = loaded.model.embed(Side::Decoder, &ids).unwrap();
    let mask = Tensor::ones((1, n), DType::U8, &Device::Cpu).unwrap();
    let input = ForwardInput {
        encoder: None,
        decoder: SideInput { embeds, mask },
        logits_at: LogitPositions::Last,
    };
    let e = loaded
        .model
        .forward(&input, &mut Taps::none())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("longer than the model's context of 128 positions"),
        "{e}"
    );
}

/// `load_model` also loads Marian folders (no tokenizer.json: source/target .spm tokenizers).
#[test]
fn marian_folder_loads_with_two_tokenizers() {
    let dir = root().join("tests/fixtures/models/marian");
    let loaded = load_model(&ModelFiles::HfFolder(dir), DType::F32).unwrap();
    assert_eq!(loaded.spec.model_type, "marian");
    let target = loaded
        .target_tokenizer
        .as_ref()
        .expect("marian has a target tokenizer");
    assert!(!loaded
        .tokenizer
        .encode("The capital", true)
        .unwrap()
        .is_empty());
    assert!(!target.encode("La capitale", true).unwrap().is_empty());
}
