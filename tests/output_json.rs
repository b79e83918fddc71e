//! Inseq JSON save/load (`rinseq::output`): Python-written reference files (from
//! `tests/fixtures/inseq_json/make_inseq_json.py`, real inseq 0.7.1) load with the right tokens,
//! positions, info and values and re-save byte for byte; Rust round trips for every save option;
//! error messages. With `RINSEQ_KEEP_TEST_OUTPUT=1`, `rust_files_for_python_check` leaves files in
//! `target/inseq_json_roundtrip/` for `tests/fixtures/inseq_json/check_rust_file.py`.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use rinseq::output::pyjson::{py_float_repr, Json};
use rinseq::output::safetensors_blob::f32_to_f8_e4m3fn;
use rinseq::output::{
    FeatureAttributionOutput, FeatureAttributionSequenceOutput, FeatureAttributionStepOutput,
    OutputError, SaveOptions, ScorePrecision, SequenceClass, TokenWithId,
};
use rinseq_sdk::Tensor;
use safetensors::SafeTensors;
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/inseq_json")
}

fn reference_json() -> Json {
    let text = fs::read_to_string(fixtures().join("reference.json")).expect("reference.json");
    Json::parse(&text).expect("reference.json parses")
}

fn reference_tensors() -> Vec<u8> {
    fs::read(fixtures().join("reference.safetensors")).expect("reference.safetensors")
}

fn ref_tensor(st: &SafeTensors, name: &str) -> Tensor {
    let view = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("reference tensor {name}"));
    let data = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Tensor::new(view.shape().to_vec(), data).unwrap()
}

fn same_values(a: &Tensor, b: &Tensor) -> bool {
    a.shape == b.shape
        && a.data.len() == b.data.len()
        && a.data
            .iter()
            .zip(b.data.iter())
            .all(|(x, y)| (x.is_nan() && y.is_nan()) || x == y)
}

/// `|a - b| <= rel * |b| + abs`, NaN where `b` is NaN.
fn close(a: &Tensor, b: &Tensor, rel: f32, abs: f32) -> bool {
    a.shape == b.shape
        && a.data
            .iter()
            .zip(b.data.iter())
            .all(|(x, y)| (x.is_nan() && y.is_nan()) || (x - y).abs() <= rel * y.abs() + abs)
}

fn precision_tolerance(p: ScorePrecision) -> (f32, f32) {
    match p {
        ScorePrecision::Float32 => (0.0, 0.0),
        ScorePrecision::Float16 => (1e-3, 1e-6),
        ScorePrecision::Float8 => (0.0625, 1e-3),
    }
}

fn str_of(j: Option<&Json>) -> &str {
    match j {
        Some(Json::Str(s)) => s,
        other => panic!("expected a string, got {other:?}"),
    }
}

fn tokens_of(j: Option<&Json>) -> Vec<TokenWithId> {
    let Some(Json::Array(items)) = j else {
        panic!("expected tokens")
    };
    items
        .iter()
        .map(|pair| match pair {
            Json::Array(p) => match (&p[0], &p[1]) {
                (Json::Str(t), Json::Int(id)) => TokenWithId::new(t.clone(), *id),
                _ => panic!("bad token pair"),
            },
            _ => panic!("bad token pair"),
        })
        .collect()
}

fn seq_field<'a>(s: &'a FeatureAttributionSequenceOutput, field: &str) -> Option<&'a Tensor> {
    match field {
        "source_attributions" => s.source_attributions.as_ref(),
        "target_attributions" => s.target_attributions.as_ref(),
        f => match f.split_once('.') {
            Some(("step_scores", k)) => s.step_scores.get(k),
            Some(("sequence_scores", k)) => s.sequence_scores.as_ref()?.get(k),
            _ => None,
        },
    }
}

fn step_field<'a>(s: &'a FeatureAttributionStepOutput, field: &str) -> Option<&'a Tensor> {
    match field {
        "source_attributions" => s.source_attributions.as_ref(),
        "target_attributions" => s.target_attributions.as_ref(),
        f => s.step_scores.get(f.strip_prefix("step_scores.")?),
    }
}

fn options_of(fx: &Json) -> SaveOptions {
    let o = fx.get("options").unwrap();
    let flag = |k: &str| o.get(k) == Some(&Json::Bool(true));
    SaveOptions {
        compress: flag("compress"),
        split_sequences: flag("split_sequences"),
        scores_precision: match o.get("scores_precision") {
            Some(Json::Str(p)) => p.parse().unwrap(),
            _ => ScorePrecision::Float32,
        },
        ..SaveOptions::default()
    }
}

fn check_fixture(name: &str, fx: &Json, st: &SafeTensors) {
    let opts = options_of(fx);
    let base = str_of(fx.get("tensors"));
    let Some(Json::Array(files)) = fx.get("files") else {
        panic!("files")
    };
    let outs: Vec<FeatureAttributionOutput> = files
        .iter()
        .map(|f| FeatureAttributionOutput::load(fixtures().join(str_of(Some(f)))).unwrap())
        .collect();
    let Some(Json::Array(seqs)) = fx.get("sequences") else {
        panic!("sequences")
    };
    let ref_info = Value::from(fx.get("info").unwrap());
    for (i, rs) in seqs.iter().enumerate() {
        let (out, j) = if opts.split_sequences {
            (&outs[i], 0)
        } else {
            (&outs[0], i)
        };
        let s = &out.sequence_attributions[j];
        assert_eq!(
            s.class.sequence_class_name(),
            str_of(rs.get("class")),
            "{name} seq {i}"
        );
        assert_eq!(
            s.source,
            tokens_of(rs.get("source")),
            "{name} seq {i} source"
        );
        assert_eq!(
            s.target,
            tokens_of(rs.get("target")),
            "{name} seq {i} target"
        );
        assert_eq!(
            Some(&Json::Int(s.attr_pos_start as i64)),
            rs.get("attr_pos_start")
        );
        assert_eq!(
            Some(&Json::Int(s.attr_pos_end as i64)),
            rs.get("attr_pos_end")
        );
        let Some(Json::Object(shapes)) = rs.get("shapes") else {
            panic!("shapes")
        };
        assert!(!shapes.is_empty());
        for (field, shape) in shapes {
            let got = seq_field(s, field).unwrap_or_else(|| panic!("{name} seq {i} {field}"));
            let shape: Vec<usize> = match shape {
                Json::Array(d) => d
                    .iter()
                    .map(|x| if let Json::Int(v) = x { *v as usize } else { 0 })
                    .collect(),
                _ => panic!(),
            };
            assert_eq!(&got.shape[..], shape.as_slice(), "{name} seq {i} {field}");
            let original = ref_tensor(st, &format!("{base}.seq{i}.{field}"));
            if opts.scores_precision == ScorePrecision::Float32 {
                assert!(same_values(got, &original), "{name} seq {i} {field} values");
            } else {
                let rounded = ref_tensor(st, &format!("{name}.seq{i}.{field}.rounded"));
                assert!(
                    same_values(got, &rounded),
                    "{name} seq {i} {field} rounded values"
                );
                let (rel, abs) = precision_tolerance(opts.scores_precision);
                assert!(
                    close(got, &original, rel, abs),
                    "{name} seq {i} {field} tolerance"
                );
            }
        }
        let mut info = ref_info.as_object().unwrap().clone();
        if opts.split_sequences {
            for key in ["input_texts", "generated_texts"] {
                let one = info[key][i].clone();
                info.insert(key.into(), json!([one]));
            }
        }
        assert_eq!(out.info, info, "{name} info");
    }
    match fx.get("steps") {
        Some(Json::Array(steps)) => {
            let got = outs[0]
                .step_attributions
                .as_ref()
                .expect("step attributions");
            assert_eq!(got.len(), steps.len());
            for (j, rstep) in steps.iter().enumerate() {
                let g = &got[j];
                assert_eq!(g.class.step_class_name(), str_of(rstep.get("class")));
                let prefix = match rstep.get("prefix") {
                    Some(Json::Array(rows)) => rows.iter().map(|r| tokens_of(Some(r))).collect(),
                    _ => panic!(),
                };
                assert_eq!(g.prefix.as_ref(), Some(&prefix));
                assert!(g.source.is_none());
                let Some(Json::Object(shapes)) = rstep.get("shapes") else {
                    panic!()
                };
                for (field, _) in shapes {
                    let want = ref_tensor(st, &format!("{name}.step{j}.{field}"));
                    assert!(
                        same_values(step_field(g, field).unwrap(), &want),
                        "{name} step {j} {field}"
                    );
                }
            }
        }
        _ => assert!(outs.iter().all(|o| o.step_attributions.is_none())),
    }
}

#[test]
fn python_files_load_with_tokens_positions_info_and_values() {
    let refs = reference_json();
    let bytes = reference_tensors();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let Some(Json::Object(cases)) = refs.get("fixtures") else {
        panic!("fixtures")
    };
    assert_eq!(cases.len(), 6);
    for (name, fx) in cases {
        check_fixture(name, fx, &st);
    }
}

#[test]
fn python_files_resave_byte_for_byte() {
    let refs = reference_json();
    let Some(Json::Object(cases)) = refs.get("fixtures") else {
        panic!()
    };
    for (name, fx) in cases {
        let opts = options_of(fx);
        let Some(Json::Array(files)) = fx.get("files") else {
            panic!()
        };
        for f in files {
            let path = fixtures().join(str_of(Some(f)));
            let out = FeatureAttributionOutput::load(&path).unwrap();
            let ours = out.to_inseq_json(&opts).unwrap();
            let bytes = fs::read(&path).unwrap();
            let theirs = if opts.compress {
                let mut s = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(&bytes[..]),
                    &mut s,
                )
                .unwrap();
                s
            } else {
                String::from_utf8(bytes).unwrap()
            };
            assert!(
                ours == theirs,
                "{name}: {} differs from Inseq's file",
                path.display()
            );
        }
    }
}

#[test]
fn float8_cast_matches_pytorch_bit_for_bit() {
    let bytes = reference_tensors();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let input = ref_tensor(&st, "f8_cast.input");
    let bits = st.tensor("f8_cast.bits").unwrap();
    assert_eq!(bits.data().len(), input.data.len());
    for (x, want) in input.data.iter().zip(bits.data()) {
        assert_eq!(f32_to_f8_e4m3fn(*x), *want, "cast of {x:e}");
    }
}

fn tok(t: &str, id: i64) -> TokenWithId {
    TokenWithId::new(t, id)
}

fn tensor(shape: &[usize], f: impl Fn(usize) -> f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(shape.to_vec(), (0..n).map(f).collect()).unwrap()
}

/// An encoder-decoder style output: 2 sequences, NaN upper triangles, step and sequence scores,
/// step attributions, unicode tokens and a nested info dict.
fn synthetic() -> FeatureAttributionOutput {
    let mut seqs = Vec::new();
    for (i, (src, tgt)) in [(3usize, 4usize), (2, 3)].into_iter().enumerate() {
        let source: Vec<_> = (0..src)
            .map(|k| tok(&format!("▁s{k}"), 10 + k as i64))
            .collect();
        let target: Vec<_> = (0..tgt)
            .map(|k| tok(&format!("Ġt{k}\"é😀"), 20 + k as i64))
            .collect();
        let steps = tgt - 1;
        let mut s =
            FeatureAttributionSequenceOutput::new(SequenceClass::Granular, source, target, 1, tgt);
        s.source_attributions = Some(tensor(&[src, steps, 2], |k| {
            0.01 + (k as f32) * 0.37 - 0.5 * i as f32
        }));
        s.target_attributions = Some(tensor(&[tgt, steps, 2], |k| {
            let (row, col) = (k / (steps * 2), (k / 2) % steps);
            if row > col {
                f32::NAN
            } else {
                1.5 / (k as f32 + 1.0)
            }
        }));
        s.step_scores.insert(
            "probability".into(),
            tensor(&[steps], |k| 0.9 / (k as f32 + 2.0)),
        );
        s.step_scores
            .insert("entropy".into(), tensor(&[steps], |k| 3.0 + k as f32));
        if i == 0 {
            s.sequence_scores = Some(
                [(
                    "encoder_self_attentions".to_string(),
                    tensor(&[src, src], |k| k as f32 / 9.0),
                )]
                .into_iter()
                .collect(),
            );
        } else {
            s.sequence_scores = None;
        }
        seqs.push(s);
    }
    let step = |p: usize| FeatureAttributionStepOutput {
        source_attributions: Some(tensor(&[2, 3, 2], |k| k as f32 * 0.25 + p as f32)),
        target_attributions: Some(tensor(&[2, p, 2], |k| {
            if k == 1 {
                f32::NAN
            } else {
                -(k as f32)
            }
        })),
        step_scores: [("probability".to_string(), tensor(&[2], |k| 0.5 + k as f32))]
            .into_iter()
            .collect(),
        sequence_scores: Default::default(),
        source: Some(vec![vec![tok("▁a", 1)], vec![tok("▁b", 2)]]),
        prefix: Some(vec![vec![tok("<pad>", 0)]; 2]),
        target: Some(vec![vec![tok("x", 5)], vec![tok("y", 6)]]),
        class: SequenceClass::Granular,
    };
    let info = json!({
        "attribution_method": "saliency", "attr_pos_start": 1, "attr_pos_end": 4,
        "step_scores": ["probability", "entropy"], "exec_time": 0.41, "tokenizer_name": null,
        "input_texts": ["Ceci est un test.", "Bonjour"], "generated_texts": ["This is a \"test\".", "Hello 😀"],
        "generation_args": {"max_new_tokens": 3, "temperature": 1e-05}, "attribute_target": true
    });
    let Value::Object(info) = info else {
        unreachable!()
    };
    FeatureAttributionOutput {
        sequence_attributions: seqs,
        step_attributions: Some(vec![step(1), step(2)]),
        info,
    }
}

fn assert_round_trip(
    back: &FeatureAttributionOutput,
    orig: &FeatureAttributionOutput,
    p: ScorePrecision,
) {
    let (rel, abs) = precision_tolerance(p);
    assert_eq!(back.info, orig.info);
    assert_eq!(back.len(), orig.len());
    for (b, o) in back
        .sequence_attributions
        .iter()
        .zip(&orig.sequence_attributions)
    {
        assert_eq!(
            (&b.source, &b.target, b.class),
            (&o.source, &o.target, o.class)
        );
        assert_eq!(
            (b.attr_pos_start, b.attr_pos_end),
            (o.attr_pos_start, o.attr_pos_end)
        );
        for f in [
            "source_attributions",
            "target_attributions",
            "step_scores.probability",
            "step_scores.entropy",
            "sequence_scores.encoder_self_attentions",
        ] {
            match (seq_field(b, f), seq_field(o, f)) {
                (Some(x), Some(y)) => assert!(close(x, y, rel, abs), "{f} ({p})"),
                (None, None) => {}
                _ => panic!("{f} presence differs"),
            }
        }
        assert_eq!(b.sequence_scores.is_some(), o.sequence_scores.is_some());
        let nan = |t: &Tensor| t.data.iter().map(|v| v.is_nan()).collect::<Vec<_>>();
        let (bt, ot) = (
            b.target_attributions.as_ref().unwrap(),
            o.target_attributions.as_ref().unwrap(),
        );
        assert!(nan(bt).iter().any(|x| *x));
        assert_eq!(nan(bt), nan(ot), "NaN positions preserved");
    }
}

#[test]
fn rust_round_trip_for_every_option() {
    let orig = synthetic();
    let dir = tempfile::tempdir().unwrap();
    for compress in [false, true] {
        for split in [false, true] {
            for compact in [true, false] {
                for p in [
                    ScorePrecision::Float32,
                    ScorePrecision::Float16,
                    ScorePrecision::Float8,
                ] {
                    let opts = SaveOptions {
                        compress,
                        split_sequences: split,
                        scores_precision: p,
                        ndarray_compact: compact,
                        overwrite: true,
                    };
                    let path = dir
                        .path()
                        .join(format!("out_{compress}_{split}_{compact}_{p}.json"));
                    let written = orig.save(&path, &opts).unwrap();
                    for w in &written {
                        let head = fs::read(w).unwrap();
                        assert_eq!(
                            head.starts_with(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]),
                            compress
                        );
                    }
                    if split {
                        let stem = path.to_string_lossy().replace(".json", "");
                        let gz = if compress { ".gz" } else { "" };
                        assert_eq!(
                            written,
                            (0..2)
                                .map(|i| PathBuf::from(format!("{stem}_{i}.json{gz}")))
                                .collect::<Vec<_>>()
                        );
                        for (i, w) in written.iter().enumerate() {
                            let back = FeatureAttributionOutput::load(w).unwrap();
                            assert!(back.step_attributions.is_none());
                            assert_round_trip(&back, &orig.split_part(i), p);
                            assert_eq!(
                                back.info["input_texts"],
                                json!([orig.info["input_texts"][i]])
                            );
                        }
                    } else {
                        assert_eq!(written, vec![path.clone()]);
                        let back = FeatureAttributionOutput::load(&path).unwrap();
                        assert_round_trip(&back, &orig, p);
                        let (bs, os) = (
                            back.step_attributions.unwrap(),
                            orig.step_attributions.as_ref().unwrap(),
                        );
                        assert!(
                            bs.iter().zip(os).all(|(b, o)| b.allclose(o, 0.0)),
                            "step attributions"
                        );
                        if p == ScorePrecision::Float32 {
                            assert!(FeatureAttributionOutput::load(&path)
                                .unwrap()
                                .allclose(&orig, 0.0));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn sdk_conversion_round_trips() {
    let orig = synthetic().sequence_attributions.remove(0);
    let sdk = orig.to_sdk();
    assert_eq!(sdk.scores.step_scores[0].name.as_str(), "probability");
    assert_eq!(sdk.target[0].text.as_str(), orig.target[0].token);
    let back = FeatureAttributionSequenceOutput::from_sdk(sdk, SequenceClass::Granular);
    assert!(back.allclose(&orig, 0.0));
}

#[test]
fn python_json_formatting() {
    let cases = [
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (1.377555, "1.377555"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (123456789012345678.0, "1.2345678901234568e+17"),
        (1.5e-7, "1.5e-07"),
        (-2.5e20, "-2.5e+20"),
        (3.4028234663852886e38, "3.4028234663852886e+38"),
        (1.401298464324817e-45, "1.401298464324817e-45"),
        (5e-324, "5e-324"),
        (100.0, "100.0"),
        (12345.678, "12345.678"),
        (9999999999999998.0, "9999999999999998.0"),
        (0.00012345, "0.00012345"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
        (1.0 / 3.0, "0.3333333333333333"),
        (0.30000000000000004, "0.30000000000000004"),
        (1e22, "1e+22"),
    ];
    for (x, want) in cases {
        assert_eq!(py_float_repr(x), want);
    }
    let v = Json::Object(vec![
        (
            "b".into(),
            Json::Str("\u{120}w \u{2581}This \"q\" \\ \n\t\u{1}\u{7f} é 😀".into()),
        ),
        ("a".into(), Json::Array(vec![])),
        (
            "d".into(),
            Json::Array(vec![
                Json::Int(1),
                Json::Object(vec![
                    ("x".into(), Json::Null),
                    ("Y".into(), Json::Bool(true)),
                ]),
            ]),
        ),
        ("c".into(), Json::Object(vec![])),
    ]);
    let want = "{\n    \"a\": [],\n    \"b\": \"\\u0120w \\u2581This \\\"q\\\" \\\\ \\n\\t\\u0001\\u007f \\u00e9 \\ud83d\\ude00\",\n    \"c\": {},\n    \"d\": [\n        1,\n        {\n            \"Y\": true,\n            \"x\": null\n        }\n    ]\n}";
    assert_eq!(v.to_python_string(), want);
    assert_eq!(Json::parse(want).unwrap().to_python_string(), want);
    assert_eq!(
        Json::parse("[NaN, -Infinity, 1e400]")
            .unwrap()
            .to_python_string(),
        "[\n    NaN,\n    -Infinity,\n    Infinity\n]"
    );
}

#[test]
fn errors_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let e = FeatureAttributionOutput::load(&missing).unwrap_err();
    assert!(
        matches!(e, OutputError::NotFound { .. }) && e.to_string().contains("missing.json"),
        "{e}"
    );

    let bad = dir.path().join("bad.json");
    fs::write(&bad, "{\"a\": [1, 2,,]}").unwrap();
    let e = FeatureAttributionOutput::load(&bad).unwrap_err();
    assert!(matches!(e, OutputError::NotJson { .. }), "{e}");
    assert!(
        e.to_string().contains("bad.json") && e.to_string().contains("line 1 column"),
        "{e}"
    );

    let plain = dir.path().join("plain.json");
    fs::write(&plain, "{\"sequence_attributions\": []}").unwrap();
    let e = FeatureAttributionOutput::load(&plain).unwrap_err();
    assert!(
        matches!(e, OutputError::NotInseq { .. }) && e.to_string().contains("__instance_type__"),
        "{e}"
    );

    // A sequence whose tensor is stored as int32: not a precision Inseq writes.
    let mut out = synthetic();
    out.step_attributions = None;
    let good = dir.path().join("good.json");
    out.save(&good, &SaveOptions::default()).unwrap();
    let blob = safetensors::tensor::serialize(
        [(
            "attribution",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![1], &[0, 0, 0, 0])
                .unwrap(),
        )],
        None,
    )
    .unwrap();
    let text = fs::read_to_string(&good).unwrap();
    let probe = rinseq::output::safetensors_blob::encode_b64(
        &out.sequence_attributions[0].step_scores["entropy"],
        ScorePrecision::Float32,
        "x",
    )
    .unwrap();
    let int_file = dir.path().join("int.json");
    fs::write(
        &int_file,
        text.replacen(
            &probe,
            &base64::engine::general_purpose::STANDARD.encode(&blob),
            1,
        ),
    )
    .unwrap();
    let e = FeatureAttributionOutput::load(&int_file).unwrap_err();
    assert!(matches!(e, OutputError::UnsupportedPrecision { .. }), "{e}");
    assert!(
        e.to_string().contains("int.json") && e.to_string().contains("step_scores.entropy"),
        "{e}"
    );

    let e = out.save(&good, &SaveOptions::default()).unwrap_err();
    assert!(
        matches!(e, OutputError::Exists { .. }) && e.to_string().contains("overwrite"),
        "{e}"
    );
    out.save(
        &good,
        &SaveOptions {
            overwrite: true,
            ..SaveOptions::default()
        },
    )
    .unwrap();
    let e = "float64".parse::<ScorePrecision>().unwrap_err();
    assert!(e.to_string().contains("float32, float16 or float8"), "{e}");
    assert!(!e.to_string().contains('\n'));
}

/// Writes Rust-saved files for `tests/fixtures/inseq_json/check_rust_file.py` (run by hand with
/// the Python venv): into `target/inseq_json_roundtrip/` when `RINSEQ_KEEP_TEST_OUTPUT=1`, else
/// into a temporary folder (the writing is still exercised).
#[test]
fn rust_files_for_python_check() {
    let keep = std::env::var("RINSEQ_KEEP_TEST_OUTPUT").is_ok_and(|v| v == "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = if keep {
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let d = target.join("inseq_json_roundtrip");
        let _ = fs::remove_dir_all(&d);
        d
    } else {
        tmp.path().to_path_buf()
    };
    fs::create_dir_all(&dir).unwrap();
    let mut out = synthetic();
    out.step_attributions = None; // Inseq 0.7.1 cannot load step attributions (its own files neither)
    let mut manifest = Vec::new();
    let variants = [
        ("synthetic_f32.json", false, false, ScorePrecision::Float32),
        (
            "synthetic_f16.json.gz",
            true,
            false,
            ScorePrecision::Float16,
        ),
        ("synthetic_f8.json", false, false, ScorePrecision::Float8),
        ("synthetic_split.json", false, true, ScorePrecision::Float32),
    ];
    for (file, compress, split, p) in variants {
        let opts = SaveOptions {
            compress,
            split_sequences: split,
            scores_precision: p,
            ..SaveOptions::default()
        };
        for (k, w) in out.save(dir.join(file), &opts).unwrap().iter().enumerate() {
            let seqs: Vec<usize> = if split {
                vec![k]
            } else {
                (0..out.len()).collect()
            };
            let name = w.file_name().unwrap().to_string_lossy().to_string();
            manifest.push(json!({"file": name, "compress": compress, "precision": p.as_str(), "sequences": seqs}));
        }
    }
    // Expected values, tokens and info of the synthetic output.
    let mut tensors = Vec::new();
    let mut seqs = Vec::new();
    for (i, s) in out.sequence_attributions.iter().enumerate() {
        for f in [
            "source_attributions",
            "target_attributions",
            "step_scores.probability",
            "step_scores.entropy",
            "sequence_scores.encoder_self_attentions",
        ] {
            if let Some(t) = seq_field(s, f) {
                let bytes: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                tensors.push((format!("seq{i}.{f}"), t.shape.to_vec(), bytes));
            }
        }
        let toks = |ts: &[TokenWithId]| {
            ts.iter()
                .map(|t| json!([t.token, t.id]))
                .collect::<Vec<_>>()
        };
        seqs.push(json!({"class": s.class.sequence_class_name(), "source": toks(&s.source), "target": toks(&s.target),
            "attr_pos_start": s.attr_pos_start, "attr_pos_end": s.attr_pos_end}));
    }
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, shape, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    fs::write(
        dir.join("expected.safetensors"),
        safetensors::tensor::serialize(views, None).unwrap(),
    )
    .unwrap();
    // Python fixtures loaded and re-saved by Rust: Inseq must load them equal to its originals.
    let mut resaved = Vec::new();
    for (src, opts) in [
        ("gpt2_saliency.json", SaveOptions::default()),
        (
            "marian_saliency.json.gz",
            SaveOptions {
                compress: true,
                ..SaveOptions::default()
            },
        ),
        (
            "marian_saliency_f16.json",
            SaveOptions {
                scores_precision: ScorePrecision::Float16,
                ..SaveOptions::default()
            },
        ),
        (
            "gpt2_attention_f8.json",
            SaveOptions {
                scores_precision: ScorePrecision::Float8,
                ..SaveOptions::default()
            },
        ),
        ("marian_occlusion_split_1.json", SaveOptions::default()),
    ] {
        let loaded = FeatureAttributionOutput::load(fixtures().join(src)).unwrap();
        let name = format!("resaved_{src}");
        loaded.save(dir.join(&name), &opts).unwrap();
        resaved.push(json!({"file": name, "original": fixtures().join(src).canonicalize().unwrap(), "compress": opts.compress}));
    }
    let manifest = json!({"synthetic": manifest, "sequences": seqs, "info": Value::Object(out.info.clone()), "resaved": resaved});
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    assert!(dir.join("synthetic_split_1.json").exists());
}
