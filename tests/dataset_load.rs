//! Dataset loading for `rinseq attribute-dataset` (`rinseq::dataset::load`): JSON Lines, JSON
//! arrays, CSV and parquet files (made by pyarrow: tests/fixtures/datasets/make_parquet.py),
//! folders split by file name, hub datasets through a local HTTP server speaking the routes
//! `hf-hub` uses, offline mode on the cache it left, and every error message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rinseq::dataset::load::{load_dataset, load_dataset_with, DatasetError, DatasetSpec, Example};
use rinseq::source::SourceConfig;
use sha2::{Digest, Sha256};

const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/datasets")
        .join(name)
}

fn spec(name: &str, files: &[PathBuf]) -> DatasetSpec {
    DatasetSpec {
        name: name.to_string(),
        files: files.to_vec(),
        dir: None,
        split: "train".to_string(),
        config: None,
        revision: None,
        input_field: "text".to_string(),
        generated_field: Some("reference".to_string()),
    }
}

/// A configuration whose hub is `endpoint`, with its cache under `tmp`.
fn config(tmp: &Path, endpoint: &str) -> SourceConfig {
    let mut cfg = SourceConfig::new(tmp.join("hub"), tmp.join("rinseq"));
    cfg.endpoint = endpoint.to_string();
    cfg
}

/// Loads with a hub nobody answers (local files never touch it).
fn load(spec: &DatasetSpec) -> Result<Vec<Example>, DatasetError> {
    let tmp = tempfile::tempdir().unwrap();
    load_dataset_with(spec, &config(tmp.path(), &dead_endpoint()))
}

fn one_line(e: &DatasetError) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "multi-line error: {s}");
    s
}

fn expected() -> Vec<Example> {
    let rows = [
        ("Hello world", "Hello world!"),
        (
            "The capital of France is",
            "The capital of France is Paris.",
        ),
        ("Quotes \"and\", commas\nand lines", "ok"),
    ];
    rows.iter()
        .enumerate()
        .map(|(index, (i, g))| Example {
            index,
            input: i.to_string(),
            generated: Some(g.to_string()),
        })
        .collect()
}

#[test]
fn every_format_reads_the_same_rows() {
    for (name, file) in [
        ("json", "prompts.jsonl"),
        ("json", "prompts.json"),
        ("csv", "prompts.csv"),
        ("parquet", "prompts.snappy.parquet"),
        ("parquet", "prompts.gzip.parquet"),
        ("parquet", "prompts.none.parquet"),
    ] {
        let got = load(&spec(name, &[fixture(file)])).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got, expected(), "{file}");
    }
    // a CSV saved by Excel: byte-order mark and CRLF
    let tmp = tempfile::tempdir().unwrap();
    let bom = tmp.path().join("excel.csv");
    std::fs::write(
        &bom,
        "\u{feff}text,reference\r\nHello world,Hello world!\r\n",
    )
    .unwrap();
    let got = load(&spec("csv", &[bom])).unwrap();
    assert_eq!(got[..], expected()[..1]);

    // without --generated-text-field
    let mut s = spec("parquet", &[fixture("prompts.snappy.parquet")]);
    s.generated_field = None;
    let got = load(&s).unwrap();
    assert_eq!(got[1].input, "The capital of France is");
    assert!(got.iter().all(|e| e.generated.is_none()));
}

#[test]
fn rows_are_numbered_across_files_and_row_groups() {
    let got = load(&spec(
        "json",
        &[fixture("prompts.jsonl"), fixture("prompts.json")],
    ))
    .unwrap();
    let ids: Vec<usize> = got.iter().map(|e| e.index).collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(got[3].input, "Hello world");

    let mut s = spec("parquet", &[fixture("row_groups.parquet")]);
    s.generated_field = None;
    let got = load(&s).unwrap();
    let texts: Vec<String> = got.iter().map(|e| e.input.clone()).collect();
    let want: Vec<String> = (0..10).map(|i| format!("row {i}")).collect();
    assert_eq!(texts, want);
}

#[test]
fn folders_are_split_by_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let line = |t: &str| format!("{{\"text\": \"{t}\"}}\n");
    std::fs::write(dir.join("train.jsonl"), line("a")).unwrap();
    std::fs::write(dir.join("sub/train-2.jsonl"), line("b")).unwrap();
    std::fs::write(dir.join("test.jsonl"), line("c")).unwrap();
    std::fs::write(dir.join("notes.csv"), "text\nnot json\n").unwrap();
    std::fs::write(dir.join(".hidden.jsonl"), "garbage").unwrap();
    let mut s = spec("json", &[]);
    s.generated_field = None;
    s.dir = Some(dir.clone());
    let texts = |s: &DatasetSpec| -> Vec<String> {
        load(s).unwrap().into_iter().map(|e| e.input).collect()
    };
    assert_eq!(
        texts(&s),
        vec!["b", "a"],
        "sorted paths: sub/… before train…"
    );
    s.split = "test".into();
    assert_eq!(texts(&s), vec!["c"]);
    s.split = "validation".into();
    let err = load(&s).unwrap_err();
    assert!(matches!(err, DatasetError::UnknownSplit { .. }), "{err}");
    let msg = one_line(&err);
    assert!(
        msg.contains("\"validation\"") && msg.contains("[train, test]"),
        "{msg}"
    );

    // no split names: every file of the format, sorted, is the train split
    let shards = tmp.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    for (f, t) in [
        ("part-b.jsonl", "2"),
        ("part-a.jsonl", "1"),
        ("part-c.json", "3"),
    ] {
        std::fs::write(shards.join(f), line(t)).unwrap();
    }
    s.dir = Some(shards);
    s.split = "train".into();
    assert_eq!(texts(&s), vec!["1", "2", "3"]);

    // relative --dataset-files are joined to --dataset-dir
    s.files = vec!["part-c.json".into()];
    assert_eq!(texts(&s), vec!["3"]);

    // a folder without that format
    let mut s = spec("parquet", &[]);
    s.dir = Some(dir);
    let err = load(&s).unwrap_err();
    assert!(matches!(err, DatasetError::NoFilesInDir { .. }), "{err}");
    assert!(one_line(&err).contains(".parquet"));
}

#[test]
fn errors_name_the_thing_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };

    // missing file
    let missing = tmp.path().join("nope.jsonl");
    let err = load(&spec("json", std::slice::from_ref(&missing))).unwrap_err();
    assert!(matches!(err, DatasetError::FileNotFound(_)), "{err}");
    assert!(one_line(&err).contains(&missing.display().to_string()));
    let mut s = spec("csv", &[]);
    s.dir = Some(tmp.path().join("no-dir"));
    assert!(matches!(
        load(&s).unwrap_err(),
        DatasetError::DirNotFound(_)
    ));
    let err = load(&spec("csv", &[])).unwrap_err();
    assert!(
        one_line(&err).contains("--dataset-files or --dataset-dir"),
        "{err}"
    );

    // unknown format
    let err = load(&spec("tsv", &[])).unwrap_err();
    assert!(matches!(err, DatasetError::UnknownFormat(_)), "{err}");
    let msg = one_line(&err);
    for word in ["\"tsv\"", "json", "csv", "parquet", "org/name"] {
        assert!(msg.contains(word), "{word}: {msg}");
    }

    // missing field, in each format
    for (name, file) in [
        ("json", fixture("prompts.jsonl")),
        ("csv", fixture("prompts.csv")),
        ("parquet", fixture("prompts.snappy.parquet")),
    ] {
        let mut s = spec(name, &[file]);
        s.input_field = "prompt".into();
        let err = load(&s).unwrap_err();
        assert!(matches!(err, DatasetError::MissingField { .. }), "{err}");
        let msg = one_line(&err);
        // JSON objects list their keys sorted; CSV and parquet in column order
        assert!(
            msg.contains("\"prompt\"")
                && (msg.contains("[id, text, reference]") || msg.contains("[id, reference, text]")),
            "{msg}"
        );
    }

    // malformed JSON Lines: the 1-based line number
    let bad = write(
        "bad.jsonl",
        "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"\n",
    );
    let err = load(&spec("json", std::slice::from_ref(&bad))).unwrap_err();
    assert!(
        matches!(err, DatasetError::MalformedJsonLine { line: 3, .. }),
        "{err}"
    );
    assert!(one_line(&err).contains(&format!("{}:3", bad.display())));
    let not_obj = write("list.jsonl", "{\"text\": \"a\"}\n[1, 2]\n");
    let err = load(&spec("json", &[not_obj])).unwrap_err();
    assert!(
        matches!(err, DatasetError::MalformedJsonLine { line: 2, .. }),
        "{err}"
    );
    let wrapped = write(
        "wrapped.json",
        "{\n  \"data\": [{\"text\": \"a\"}],\n  \"version\": 1\n}\n",
    );
    let err = load(&spec("json", &[wrapped])).unwrap_err();
    assert!(matches!(err, DatasetError::JsonNotRecords { .. }), "{err}");
    assert!(one_line(&err).contains("[data, version]"), "{err}");

    // empty dataset
    let empty = write("empty.jsonl", "\n\n");
    let err = load(&spec("json", &[empty])).unwrap_err();
    assert!(matches!(err, DatasetError::Empty(_)), "{err}");
    assert!(one_line(&err).contains("no rows"));
    let mut s = spec("parquet", &[fixture("empty.parquet")]);
    s.generated_field = None;
    let err = load(&s).unwrap_err();
    assert!(matches!(err, DatasetError::Empty(_)), "{err}");

    // a non-string value: its row and field
    let num = write(
        "num.jsonl",
        "{\"text\": \"a\", \"reference\": \"x\"}\n{\"text\": 7, \"reference\": \"y\"}\n",
    );
    let err = load(&spec("json", std::slice::from_ref(&num))).unwrap_err();
    assert!(
        matches!(err, DatasetError::NotAString { row: 1, .. }),
        "{err}"
    );
    let msg = one_line(&err);
    assert!(
        msg.contains("row 1") && msg.contains("\"text\"") && msg.contains("a number"),
        "{msg}"
    );
    let mut s = spec("parquet", &[fixture("nulls.parquet")]);
    s.generated_field = None;
    let err = load(&s).unwrap_err();
    assert!(
        matches!(err, DatasetError::NotAString { row: 1, .. }),
        "{err}"
    );
    assert!(one_line(&err).contains("null"));
    s.input_field = "tags".into();
    let err = load(&s).unwrap_err();
    assert!(one_line(&err).contains("a list"), "{err}");
    let holes = write("holes.csv", "text,reference\na,b\n,c\n");
    let err = load(&spec("csv", &[holes])).unwrap_err();
    assert!(
        matches!(err, DatasetError::NotAString { row: 1, .. }),
        "{err}"
    );
    assert!(one_line(&err).contains("holes.csv:3"), "{err}");

    // not a parquet file
    let fake = write("fake.parquet", "not parquet at all");
    let err = load(&spec("parquet", &[fake])).unwrap_err();
    assert!(matches!(err, DatasetError::Parquet { .. }), "{err}");
    one_line(&err);
}

/// zstd is not built in (see host/Cargo.toml): the error says so in one line.
#[test]
fn zstd_parquet_is_refused_clearly() {
    let err = load(&spec("parquet", &[fixture("prompts.zstd.parquet")])).unwrap_err();
    let msg = one_line(&err);
    assert!(
        msg.contains("prompts.zstd.parquet")
            && msg.contains("zstd")
            && msg.contains("compression='snappy'"),
        "{msg}"
    );
}

// ---- the hub ----

/// A fake hub serving dataset `repos` (repo id -> file name -> bytes) on 127.0.0.1.
struct Hub {
    endpoint: String,
    requests: Arc<AtomicUsize>,
    server: Arc<tiny_http::Server>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn serve(repos: BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> Hub {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let port = server.server_addr().to_ip().expect("ip").port();
    let requests = Arc::new(AtomicUsize::new(0));
    let (s, r) = (server.clone(), requests.clone());
    std::thread::spawn(move || {
        for req in s.incoming_requests() {
            r.fetch_add(1, Ordering::SeqCst);
            let range = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Range"))
                .map(|h| h.value.as_str().to_string());
            let resp = answer(&repos, req.url(), range.as_deref());
            let _ = req.respond(resp);
        }
    });
    Hub {
        endpoint: format!("http://127.0.0.1:{port}"),
        requests,
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
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let not_found = || tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404);
    // GET /api/datasets/{org}/{name}/revision/{rev}
    if let Some(rest) = url.strip_prefix("/api/datasets/") {
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
    // GET /datasets/{org}/{name}/resolve/{rev}/{file}
    let Some(rest) = url.strip_prefix("/datasets/") else {
        return not_found();
    };
    let Some((repo, rest)) = rest.split_once("/resolve/") else {
        return not_found();
    };
    let Some((_rev, file)) = rest.split_once('/') else {
        return not_found();
    };
    let Some(data) = repos.get(repo).and_then(|f| f.get(file)) else {
        return not_found();
    };
    let etag: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (start, end) = match range.and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap_or((r, ""));
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b.parse().unwrap_or(data.len().saturating_sub(1));
            (a.min(data.len()), (b + 1).min(data.len()))
        }
        None => (0, data.len()),
    };
    tiny_http::Response::from_data(data[start..end].to_vec())
        .with_status_code(206)
        .with_header(header("ETag", &format!("\"{etag}\"")))
        .with_header(header("X-Repo-Commit", COMMIT))
        .with_header(header(
            "Content-Range",
            &format!("bytes {start}-{}/{}", end.saturating_sub(1), data.len()),
        ))
}

/// An endpoint where nothing listens.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// A repo laid out as `push_to_hub` leaves it: sharded parquet under `data/`, plus a config
/// folder `fr/` with JSON Lines per split.
fn repo() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (
            ".gitattributes".to_string(),
            b"*.parquet filter=lfs".to_vec(),
        ),
        (
            "README.md".to_string(),
            b"---\nlicense: mit\n---\n".to_vec(),
        ),
        (
            "data/train-00000-of-00002.parquet".to_string(),
            read("prompts.snappy.parquet"),
        ),
        (
            "data/train-00001-of-00002.parquet".to_string(),
            read("prompts.gzip.parquet"),
        ),
        (
            "data/test-00000-of-00001.parquet".to_string(),
            read("row_groups.parquet"),
        ),
        ("fr/train.jsonl".to_string(), read("prompts.jsonl")),
        (
            "fr/validation.jsonl".to_string(),
            b"{\"text\": \"Bonjour\"}\n".to_vec(),
        ),
    ])
}

fn hub_spec(split: &str, config: Option<&str>) -> DatasetSpec {
    let mut s = spec("org/prompts", &[]);
    s.split = split.to_string();
    s.config = config.map(str::to_string);
    s.generated_field = None;
    s
}

fn inputs(rows: &[Example]) -> Vec<&str> {
    rows.iter().map(|e| e.input.as_str()).collect()
}

#[test]
fn hub_download_then_cache_then_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = serve(BTreeMap::from([("org/prompts".to_string(), repo())]));
    let cfg = config(tmp.path(), &hub.endpoint);

    // data/train-* : both shards, in order, numbered across them
    let mut s = hub_spec("train", None);
    s.generated_field = Some("reference".into());
    let got = load_dataset_with(&s, &cfg).expect("download");
    assert_eq!(got.len(), 6);
    assert_eq!(got[..3], expected()[..]);
    assert_eq!(got[5].index, 5);
    let snapshot = tmp
        .path()
        .join(format!("hub/datasets--org--prompts/snapshots/{COMMIT}"));
    assert!(snapshot.join("data/train-00001-of-00002.parquet").is_file());
    assert!(
        !snapshot.join("README.md").exists(),
        "only the split's files"
    );
    assert!(!snapshot.join("data/test-00000-of-00001.parquet").exists());

    // cached: only the file list is asked for again
    let before = hub.requests.load(Ordering::SeqCst);
    assert_eq!(load_dataset_with(&s, &cfg).unwrap(), got);
    assert_eq!(hub.requests.load(Ordering::SeqCst), before + 1);

    // another split, a config folder, a revision
    let test = load_dataset_with(&hub_spec("test", None), &cfg).unwrap();
    assert_eq!(test.len(), 10);
    let fr = load_dataset_with(&hub_spec("validation", Some("fr")), &cfg).unwrap();
    assert_eq!(inputs(&fr), vec!["Bonjour"]);
    let mut v1 = hub_spec("train", Some("fr"));
    v1.revision = Some("v1".into());
    assert_eq!(load_dataset_with(&v1, &cfg).unwrap().len(), 3);

    // explicit files in the repo (globs)
    let mut files = hub_spec("train", None);
    files.files = vec!["data/*-00001-of-*.parquet".into()];
    assert_eq!(load_dataset_with(&files, &cfg).unwrap().len(), 3);

    // offline: no request at all, same rows
    let mut offline = cfg.clone();
    offline.offline = true;
    let before = hub.requests.load(Ordering::SeqCst);
    assert_eq!(load_dataset_with(&s, &offline).unwrap(), got);
    assert_eq!(
        inputs(&load_dataset_with(&hub_spec("validation", Some("fr")), &offline).unwrap()),
        vec!["Bonjour"]
    );
    assert_eq!(hub.requests.load(Ordering::SeqCst), before);
    // a split that was never downloaded is "not cached", not "not in the repo"
    let err = load_dataset_with(&hub_spec("test", Some("fr")), &offline).unwrap_err();
    assert!(
        matches!(err, DatasetError::OfflineNotCached { .. }),
        "{err}"
    );
    let mut other = hub_spec("train", None);
    other.name = "org/other".into();
    let err = load_dataset_with(&other, &offline).unwrap_err();
    assert!(
        matches!(err, DatasetError::OfflineNotCached { .. }),
        "{err}"
    );
    let msg = one_line(&err);
    assert!(
        msg.contains("org/other") && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );

    // unreachable hub: the cache still serves, others get one clear line
    let dead = config(tmp.path(), &dead_endpoint());
    assert_eq!(load_dataset_with(&s, &dead).unwrap(), got);
    let err = load_dataset_with(&other, &dead).unwrap_err();
    assert!(matches!(err, DatasetError::HubUnreachable { .. }), "{err}");
    assert!(one_line(&err).contains("HF_ENDPOINT"));
}

#[test]
fn hub_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = serve(BTreeMap::from([("org/prompts".to_string(), repo())]));
    let cfg = config(tmp.path(), &hub.endpoint);

    // no files for the split: the repo's files are listed
    let err = load_dataset_with(&hub_spec("validation", None), &cfg).unwrap_err();
    assert!(matches!(err, DatasetError::NoSplitFiles { .. }), "{err}");
    let msg = one_line(&err);
    assert!(
        msg.contains("\"validation\"")
            && msg.contains("data/train-00000-of-00002.parquet")
            && msg.contains("fr/train.jsonl")
            && msg.contains("splits found: [test, train]"),
        "{msg}"
    );
    let err = load_dataset_with(&hub_spec("train", Some("de")), &cfg).unwrap_err();
    assert!(one_line(&err).contains("in config \"de\""), "{err}");

    // unknown repo: the status and the fix
    let mut missing = hub_spec("train", None);
    missing.name = "org/missing".into();
    let err = load_dataset_with(&missing, &cfg).unwrap_err();
    assert!(
        matches!(err, DatasetError::HubStatus { status: 404, .. }),
        "{err}"
    );
    assert!(one_line(&err).contains("org/missing"));

    // a field the repo's files lack
    let mut field = hub_spec("train", Some("fr"));
    field.input_field = "prompt".into();
    let err = load_dataset_with(&field, &cfg).unwrap_err();
    assert!(one_line(&err).contains("[id, reference, text]"), "{err}");
}

/// `load_dataset` reads the hub settings from the environment: run in a child process (the
/// environment is process-wide) with `HF_ENDPOINT` and `HF_HUB_CACHE` set.
#[test]
fn load_dataset_reads_hf_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = serve(BTreeMap::from([("org/prompts".to_string(), repo())]));
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_child", "--ignored", "--nocapture"])
        .env("HF_ENDPOINT", &hub.endpoint)
        .env("HF_HUB_CACHE", tmp.path())
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
    assert!(tmp.path().join("datasets--org--prompts").is_dir());
}

/// The child of [`load_dataset_reads_hf_environment`].
#[test]
#[ignore = "run by load_dataset_reads_hf_environment with HF_ENDPOINT set"]
fn env_child() {
    let rows = load_dataset(&hub_spec("test", None)).expect("load from HF_ENDPOINT");
    assert_eq!(rows.len(), 10);
}
