//! Records the compiler version, shown by the host when a plugin fails to load.
fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_else(|| "unknown rustc".into());
    println!("cargo:rustc-env=RINSEQ_SDK_RUSTC={}", version.trim());
    println!("cargo:rerun-if-changed=build.rs");
}
