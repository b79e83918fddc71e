//! `rinseq run EXP.toml --slurm --wait` on a real one-node Slurm cluster started by the test
//! (Debian's `slurm-wlm` and `munge`, every file in a temporary folder, non-default ports):
//! three array tasks and a merge job, whose results equal a local `rinseq run`'s.
//!
//! Needs root (slurmd) and the Slurm and munge binaries; without them the test prints why and
//! passes, except under CI (`CI` set), where it fails. Every wait is bounded (5 minutes in all);
//! a failure shows the tails of the daemons' and jobs' logs; the daemons are stopped on every
//! path (a Drop guard).

mod plugin_support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plugin_support::build::{root, workspace_plugin};
use rinseq::output::FeatureAttributionOutput;

/// The whole test's time budget: cluster start, both runs, comparison.
const BUDGET: Duration = Duration::from_secs(300);

const PROGRAMS: &[&str] = &[
    "slurmctld",
    "slurmd",
    "munged",
    "mungekey",
    "sbatch",
    "squeue",
    "sinfo",
    "scancel",
    "setpriv",
];

/// `program` on `PATH` or in the sbin folders (not on a normal user's `PATH`).
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Why the cluster cannot start here, if it cannot.
fn missing() -> Option<String> {
    let absent: Vec<&str> = PROGRAMS
        .iter()
        .copied()
        .filter(|p| find(p).is_none())
        .collect();
    if !absent.is_empty() {
        return Some(format!(
            "missing {} (apt-get install -y slurm-wlm munge)",
            absent.join(", ")
        ));
    }
    let uid = command_output(Command::new("id").arg("-u"));
    if uid.trim() != "0" {
        return Some("slurmd needs root".to_string());
    }
    None
}

fn command_output(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A free TCP port on this machine (released at once; a race is unlikely in a test).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The running daemons; dropping it cancels the cluster's jobs and stops them.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    daemons: Vec<(&'static str, Child)>,
    /// Folders whose `*.log` files go into failure reports (the jobs' logs).
    job_logs: Vec<PathBuf>,
}

impl Cluster {
    /// munged (as the munge user), slurmctld and slurmd, all in `dir`; returns once the node is
    /// idle.
    fn start(dir: &Path, deadline: Instant) -> Self {
        use std::os::unix::fs::{chown, PermissionsExt};
        // munged refuses a socket folder others cannot enter, and a key others can read.
        std::fs::create_dir_all(dir).unwrap();
        for d in dir
            .ancestors()
            .take_while(|d| d.starts_with(std::env::temp_dir()))
        {
            if d != std::env::temp_dir() {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let munge = dir.join("munge");
        std::fs::create_dir_all(&munge).unwrap();
        let id = |flag: &str| -> u32 {
            command_output(Command::new("id").args([flag, "munge"]))
                .trim()
                .parse()
                .expect("a munge user (the munge package creates it)")
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let key = munge.join("munge.key");
        let status = Command::new(find("mungekey").unwrap())
            .args(["-c", "-k"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(status.success(), "mungekey -c failed");
        chown(&munge, Some(uid), Some(gid)).unwrap();
        chown(&key, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
        std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = munge.join("munge.socket");

        let host = command_output(Command::new("hostname").arg("-s"))
            .trim()
            .to_string();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let d = dir.display();
        let ctld = free_port();
        let slurmd = std::iter::repeat_with(free_port)
            .find(|p| *p != ctld)
            .unwrap();
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=rinseqtest
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
SlurmUser=root
SlurmctldPort={ctld}
SlurmdPort={slurmd}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES State=UP
",
                socket = socket.display(),
            ),
        )
        .unwrap();

        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: conf.clone(),
            daemons: Vec::new(),
            job_logs: Vec::new(),
        };
        let spawn = |cluster: &mut Cluster, name: &'static str, cmd: &mut Command| {
            let out = std::fs::File::create(cluster.dir.join(format!("{name}.out"))).unwrap();
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
            cluster.daemons.push((name, child));
        };
        // setpriv execs munged, so the child is munged itself (killable by its pid).
        spawn(
            &mut cluster,
            "munged",
            Command::new(find("setpriv").unwrap())
                .args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                    "--clear-groups",
                ])
                .arg(find("munged").unwrap())
                .arg("-F")
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--log-file={}", munge.join("munged.log").display()))
                .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
                .arg(format!(
                    "--seed-file={}",
                    munge.join("munged.seed").display()
                )),
        );
        cluster.wait_for("munged's socket", deadline, || socket.exists());
        spawn(
            &mut cluster,
            "slurmctld",
            Command::new(find("slurmctld").unwrap())
                .args(["-D", "-f"])
                .arg(&conf),
        );
        spawn(
            &mut cluster,
            "slurmd",
            Command::new(find("slurmd").unwrap())
                .args(["-D", "-N", &host, "-f"])
                .arg(&conf),
        );
        let conf2 = conf.clone();
        cluster.wait_for("an idle node (sinfo)", deadline, || {
            let out = command_output(
                Command::new(find("sinfo").unwrap())
                    .args(["-h", "-o", "%T"])
                    .env("SLURM_CONF", &conf2),
            );
            out.trim() == "idle"
        });
        cluster
    }

    /// Polls `ready` every 200 ms; past the deadline, or when a daemon died, fails with the logs.
    fn wait_for(&mut self, what: &str, deadline: Instant, mut ready: impl FnMut() -> bool) {
        loop {
            if ready() {
                return;
            }
            let died = self
                .daemons
                .iter_mut()
                .find_map(|(name, child)| Some((*name, child.try_wait().ok()??)));
            if let Some((name, status)) = died {
                panic!(
                    "{name} exited ({status}) while waiting for {what}\n{}",
                    self.logs_of_daemons()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs_of_daemons(&self) -> String {
        let mut s = String::new();
        for f in [
            "munged.out",
            "munge/munged.log",
            "slurmctld.out",
            "slurmctld.log",
            "slurmd.out",
            "slurmd.log",
        ] {
            s.push_str(&format!("--- {f}\n{}\n", tail(&self.dir.join(f), 25)));
        }
        s
    }

    /// The tails of every daemon's and job's log.
    fn logs(&self) -> String {
        let mut s = self.logs_of_daemons();
        for dir in &self.job_logs {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            files.sort();
            for f in files {
                s.push_str(&format!("--- {}\n{}\n", f.display(), tail(&f, 25)));
            }
        }
        s
    }

    /// A client command pointed at this cluster.
    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(find(program).unwrap_or_else(|| PathBuf::from(program)));
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Jobs first (their slurmstepd and rinseq processes), then the daemons, newest first.
        let _ = self
            .client("scancel")
            .args(["--user=root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        while let Some((_, mut child)) = self.daemons.pop() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let stop = Instant::now() + Duration::from_secs(10);
            while Instant::now() < stop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The experiment: two attributions over five prompts of the GPT-2 fixture, three shards.
fn experiment(out_dir: &str) -> String {
    format!(
        r#"name = "slurm-test"
out_dir = "{out_dir}"
[model]
id = "{model}"
[dataset]
name = "json"
files = ["data.jsonl"]
input_text_field = "text"
[generation]
max_new_tokens = 3
[[attribution]]
name = "sal"
method = "saliency"
step_scores = ["probability"]
[[attribution]]
method = "input_x_gradient"
attributed_fn = "logit"
[slurm]
array = 3
sbatch_args = ["--time=00:10:00"]
"#,
        model = root().join("tests/fixtures/models/gpt2").display()
    )
}

/// `rinseq run ARGS` in `cwd` against `cluster`, killed at the deadline; its output (stdout
/// and stderr), after asserting that it succeeded (or failed, when `succeed` is false).
fn run_bounded(
    cluster: &Cluster,
    cwd: &Path,
    label: &str,
    args: &[&str],
    succeed: bool,
    deadline: Instant,
) -> String {
    let log = cwd.join(format!("rinseq-run-{label}.out"));
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rinseq"))
        .arg("--registry")
        .arg(root().join("registry.toml"))
        .arg("run")
        .args(args)
        .current_dir(cwd)
        .env("SLURM_CONF", &cluster.conf)
        .env_remove("RINSEQ_PLUGIN_PATH")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "rinseq run {args:?} did not finish in time\n{}\n--- rinseq run\n{}",
                cluster.logs(),
                tail(&log, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        status.success(),
        succeed,
        "rinseq run {args:?} ended {status}:\n{text}\n{}",
        cluster.logs()
    );
    text
}

#[test]
fn slurm_run_equals_a_local_run() {
    if let Some(why) = missing() {
        if std::env::var_os("CI").is_some() {
            panic!("CI needs a Slurm cluster for this test: {why}");
        }
        eprintln!("skipping the Slurm cluster test: {why}");
        return;
    }
    let started = Instant::now();
    let deadline = started + BUDGET;
    workspace_plugin("rinseq_gradient_methods");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let lines: Vec<String> = [
        "The capital of France is",
        "Hello world",
        "One two three",
        "A cat sat on the",
        "Rust is",
    ]
    .iter()
    .map(|t| serde_json::json!({ "text": t }).to_string())
    .collect();
    std::fs::write(work.join("data.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(work.join("slurm.toml"), experiment("out-slurm")).unwrap();
    std::fs::write(work.join("local.toml"), experiment("out-local")).unwrap();

    let mut cluster = Cluster::start(&tmp.path().join("cluster"), deadline);
    cluster.job_logs.push(work.join("out-slurm/slurm"));
    eprintln!("cluster up in {:.1} s", started.elapsed().as_secs_f64());

    let t = Instant::now();
    let text = run_bounded(
        &cluster,
        &work,
        "slurm",
        &["slurm.toml", "--slurm", "--wait"],
        true,
        deadline,
    );
    eprintln!(
        "rinseq run --slurm --wait: {:.1} s\n{text}",
        t.elapsed().as_secs_f64()
    );
    assert!(text.contains("submitted job array"), "{text}");
    assert!(text.contains("completed"), "{text}");
    // Three array tasks ran: one log each.
    let logs: Vec<String> = std::fs::read_dir(work.join("out-slurm/slurm"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("attribute-") && n.ends_with(".log"))
        .collect();
    assert_eq!(logs.len(), 3, "{logs:?}");

    let t = Instant::now();
    run_bounded(&cluster, &work, "local", &["local.toml"], true, deadline);
    eprintln!("rinseq run (local): {:.1} s", t.elapsed().as_secs_f64());

    for name in ["sal", "input_x_gradient"] {
        let load = |dir: &str| {
            FeatureAttributionOutput::load(work.join(dir).join(format!("{name}.json")))
                .unwrap_or_else(|e| panic!("{dir}/{name}.json: {e}\n{}", cluster.logs()))
        };
        let (slurm, local) = (load("out-slurm"), load("out-local"));
        assert_eq!(slurm.len(), 5, "{name}");
        for (i, (a, b)) in slurm
            .sequence_attributions
            .iter()
            .zip(&local.sequence_attributions)
            .enumerate()
        {
            assert_eq!(a.source, b.source, "{name}: source tokens of example {i}");
            assert_eq!(a.target, b.target, "{name}: target tokens of example {i}");
            assert!(a.allclose(b, 1e-5), "{name}: scores of example {i} differ");
        }
        // `info` equal but for timings.
        let strip = |o: &FeatureAttributionOutput| {
            let mut info = o.info.clone();
            info.retain(|k, _| !k.contains("time"));
            info
        };
        assert_eq!(strip(&slurm), strip(&local), "{name}: info");
    }

    // A shard that fails (a model folder without weights: only the jobs find out) leaves the
    // merge job pending forever; --wait cancels it and names the shard's log.
    let broken = work.join("broken-model");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("config.json"), "{}").unwrap();
    let model = root()
        .join("tests/fixtures/models/gpt2")
        .display()
        .to_string();
    let text = experiment("out-broken").replace(&model, "broken-model");
    std::fs::write(work.join("broken.toml"), text).unwrap();
    cluster.job_logs.push(work.join("out-broken/slurm"));
    let t = Instant::now();
    let text = run_bounded(
        &cluster,
        &work,
        "broken",
        &["broken.toml", "--slurm", "--wait"],
        false,
        deadline,
    );
    eprintln!(
        "rinseq run --slurm --wait, failing shards: {:.1} s\n{text}",
        t.elapsed().as_secs_f64()
    );
    let err = text.lines().last().unwrap_or_default();
    assert!(err.starts_with("error: shard "), "{text}");
    assert!(err.contains("ended FAILED: see "), "{text}");
    assert!(err.contains("out-broken/slurm/attribute-"), "{text}");
    assert!(err.contains("cancelled"), "{text}");
    let merge = text
        .split("merge job ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let queue = command_output(
        cluster
            .client("squeue")
            .args(["-h", "-j", &merge, "-o", "%T"]),
    );
    assert!(
        !queue.contains("PENDING"),
        "merge job {merge} left pending: {queue}"
    );

    eprintln!(
        "slurm cluster test passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(cluster);
}
