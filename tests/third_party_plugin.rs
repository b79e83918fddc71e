//! A third party adds a method without rebuilding the host: the out-of-tree example plugin
//! (its own Cargo workspace, depending on the SDK by path) is built, registered through a
//! temporary registry.toml, and run through the host. A plugin built against another SDK series
//! is refused with a one-line message.

mod plugin_support;

use plugin_support::build::{plugin_built_with_sdk, third_party_plugin, workspace_plugin};
use plugin_support::toy_host::ToyHost;
use rinseq::plugins::{load_library, PluginKind, PluginLoadError, PluginRegistry, PluginSources};
use serde_json::json;

fn registry(dir: &std::path::Path) -> PluginRegistry {
    let text = format!(
        "[[library]]\nname = \"third-party\"\npath = \"{}\"\n\n[library.defaults.token_gradient_norm]\nord = 1.0\n\n[[library]]\nname = \"gradient-methods\"\npath = \"{}\"\n",
        third_party_plugin().display(),
        workspace_plugin("rinseq_gradient_methods").display()
    );
    let path = dir.join("registry.toml");
    std::fs::write(&path, text).unwrap();
    PluginRegistry::load(&PluginSources {
        registry: Some(path),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn out_of_tree_method_and_step_function_run_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    assert_eq!(
        reg.find(PluginKind::Attribution, "token_gradient_norm")
            .unwrap()
            .defaults,
        json!({"ord": 1.0})
    );

    // The third party's step function is the attribution target of an in-tree method...
    let ids = [1u32, 2, 3, 4];
    let host = ToyHost::new(
        &ids,
        2,
        reg.step_function("log_odds", &json!({})).unwrap().plugin,
    );
    let saliency = reg.attribution("saliency", &json!({"abs": false})).unwrap();
    let grads = saliency.attribute(host.as_ref(), &host.request).unwrap();
    let g = grads.sequences[0].target.clone().unwrap();

    // ...and the third party's method runs on the same host: one L1 norm per token and step.
    let method = reg.attribution("token_gradient_norm", &json!({})).unwrap();
    let out = method.attribute(host.as_ref(), &host.request).unwrap();
    let t = out.sequences[0].target.clone().unwrap();
    assert_eq!(&t.shape[..], &[4, 2]);
    let d = g.shape[2];
    for i in 0..4 {
        for j in 0..2 {
            let l1: f32 = (0..d).map(|k| g.data[(i * 2 + j) * d + k].abs()).sum();
            let got = t.data[i * 2 + j];
            if l1.is_nan() {
                assert!(got.is_nan());
            } else {
                assert!((got - l1).abs() < 1e-5, "{got} vs {l1}");
            }
        }
    }
    // The log-odds score itself: ln(p / (1 - p)) of the toy model's target probability.
    let (score, _) = host.score(&host.actual(), 2, false).unwrap();
    let z = host.logits(&host.actual(), 2);
    let lse = z.iter().map(|v| (*v as f64).exp()).sum::<f64>().ln();
    let p = (z[3] as f64 - lse).exp();
    assert!((score as f64 - (p / (1.0 - p)).ln()).abs() < 1e-5);
}

#[test]
fn plugin_built_with_another_sdk_series_is_refused() {
    let path = plugin_built_with_sdk("0.4.0");
    let e = load_library("future", &path).err().unwrap();
    assert!(matches!(e, PluginLoadError::Incompatible { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("is incompatible: built with rinseq-sdk 0.4.0, host uses rinseq-sdk 0.3.0: rebuild the plugin against rinseq-sdk 0.3.0"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.len() < 600, "condensed: {msg}");
}

#[test]
fn out_of_tree_aggregator_runs_in_a_pipeline() {
    use rinseq::aggregation::{aggregate_output, AggregationSpec};
    use rinseq::output::{
        FeatureAttributionOutput, FeatureAttributionSequenceOutput, SequenceClass, TokenWithId,
    };
    use rinseq_sdk::Tensor;

    let reg = PluginRegistry::load(&PluginSources {
        extra: vec![third_party_plugin(), workspace_plugin("rinseq_aggregators")],
        ..Default::default()
    })
    .unwrap();
    let toks: Vec<TokenWithId> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, t)| TokenWithId::new(*t, i as i64))
        .collect();
    // Decoder-only: 4 target tokens, steps at positions 2 and 3, hidden size 2.
    let mut seq = FeatureAttributionSequenceOutput::new(
        SequenceClass::Granular,
        toks[..2].to_vec(),
        toks.clone(),
        2,
        4,
    );
    let nan = f32::NAN;
    #[rustfmt::skip]
    let data = vec![
        3.0, 4.0,  1.0, 0.0,
        0.0, 1.0,  0.0, 2.0,
        nan, nan,  0.5, 0.5,
        nan, nan,  nan, nan,
    ];
    seq.target_attributions = Some(Tensor::new(vec![4, 2, 2], data).unwrap());
    let out = FeatureAttributionOutput::new(vec![seq], Default::default());
    let spec = AggregationSpec {
        aggregators: vec!["vnorm".into(), "top_k".into()],
        functions: vec![],
        kwargs: json!({"k": 1}).as_object().unwrap().clone(),
    };
    let agg = aggregate_output(&reg, &out, &spec).unwrap();
    let t = agg.sequence_attributions[0]
        .target_attributions
        .clone()
        .unwrap();
    assert_eq!(&t.shape[..], &[4, 2]);
    // Column 0: norms 5, 1 (normalised 5/6, 1/6) -> only row 0 kept; column 1: 1, 2, 0.707.
    let col = |j: usize| (0..4).map(|i| t.data[i * 2 + j]).collect::<Vec<f32>>();
    assert!((col(0)[0] - 5.0 / 6.0).abs() < 1e-6 && col(0)[1] == 0.0);
    assert!(col(0)[2].is_nan() && col(0)[3].is_nan());
    assert!(col(1)[0] == 0.0 && col(1)[1] > 0.5 && col(1)[2] == 0.0 && col(1)[3].is_nan());
    assert_eq!(
        agg.info["aggregation"][0]["aggregators"],
        json!(["vnorm", "top_k"])
    );
}
