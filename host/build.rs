//! Exposes the SDK version the host is built against, for `rinseq --version`.
fn main() {
    let manifest = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../sdk/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap_or_default();
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RINSEQ_SDK_VERSION={version}");
    println!("cargo:rerun-if-changed=../sdk/Cargo.toml");
}
