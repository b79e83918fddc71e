//! The SDK's goals for method authors, checked on the code they read: the README's example
//! methods are the compiled ones (the SDK's crate doctest and the example plugin), they are
//! short, and no ABI-stable type appears in plugin code.
//!
//! "Author code" is a plugin's behaviour, its `impl AttributionPlugin` / `impl
//! StepFunctionPlugin` block, without blank lines, comments and, for a step function, the lines
//! marked `// gradient` (the goal is "≤ 15 lines plus its gradient"). Declarations (parameters,
//! name, description, capabilities) are the same few lines for every plugin and not counted.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The ```rust block after `<!-- author-code: NAME -->` in the README, unindented.
fn readme_block(name: &str) -> Vec<String> {
    let readme = read("README.md");
    let at = readme
        .find(&format!("<!-- author-code: {name} -->"))
        .unwrap_or_else(|| panic!("README has no author-code block {name}"));
    let body = &readme[at..];
    let start = body.find("```rust").unwrap() + "```rust".len();
    let end = start + body[start..].find("```").unwrap();
    body[start..end]
        .lines()
        .map(|l| l.strip_prefix("   ").unwrap_or(l).trim_end().to_string())
        .skip_while(|l| l.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .skip_while(|l| l.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// The code between `// author-code: NAME` and `// end author-code` in a source file.
fn source_region(rel: &str, name: &str) -> Vec<String> {
    let text = read(rel);
    let begin = format!("// author-code: {name}");
    let start = text.find(&begin).unwrap() + begin.len();
    let end = start + text[start..].find("// end author-code").unwrap();
    text[start..end]
        .trim_matches('\n')
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// The crate-level example of the SDK (compiled and run as a doctest), up to its test part.
fn sdk_example() -> Vec<String> {
    let lib = read("sdk/src/lib.rs");
    let doc: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let from = doc
        .iter()
        .position(|l| l.starts_with("## A small method"))
        .unwrap();
    let start = from + doc[from..].iter().position(|l| *l == "```").unwrap() + 1;
    let end = start
        + doc[start..]
            .iter()
            .position(|l| l.starts_with("# fn main"))
            .unwrap();
    let mut block: Vec<String> = doc[start..end].iter().map(|l| l.to_string()).collect();
    while block.last().is_some_and(|l| l.is_empty()) {
        block.pop();
    }
    block
}

/// Author-code lines of the `impl TRAIT for` block in `code`.
fn author_lines(code: &[String], trait_name: &str) -> Vec<String> {
    let start = code
        .iter()
        .position(|l| l.starts_with(&format!("impl {trait_name} for")))
        .unwrap_or_else(|| panic!("no impl {trait_name}"));
    let end = start + code[start..].iter().position(|l| l == "}").unwrap();
    code[start..=end]
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.ends_with("// gradient"))
        .map(String::from)
        .collect()
}

#[test]
fn readme_examples_are_the_compiled_ones() {
    assert_eq!(readme_block("gradient-method"), sdk_example());
    let example = "examples/third-party-plugin/src/lib.rs";
    assert_eq!(
        readme_block("leave_one_out"),
        source_region(example, "leave_one_out")
    );
    assert_eq!(readme_block("log_odds"), source_region(example, "log_odds"));
}

#[test]
fn example_methods_fit_in_30_lines_and_a_step_function_in_15() {
    let cases = [
        ("gradient-method", "AttributionPlugin", 30),
        ("leave_one_out", "AttributionPlugin", 30),
        ("log_odds", "StepFunctionPlugin", 15),
    ];
    for (name, trait_name, limit) in cases {
        let lines = author_lines(&readme_block(name), trait_name);
        assert!(
            lines.len() <= limit,
            "{name}: {} lines of author code, the goal is {limit}:\n{}",
            lines.len(),
            lines.join("\n")
        );
    }
    // The whole gradient example, declarations included, fits too.
    let whole = sdk_example()
        .iter()
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("//") && !t.starts_with("use ")
        })
        .count();
    assert!(whole <= 30, "the whole gradient example has {whole} lines");
}

#[test]
fn plugin_code_uses_no_abi_stable_type() {
    let forbidden = ["abi_stable", "RVec", "ROption", "RSlice", "RString"];
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .collect();
    dirs.push(root().join("examples/third-party-plugin/src"));
    let mut hits = Vec::new();
    let mut stack = dirs;
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|x| x == "rs") {
            for (n, line) in std::fs::read_to_string(&p).unwrap().lines().enumerate() {
                if forbidden.iter().any(|w| line.contains(w)) {
                    hits.push(format!("{}:{}: {line}", p.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "ABI-stable types in plugin code:\n{}",
        hits.join("\n")
    );
}
