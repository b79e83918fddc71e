//! Aggregation against Python inseq 0.7.1: every case of tests/fixtures/aggregation/cases.json
//! (made by tests/fixtures/aggregation/make_reference.py; no Python at test time) aggregates its
//! input file with rinseq's engine and aggregator plugins and must give Inseq's
//! `expected/<case>.json.gz`: same tokens (strings and ids), same `attr_pos_start/end`, same class,
//! same tensor shapes, values within 1e-5 (NaN where NaN), same step scores and the same `info`
//! apart from rinseq's own `info["aggregation"]` history. The fixture files are Inseq's
//! `save(compress=True)` output (`.json.gz`), which `FeatureAttributionOutput::load` reads.
//!
//! `pair` cases (`"paired": FILE`) are Inseq's `a - b` per sequence ([`diff`]), then the
//! remaining aggregators, if any. `RINSEQ_AGG_CASE=name[,name]` runs only those cases.

mod parity_support;
mod plugin_support;

use std::path::{Path, PathBuf};

use plugin_support::build::root;
use rinseq::aggregation::{aggregate_output, diff, AggregationSpec};
use rinseq::output::{
    FeatureAttributionOutput, FeatureAttributionSequenceOutput, SaveOptions, ScoreMap,
};
use rinseq::plugins::PluginRegistry;
use rinseq_sdk::Tensor;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Absolute tolerance on every value.
const ATOL: f32 = 1e-5;
/// How many mismatches a failing case prints.
const SHOW: usize = 6;
/// Cases where rinseq differs from Inseq on purpose (README, "Differences from Inseq 0.7.1"):
/// the name, the keyword arguments that spell out rinseq's behaviour, and why. For these, the
/// test checks that rinseq's result equals its explicit form and differs from Inseq's.
const DELIBERATE: &[(&str, &str, &str)] = &[(
    "subwords_no_marker_gpt2",
    r#"{"special_chars": ["Ġ", "Ċ"]}"#,
    "subwords detects byte-level BPE markers where Inseq assumes ▁ and merges nothing",
)];

/// The `info` key rinseq adds (its aggregation history); Inseq leaves `info` unchanged.
const HISTORY_KEY: &str = "aggregation";

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    input: String,
    aggregators: Vec<String>,
    aggregate_fns: Vec<Option<String>>,
    kwargs: Map<String, Value>,
    #[serde(default)]
    paired: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

fn fixture_dir() -> PathBuf {
    root().join("tests/fixtures/aggregation")
}

fn cases() -> Vec<Case> {
    #[derive(Deserialize)]
    struct File {
        cases: Vec<Case>,
    }
    let path = fixture_dir().join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: File =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let only = std::env::var("RINSEQ_AGG_CASE").ok();
    file.cases
        .into_iter()
        .filter(|c| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n.trim() == c.name))
        })
        .collect()
}

fn load(rel: &str) -> FeatureAttributionOutput {
    let path = fixture_dir().join(rel);
    FeatureAttributionOutput::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn expected(case: &Case) -> FeatureAttributionOutput {
    load(&format!("expected/{}.json.gz", case.name))
}

/// rinseq's result for `case`, or the engine's error as text.
fn run(reg: &PluginRegistry, case: &Case) -> Result<FeatureAttributionOutput, String> {
    let input = load(&case.input);
    let (start, mut aggregators, mut functions) =
        (input, case.aggregators.clone(), case.aggregate_fns.clone());
    let start = if aggregators.first().map(String::as_str) == Some("pair") {
        let paired = case
            .paired
            .as_deref()
            .unwrap_or_else(|| panic!("{}: a pair case needs \"paired\"", case.name));
        let b = load(paired);
        let d = diff(reg, &start, &b).map_err(|e| format!("diff: {e}"))?;
        aggregators.remove(0);
        functions.remove(0);
        if aggregators.is_empty() {
            return Ok(d);
        }
        d
    } else {
        start
    };
    // No function named at all: leave the list empty (the spec's "defaults" form).
    if functions.iter().all(Option::is_none) {
        functions.clear();
    }
    let spec = AggregationSpec {
        aggregators,
        functions,
        kwargs: case.kwargs.clone(),
    };
    aggregate_output(reg, &start, &spec).map_err(|e| e.to_string())
}

// ------------------------------------------------------------------------------ comparison

/// Row-major index of flat position `i` in `shape`, e.g. `[3, 1, 7]`.
fn index_of(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
    }
    idx
}

fn compare_tensor(what: &str, got: &Tensor, want: &Tensor, out: &mut Vec<String>) {
    if got.shape[..] != want.shape[..] {
        out.push(format!(
            "{what}: shape {:?}, Inseq {:?}",
            &got.shape[..],
            &want.shape[..]
        ));
        return;
    }
    let mut bad = 0usize;
    let mut shown = Vec::new();
    for (i, (&g, &w)) in got.data.iter().zip(want.data.iter()).enumerate() {
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else {
            (g - w).abs() <= ATOL
        };
        if !ok {
            bad += 1;
            if shown.len() < SHOW {
                shown.push(format!(
                    "{:?}: {g} vs Inseq {w}",
                    index_of(i, &want.shape[..])
                ));
            }
        }
    }
    if bad > 0 {
        out.push(format!(
            "{what}: {bad} of {} values differ (atol {ATOL}); first: {}",
            want.data.len(),
            shown.join("; ")
        ));
    }
}

fn compare_opt(what: &str, got: &Option<Tensor>, want: &Option<Tensor>, out: &mut Vec<String>) {
    match (got, want) {
        (Some(g), Some(w)) => compare_tensor(what, g, w, out),
        (None, None) => {}
        (Some(g), None) => out.push(format!(
            "{what}: rinseq has shape {:?}, Inseq has none",
            &g.shape[..]
        )),
        (None, Some(w)) => out.push(format!(
            "{what}: rinseq has none, Inseq has shape {:?}",
            &w.shape[..]
        )),
    }
}

fn compare_maps(what: &str, got: &ScoreMap, want: &ScoreMap, out: &mut Vec<String>) {
    let mut gk: Vec<&String> = got.keys().collect();
    let mut wk: Vec<&String> = want.keys().collect();
    gk.sort();
    wk.sort();
    if gk != wk {
        out.push(format!("{what}: keys {gk:?}, Inseq {wk:?}"));
    }
    for (k, w) in want {
        if let Some(g) = got.get(k) {
            compare_tensor(&format!("{what}.{k}"), g, w, out);
        }
    }
}

fn tokens(seq: &[rinseq::output::TokenWithId]) -> Vec<(String, i64)> {
    seq.iter().map(|t| (t.token.clone(), t.id)).collect()
}

fn compare_sequence(
    i: usize,
    got: &FeatureAttributionSequenceOutput,
    want: &FeatureAttributionSequenceOutput,
    out: &mut Vec<String>,
) {
    let p = format!("seq {i}");
    if got.class != want.class {
        out.push(format!(
            "{p}: class {}, Inseq {}",
            got.class.sequence_class_name(),
            want.class.sequence_class_name()
        ));
    }
    for (name, g, w) in [
        ("source", &got.source, &want.source),
        ("target", &got.target, &want.target),
    ] {
        if g != w {
            out.push(format!(
                "{p}: {name} tokens {:?}, Inseq {:?}",
                tokens(g),
                tokens(w)
            ));
        }
    }
    if (got.attr_pos_start, got.attr_pos_end) != (want.attr_pos_start, want.attr_pos_end) {
        out.push(format!(
            "{p}: attr_pos {}..{}, Inseq {}..{}",
            got.attr_pos_start, got.attr_pos_end, want.attr_pos_start, want.attr_pos_end
        ));
    }
    compare_opt(
        &format!("{p} source_attributions"),
        &got.source_attributions,
        &want.source_attributions,
        out,
    );
    compare_opt(
        &format!("{p} target_attributions"),
        &got.target_attributions,
        &want.target_attributions,
        out,
    );
    compare_maps(
        &format!("{p} step_scores"),
        &got.step_scores,
        &want.step_scores,
        out,
    );
    let empty = ScoreMap::new();
    compare_maps(
        &format!("{p} sequence_scores"),
        got.sequence_scores.as_ref().unwrap_or(&empty),
        want.sequence_scores.as_ref().unwrap_or(&empty),
        out,
    );
}

/// Every difference between rinseq's `got` and Inseq's `want`.
fn compare(got: &FeatureAttributionOutput, want: &FeatureAttributionOutput) -> Vec<String> {
    let mut out = Vec::new();
    if got.len() != want.len() {
        out.push(format!("{} sequences, Inseq {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got
        .sequence_attributions
        .iter()
        .zip(&want.sequence_attributions)
        .enumerate()
    {
        compare_sequence(i, g, w, &mut out);
    }
    let (mut info, mut want_info) = (got.info.clone(), want.info.clone());
    info.remove(HISTORY_KEY);
    want_info.remove(HISTORY_KEY);
    if info != want_info {
        let mut keys: Vec<&String> = info
            .keys()
            .chain(want_info.keys())
            .filter(|k| info.get(*k) != want_info.get(*k))
            .collect();
        keys.dedup();
        out.push(format!("info differs at {keys:?}"));
    }
    out
}

fn describe(case: &Case) -> String {
    let mut s = format!(
        "{} ({}: aggregators {:?}, fns {:?}, kwargs {})",
        case.name,
        case.input,
        case.aggregators,
        case.aggregate_fns,
        Value::Object(case.kwargs.clone())
    );
    if let Some(p) = &case.paired {
        s.push_str(&format!(", paired {p}"));
    }
    if let Some(n) = &case.note {
        s.push_str(&format!(" [{n}]"));
    }
    s
}

fn report(title: &str, failures: &[(String, Vec<String>)], total: usize) {
    if failures.is_empty() {
        return;
    }
    let mut msg = format!("{title}: {} of {total} cases fail\n", failures.len());
    for (case, problems) in failures {
        msg.push_str(&format!("\n{case}\n"));
        for p in problems.iter().take(SHOW) {
            msg.push_str(&format!("    {p}\n"));
        }
        if problems.len() > SHOW {
            msg.push_str(&format!("    ... and {} more\n", problems.len() - SHOW));
        }
    }
    panic!("{msg}");
}

// ------------------------------------------------------------------------------ tests

#[test]
fn every_case_matches_inseq() {
    let reg = parity_support::registry();
    let cases = cases();
    assert!(!cases.is_empty(), "no cases selected");
    let mut failures = Vec::new();
    for case in &cases {
        let want = expected(case);
        let problems = match run(&reg, case) {
            Ok(got) => match DELIBERATE.iter().find(|d| d.0 == case.name) {
                Some(&(_, explicit, why)) => deliberate(&reg, case, &got, &want, explicit, why),
                None => compare(&got, &want),
            },
            Err(e) => vec![format!("rinseq error: {e}")],
        };
        if problems.is_empty() {
            eprintln!("ok   {}", case.name);
        } else {
            eprintln!("FAIL {}: {}", case.name, problems[0]);
            failures.push((describe(case), problems));
        }
    }
    report("aggregation parity", &failures, cases.len());
}

/// A deliberate difference: `got` equals the run with `explicit` kwargs added, and differs from
/// Inseq's `want` (otherwise the entry in [`DELIBERATE`] is stale).
fn deliberate(
    reg: &PluginRegistry,
    case: &Case,
    got: &FeatureAttributionOutput,
    want: &FeatureAttributionOutput,
    explicit: &str,
    why: &str,
) -> Vec<String> {
    let extra: Map<String, Value> = serde_json::from_str(explicit).unwrap();
    let mut spelled = Case {
        name: case.name.clone(),
        input: case.input.clone(),
        aggregators: case.aggregators.clone(),
        aggregate_fns: case.aggregate_fns.clone(),
        kwargs: case.kwargs.clone(),
        paired: case.paired.clone(),
        note: None,
    };
    spelled.kwargs.extend(extra);
    let mut problems: Vec<String> = match run(reg, &spelled) {
        Ok(explicit_run) => compare(got, &explicit_run)
            .into_iter()
            .map(|p| format!("differs from its explicit form {explicit}: {p}"))
            .collect(),
        Err(e) => vec![format!("explicit form {explicit}: {e}")],
    };
    if compare(got, want).is_empty() {
        problems.push(format!("now equals Inseq: drop it from DELIBERATE ({why})"));
    }
    problems
}

/// The aggregated output saved by rinseq (Inseq's format, float32) and loaded back equals both
/// the in-memory result and Inseq's expected file.
#[test]
fn saved_aggregations_round_trip() {
    let reg = parity_support::registry();
    let cases = cases();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let Ok(got) = run(&reg, case) else {
            // every_case_matches_inseq reports engine errors.
            continue;
        };
        let path = tmp.path().join(format!("{}.json", case.name));
        let problems = match got.save(&path, &SaveOptions::default()) {
            Err(e) => vec![format!("save: {e}")],
            Ok(_) => match FeatureAttributionOutput::load(&path) {
                Err(e) => vec![format!("load: {e}")],
                Ok(back) => {
                    let mut p: Vec<String> = compare(&back, &got)
                        .into_iter()
                        .map(|s| format!("reloaded vs in-memory: {s}"))
                        .collect();
                    if back.info != got.info {
                        p.push("reloaded vs in-memory: info differs".into());
                    }
                    let deliberate = DELIBERATE.iter().any(|d| d.0 == case.name);
                    p.extend(
                        compare(&back, &expected(case))
                            .into_iter()
                            .filter(|_| !deliberate)
                            .map(|s| format!("reloaded vs Inseq: {s}")),
                    );
                    p
                }
            },
        };
        if !problems.is_empty() {
            failures.push((describe(case), problems));
        }
    }
    report("save/load round trip", &failures, cases.len());
}

/// The fixture folder is consistent: one expected file per case, inputs present, the kinds of
/// case the fixtures promise are there.
#[test]
fn fixtures_are_complete() {
    let dir = fixture_dir();
    let all: Vec<Case> = {
        #[derive(Deserialize)]
        struct File {
            cases: Vec<Case>,
        }
        serde_json::from_str::<File>(&std::fs::read_to_string(dir.join("cases.json")).unwrap())
            .unwrap()
            .cases
    };
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    let mut expected_files: Vec<String> = std::fs::read_dir(dir.join("expected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    expected_files.sort();
    let mut want: Vec<String> = names.iter().map(|n| format!("{n}.json.gz")).collect();
    want.sort();
    assert_eq!(
        expected_files, want,
        "expected/ must hold exactly one file per case"
    );
    for c in &all {
        assert!(
            Path::new(&dir.join(&c.input)).exists(),
            "{}: no {}",
            c.name,
            c.input
        );
        assert_eq!(c.aggregators.len(), c.aggregate_fns.len(), "{}", c.name);
        if let Some(p) = &c.paired {
            assert!(dir.join(p).exists(), "{}: no {p}", c.name);
        }
    }
    let uses = |agg: &str| all.iter().any(|c| c.aggregators.iter().any(|a| a == agg));
    for agg in ["scores", "spans", "subwords", "split", "slices", "pair"] {
        assert!(uses(agg), "no case uses the {agg} aggregator");
    }
    for f in ["mean", "max", "min", "sum", "prod", "absmax", "vnorm"] {
        assert!(
            all.iter()
                .any(|c| c.aggregate_fns.iter().any(|x| x.as_deref() == Some(f))),
            "no case uses aggregate_fn {f}"
        );
    }
    assert!(
        all.iter().any(|c| c.aggregators.is_empty()),
        "no default-aggregation case"
    );
}
