//! deploy/slurm/, run for real: a one-node Slurm cluster (munged, slurmctld and slurmd as root,
//! configuration, keys and state in a temporary directory, two fake GPUs). Phase 0:
//! coordinator.sbatch, as a job, serves at the URL it publishes and stops cleanly on scancel.
//! Phase 1: the workers.sbatch job array finishes a small sweep on a `modsync coordinator` on
//! loopback. Phase 2: one array task is `scancel`led in the middle of a job; its worker
//! checkpoints and releases the job (no attempt counted), the other task resumes it from that
//! checkpoint, and the job ends with exactly one result.
//!
//! Needs Linux, root and the Debian packages `slurmctld slurmd slurm-client munge` (.ci/run
//! installs them). Without them the test prints why and passes without running;
//! `MODSYNC_REQUIRE_SLURM=1` turns that into a failure (set by .ci/run once it has installed
//! them), and `MODSYNC_SKIP_SLURM=1` skips on purpose.

#![cfg(unix)]

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Coordinator, bin, serial, tiny_sweep, wait_until, write};

/// Leases long enough that a job is only ever re-leased early because its worker released it:
/// a worker killed without releasing would leave its lease to expire, which the attempt count
/// would show.
const LEASES: &[&str] = &[
    "--lease-ms",
    "20000",
    "--heartbeat-ms",
    "1000",
    "--reap-every-ms",
    "500",
];

#[test]
fn slurm_job_array_runs_a_sweep_and_a_cancelled_task_releases_its_job() {
    if std::env::var_os("MODSYNC_SKIP_SLURM").is_some_and(|v| v == "1") {
        common::skip_unless_required("MODSYNC_REQUIRE_SLURM", "MODSYNC_SKIP_SLURM=1");
        return;
    }
    let programs = match prerequisites() {
        Ok(p) => p,
        Err(why) => {
            common::skip_unless_required("MODSYNC_REQUIRE_SLURM", &why);
            return;
        }
    };
    let _serial = serial();
    let dir = tempfile::Builder::new()
        .prefix("modsync-slurm-")
        .tempdir()
        .unwrap();
    let token = "slurm-test-token";
    // Declared before the cluster, so it is dropped after it: stopping workers can still release.
    let coord = Coordinator::start(&dir.path().join("sweeps.db"), Some(token), LEASES);
    let token_file = dir.path().join("token");
    fs::write(&token_file, token).unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    let mut cluster = Cluster::start(dir.path(), programs);
    let slurm_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/slurm");

    // ---- Phase 0: coordinator.sbatch as a job publishes a URL where it serves, with the token,
    // and stops cleanly on scancel. (The sweeps below use the loopback coordinator above, whose
    // store the test can inspect directly.)
    let home = dir.path().join("coordinator-home");
    let port = free_port().to_string();
    let coordinator_job = cluster.sbatch(
        &[&slurm_dir.join("coordinator.sbatch").display().to_string()],
        &[
            ("MODSYNC_TOKEN_FILE", token_file.to_str().unwrap()),
            ("MODSYNC_HOME", home.to_str().unwrap()),
            ("MODSYNC_PORT", &port),
            ("MODSYNC_BIN", bin()),
        ],
    );
    let url_file = home.join("coordinator.url");
    wait_until(Duration::from_secs(60), "the coordinator job's URL", || {
        cluster.assert_array_alive(&coordinator_job);
        url_file.exists()
    });
    let published = fs::read_to_string(&url_file).unwrap().trim().to_string();
    assert!(published.ends_with(&format!(":{port}")), "{published}");
    wait_until(
        Duration::from_secs(60),
        "the coordinator job to answer",
        || {
            cluster.assert_array_alive(&coordinator_job);
            common::run_cli(
                &["status", "--coordinator", &published, "--token", token],
                Duration::from_secs(30),
            )
            .0
        },
    );
    let (ok, _, err) = common::run_cli(
        &["status", "--coordinator", &published],
        Duration::from_secs(30),
    );
    assert!(
        !ok && err.contains("token"),
        "served without the token: {err}"
    );
    cluster.slurm("scancel", &[&coordinator_job]);
    wait_until(
        Duration::from_secs(60),
        "the coordinator job to end as cancelled",
        || cluster.task_state(&coordinator_job) == "CANCELLED",
    );
    let log = cluster.job_log(&coordinator_job);
    assert!(
        log.contains("coordinator stopped"),
        "the coordinator did not drain and stop on SIGTERM:\n{log}"
    );
    assert!(home.join("sweeps.db").exists());

    // ---- Phase 1: two array tasks, one fake GPU each, finish a 4-job sweep.
    let sweep1 = write(
        dir.path(),
        "slurm1.toml",
        &tiny_sweep("slurm1", &[8, 12], &[0, 1], 300, ""),
    );
    coord.cli(&["submit", &sweep1]);
    let script = slurm_dir.join("workers.sbatch");
    let array = cluster.sbatch(
        &["--array=0-1", &script.display().to_string()],
        &[
            ("MODSYNC_COORDINATOR", coord.url.as_str()),
            ("MODSYNC_TOKEN_FILE", token_file.to_str().unwrap()),
            ("MODSYNC_DEVICE", "cpu"),
            ("MODSYNC_BIN", bin()),
        ],
    );
    let worker_prefix = |task: u32| format!("{array}_{task}.r0@");
    wait_all_done(&coord, &cluster, &array, "slurm1", 4);
    assert_eq!(
        coord.sql_int(
            "SELECT COUNT(*) FROM results r JOIN jobs j ON j.id = r.job_id \
             WHERE j.sweep_id = 'slurm1'"
        ),
        4
    );
    // Both array tasks ran a worker, named by the script after the Slurm job and task, on the
    // device it was told to use.
    let workers = coord.sql("SELECT id, device FROM workers ORDER BY id");
    assert_eq!(workers.len(), 2, "{workers:?}");
    for (task, w) in workers.iter().enumerate() {
        assert!(w[0].starts_with(&worker_prefix(task as u32)), "{workers:?}");
        assert_eq!(w[1], "cpu", "{workers:?}");
    }
    // Slurm gave each task its own GPU; the script saw it (and MODSYNC_DEVICE overrode it).
    let mut gpus: Vec<String> = (0..2)
        .map(|task| {
            let log = cluster.job_log(&format!("{array}_{task}"));
            let seen = log
                .lines()
                .find_map(|l| l.split("(CUDA_VISIBLE_DEVICES=").nth(1))
                .unwrap_or_else(|| panic!("no device line in task {task}'s log:\n{log}"));
            assert!(log.contains("device cpu"), "{log}");
            seen.split(')').next().unwrap().to_string()
        })
        .collect();
    gpus.sort();
    assert_eq!(gpus, ["0", "1"], "one GPU per array task");

    // ---- Phase 2: scancel one task in the middle of its job.
    let sweep2 = write(
        dir.path(),
        "slurm2.toml",
        &tiny_sweep("slurm2", &[8, 12], &[0], 8000, ""),
    );
    coord.cli(&["submit", &sweep2]);
    let victim_worker = worker_prefix(1);
    let running = |coord: &Coordinator| {
        coord.sql(
            "SELECT j.id, j.lease_owner, j.token, COALESCE(c.iter, 0) FROM jobs j \
             LEFT JOIN checkpoints c ON c.job_id = j.id \
             WHERE j.sweep_id = 'slurm2' AND j.state = 'running' ORDER BY j.id",
        )
    };
    // Each task holds one job and has checkpointed past the start.
    wait_until(
        Duration::from_secs(120),
        "both tasks training a slurm2 job",
        || {
            cluster.assert_array_alive(&array);
            let rows = running(&coord);
            rows.len() == 2
                && rows.iter().any(|r| r[1].starts_with(&victim_worker))
                && rows.iter().all(|r| r[3].parse::<i64>().unwrap() >= 100)
        },
    );
    let victim = running(&coord)
        .into_iter()
        .find(|r| r[1].starts_with(&victim_worker))
        .unwrap();
    let (job, first_token) = (victim[0].clone(), victim[2].parse::<i64>().unwrap());
    cluster.slurm("scancel", &[&format!("{array}_1")]);

    // The task ends (the worker exits after handing the job back) and the job is queued again
    // or already re-leased by the other task — not left running on a dead lease.
    wait_until(
        Duration::from_secs(90),
        "task 1 to end as cancelled",
        || cluster.task_state(&format!("{array}_1")) == "CANCELLED",
    );
    let victim_log = cluster.job_log(&format!("{array}_1"));
    assert!(
        victim_log.contains("shutting down") && victim_log.contains("released"),
        "the worker did not stop cleanly:\n{victim_log}"
    );
    let released_at = coord.sql_int(&format!(
        "SELECT iter FROM checkpoints WHERE job_id = {job}"
    ));
    assert!(
        released_at > 0 && released_at < 8000,
        "checkpoint at {released_at}"
    );
    assert_ne!(
        coord.sql(&format!(
            "SELECT lease_owner, state FROM jobs WHERE id = {job}"
        ))[0],
        [victim[1].clone(), "running".to_string()],
        "job {job} is still leased to the cancelled worker"
    );

    wait_all_done(&coord, &cluster, &array, "slurm2", 2);
    // Exactly one result, from the surviving task, after one counted attempt: the release
    // handed the attempt back, and the new lease carries a new fencing token.
    assert_eq!(
        coord.sql_int(&format!(
            "SELECT COUNT(*) FROM results WHERE job_id = {job}"
        )),
        1
    );
    assert_eq!(
        coord.sql_int(
            "SELECT COUNT(*) FROM results r JOIN jobs j ON j.id = r.job_id \
             WHERE j.sweep_id = 'slurm2'"
        ),
        2
    );
    let result = &coord.sql(&format!(
        "SELECT r.worker_id, r.iters_done, j.attempts, j.token FROM results r \
         JOIN jobs j ON j.id = r.job_id WHERE j.id = {job}"
    ))[0];
    assert!(result[0].starts_with(&worker_prefix(0)), "{result:?}");
    assert_eq!(result[1], "8000", "{result:?}");
    assert_eq!(
        result[2], "1",
        "the release must not count an attempt: {result:?}"
    );
    let second_token: i64 = result[3].parse().unwrap();
    assert_eq!(second_token, first_token + 1, "{result:?}");
    // The second attempt resumed from the released checkpoint instead of iteration 0.
    let resumed_from = coord.sql_int(&format!(
        "SELECT MIN(iter) FROM metrics WHERE job_id = {job} AND token = {second_token}"
    ));
    assert!(
        resumed_from >= released_at,
        "second attempt started at {resumed_from}, the checkpoint was at {released_at}"
    );

    // ---- Done. SIGTERM to the batch shell only — what `--signal=B:TERM@120` sends before the
    // time limit — reaches the worker because the script exec'd it: it stops by itself, and the
    // task completes instead of being killed.
    let survivor = format!("{array}_0");
    cluster.slurm("scancel", &["--batch", "--signal=TERM", &survivor]);
    wait_until(Duration::from_secs(90), "the last task to end", || {
        !matches!(
            cluster.task_state(&survivor).as_str(),
            "RUNNING" | "COMPLETING"
        )
    });
    let log = cluster.job_log(&survivor);
    assert_eq!(
        cluster.task_state(&survivor),
        "COMPLETED",
        "the worker did not exit cleanly on the batch shell's SIGTERM:\n{log}"
    );
    assert!(log.contains("shutting down"), "{log}");
    cluster.check_alive();
}

/// Waits until every job of `sweep` is done, failing early if a job failed or the array's tasks
/// all ended (a worker that cannot start would otherwise only show as a timeout).
fn wait_all_done(coord: &Coordinator, cluster: &Cluster, array: &str, sweep: &str, total: i64) {
    wait_until(
        Duration::from_secs(300),
        &format!("all {total} jobs of {sweep} done"),
        || {
            cluster.assert_array_alive(array);
            let s = coord.states(sweep);
            assert_eq!(s.get("failed"), None, "failed jobs: {s:?}");
            s.get("done") == Some(&total)
        },
    );
}

/// The absolute paths of the programs the test runs, found by `prerequisites`.
struct Programs {
    munged: PathBuf,
    slurmctld: PathBuf,
    slurmd: PathBuf,
    /// The directory of sbatch, scancel, squeue, sinfo, scontrol.
    client_dir: PathBuf,
}

/// Why the test cannot run here, or the programs it needs.
fn prerequisites() -> Result<Programs, String> {
    if !cfg!(target_os = "linux") {
        return Err("Slurm daemons need Linux".into());
    }
    let find = |name: &str| -> Result<PathBuf, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "{name} is not installed (apt-get install slurmctld slurmd slurm-client munge)"
                )
            })
    };
    let programs = Programs {
        munged: find("munged")?,
        slurmctld: find("slurmctld")?,
        slurmd: find("slurmd")?,
        client_dir: find("sbatch")?.parent().unwrap().to_path_buf(),
    };
    for client in ["scancel", "squeue", "sinfo"] {
        find(client)?;
    }
    find("mknod")?;
    // slurmd must run as root to start jobs; the effective uid is the second field.
    let status = fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Err(format!(
            "slurmd and munged need root (effective uid {euid})"
        ));
    }
    Ok(programs)
}

/// A daemon started in the foreground, its output in a log file; stopped (SIGTERM, then
/// SIGKILL) when dropped.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &'static str, program: &Path, args: &[&str], dir: &Path) -> Daemon {
        let log = dir.join(format!("{name}.out"));
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon { name, child, log }
    }

    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-node Slurm cluster private to this test: its own munge socket and key, ports, state and
/// spool directories, all under `dir`. Dropping it cancels every job it ran, waits for them to
/// end, then stops the daemons — also when the test panics.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    programs: Programs,
    node: String,
    /// munged, slurmctld, slurmd, in start order (stopped in reverse).
    daemons: Vec<Daemon>,
    jobs: Vec<String>,
}

impl Cluster {
    fn start(dir: &Path, programs: Programs) -> Cluster {
        let munge = dir.join("munge");
        for d in ["munge", "state", "spool", "gpu"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        fs::set_permissions(&munge, fs::Permissions::from_mode(0o700)).unwrap();
        // A fresh munge key: 1 KiB of randomness, readable by its owner only.
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        rand::fill(&mut bytes[..]);
        let mut f = fs::File::create(&key).unwrap();
        f.write_all(&bytes).unwrap();
        drop(f);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let socket = munge.join("munge.socket");

        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
            programs,
            node: String::new(),
            daemons: Vec::new(),
            jobs: Vec::new(),
        };
        let arg = |flag: &str, p: &Path| format!("{flag}={}", p.display());
        let munged_args = [
            "--foreground".to_string(),
            "--force".to_string(),
            arg("--socket", &socket),
            arg("--key-file", &key),
            arg("--log-file", &munge.join("munged.log")),
            arg("--pid-file", &munge.join("munged.pid")),
            arg("--seed-file", &munge.join("munged.seed")),
        ];
        let munged_args: Vec<&str> = munged_args.iter().map(String::as_str).collect();
        let munged = cluster.programs.munged.clone();
        cluster
            .daemons
            .push(Daemon::spawn("munged", &munged, &munged_args, dir));
        cluster.wait_for(Duration::from_secs(30), "the munge socket", |_| {
            socket.exists()
        });

        // The node is this machine under the name slurmd will register with.
        let probe = Command::new(&cluster.programs.slurmd)
            .arg("-C")
            .output()
            .expect("slurmd -C");
        let probe = String::from_utf8_lossy(&probe.stdout).to_string();
        cluster.node = probe
            .split_whitespace()
            .find_map(|w| w.strip_prefix("NodeName="))
            .unwrap_or_else(|| panic!("slurmd -C printed no NodeName: {probe:?}"))
            .to_string();

        // Two fake GPUs: character devices (the null device's numbers), so that Slurm's gres/gpu
        // plugin accepts them and sets CUDA_VISIBLE_DEVICES per task.
        for i in 0..2 {
            let dev = dir.join(format!("gpu/nvidia{i}"));
            let ok = Command::new("mknod")
                .args([dev.to_str().unwrap(), "c", "1", "3"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "mknod {} failed", dev.display());
        }
        fs::write(
            dir.join("gres.conf"),
            format!("Name=gpu File={}/gpu/nvidia[0-1]\n", dir.display()),
        )
        .unwrap();
        let d = dir.display();
        let ports = loop {
            let (a, b) = (free_port(), free_port());
            if a != b {
                break (a, b);
            }
        };
        // Four CPUs declared (config_overrides: whatever the machine has) so that both array
        // tasks, 2 CPUs each as the script asks, run at once.
        let conf = format!(
            "ClusterName=modsynctest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
KillWait=30
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs=4 Sockets=1 CoresPerSocket=4 ThreadsPerCore=1 Gres=gpu:2 State=UNKNOWN
PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP
",
            node = cluster.node,
            ctld_port = ports.0,
            slurmd_port = ports.1,
            socket = socket.display(),
        );
        fs::write(&cluster.conf, conf).unwrap();
        let conf = cluster.conf.to_str().unwrap().to_string();
        let (ctld, slurmd) = (
            cluster.programs.slurmctld.clone(),
            cluster.programs.slurmd.clone(),
        );
        cluster
            .daemons
            .push(Daemon::spawn("slurmctld", &ctld, &["-D", "-f", &conf], dir));
        cluster
            .daemons
            .push(Daemon::spawn("slurmd", &slurmd, &["-D", "-f", &conf], dir));
        cluster.wait_for(Duration::from_secs(90), "the node to be idle", |c| {
            let (ok, out, _) = c.try_slurm("sinfo", &["-h", "-N", "-o", "%t"]);
            ok && out.trim() == "idle"
        });
        cluster
    }

    /// Polls `cond`, failing early (with the daemons' logs) if a daemon died.
    fn wait_for(&mut self, timeout: Duration, what: &str, mut cond: impl FnMut(&Cluster) -> bool) {
        let start = Instant::now();
        loop {
            self.check_alive();
            if cond(self) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Panics if a daemon has exited.
    fn check_alive(&mut self) {
        for d in &mut self.daemons {
            if let Some(status) = d.child.try_wait().ok().flatten() {
                panic!("{} exited ({status})", d.name);
            }
        }
    }

    /// Runs a Slurm client command against this cluster only (bounded): (success, stdout,
    /// stderr).
    fn try_slurm(&self, prog: &str, args: &[&str]) -> (bool, String, String) {
        self.try_slurm_env(prog, args, &[])
    }

    fn try_slurm_env(
        &self,
        prog: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> (bool, String, String) {
        let mut cmd = Command::new(self.programs.client_dir.join(prog));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .current_dir(&self.dir);
        // Nothing from an enclosing Slurm job (or the developer's shell) may leak into ours.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("SLURM_") || k.starts_with("SBATCH_") || k.starts_with("MODSYNC_") {
                cmd.env_remove(&*k);
            }
        }
        cmd.env("SLURM_CONF", &self.conf);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(out)) => (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            ),
            Ok(Err(e)) => panic!("{prog} {args:?}: {e}"),
            Err(_) => panic!("{prog} {args:?} did not finish within 60 s"),
        }
    }

    /// Like `try_slurm`, but panics unless it succeeds; returns stdout.
    fn slurm(&self, prog: &str, args: &[&str]) -> String {
        let (ok, out, err) = self.try_slurm(prog, args);
        assert!(ok, "{prog} {args:?} failed:\n{err}");
        out
    }

    /// `sbatch --parsable ARGS` with `envs` exported into the job; returns the job id.
    /// Output goes to `job-JOB_TASK.out` (arrays) or `job-JOB.out` in the cluster's directory.
    fn sbatch(&mut self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let name = if args.iter().any(|a| a.starts_with("--array")) {
            "job-%A_%a.out"
        } else {
            "job-%j.out"
        };
        let output = format!("--output={}/{name}", self.dir.display());
        let mut all = vec!["--parsable", &output];
        all.extend(args);
        let mut envs = envs.to_vec();
        envs.extend([("NO_COLOR", "1"), ("RUST_LOG", "info")]);
        let (ok, out, err) = self.try_slurm_env("sbatch", &all, &envs);
        assert!(ok, "sbatch {all:?} failed:\n{err}");
        let id = out.trim().split(';').next().unwrap().to_string();
        assert!(id.parse::<u64>().is_ok(), "sbatch printed {out:?}");
        self.jobs.push(id.clone());
        id
    }

    /// The Slurm state of a job or array task (`RUNNING`, `CANCELLED`, …; empty once forgotten).
    fn task_state(&self, task: &str) -> String {
        let (_, out, _) = self.try_slurm("squeue", &["-h", "-t", "all", "-o", "%T", "-j", task]);
        out.trim().to_string()
    }

    /// Panics (the tasks' logs are printed by `drop`) if no task of the job (array) is left.
    fn assert_array_alive(&self, array: &str) {
        let (ok, out, err) = self.try_slurm("squeue", &["-h", "-j", array, "-o", "%i %T"]);
        assert!(
            ok && !out.trim().is_empty(),
            "every task of job array {array} has ended {err}"
        );
    }

    /// The output file of a job (`JOB`) or array task (`JOB_TASK`).
    fn job_log(&self, task: &str) -> String {
        fs::read_to_string(self.dir.join(format!("job-{task}.out"))).unwrap_or_default()
    }

    /// Processes started for this cluster's jobs (their environment names its configuration).
    fn job_processes(&self) -> Vec<u32> {
        let marker = format!("SLURM_CONF={}", self.conf.display());
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != std::process::id())
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = thread::panicking();
        // Jobs first, while slurmd can still deliver their signals; then the daemons.
        if !self.jobs.is_empty()
            && self
                .daemons
                .iter_mut()
                .all(|d| d.child.try_wait().ok().flatten().is_none())
        {
            let jobs: Vec<&str> = self.jobs.iter().map(String::as_str).collect();
            let _ = self.try_slurm("scancel", &jobs);
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let (ok, out, _) = self.try_slurm("squeue", &["-h"]);
                if ok && out.trim().is_empty() {
                    break;
                }
                thread::sleep(Duration::from_millis(300));
            }
        }
        // Anything of ours that survived (a job slurmd could not stop) is killed by its pid.
        for pid in self.job_processes() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        for d in self.daemons.iter_mut().rev() {
            d.stop();
        }
        if panicking {
            let mut logs: Vec<PathBuf> = self.daemons.iter().map(|d| d.log.clone()).collect();
            logs.extend(
                ["slurmctld.log", "slurmd.log", "munge/munged.log"].map(|f| self.dir.join(f)),
            );
            if let Ok(entries) = fs::read_dir(&self.dir) {
                logs.extend(
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with("job-"))
                        }),
                );
            }
            for log in logs {
                let text = fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                eprintln!("----- {} -----", log.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// A TCP port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
