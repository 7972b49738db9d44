//! The deployment files in deploy/ against the program they deploy: every `modsync` command line
//! in them (Kubernetes args, systemd ExecStart, what the Slurm scripts exec) is parsed by the
//! real binary (`modsync ARGS --help`: clap rejects an unknown flag or a bad value before it
//! reaches `--help`), every MODSYNC_* variable they set is one the subcommand reads (its `--help`
//! lists them), and ports, names, Secrets and images agree across files. Also: the coordinator's
//! grpc.health.v1 service, which the Kubernetes probes use, answers without the token.

#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Coordinator, bin, run_cli, run_cli_env};
use serde::Deserialize;
use serde_yaml::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(rel: &str) -> String {
    let p = deploy().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `modsync ARGS --help` succeeds: every flag exists and every value parses.
fn assert_parses(args: &[String], origin: &str) {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.push("--help");
    let (ok, _, err) = run_cli(&all, Duration::from_secs(30));
    assert!(
        ok,
        "{origin}: `modsync {}` is rejected:\n{err}",
        args.join(" ")
    );
}

/// The environment variables a subcommand reads, from the `[env: NAME]` notes of its `--help`.
fn env_vars_read_by(sub: &str) -> BTreeSet<String> {
    let (ok, out, err) = run_cli(&[sub, "--help"], Duration::from_secs(30));
    assert!(ok, "modsync {sub} --help: {err}");
    out.split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The value of `--flag` in an argument list.
fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == name)
        .unwrap_or_else(|| panic!("no {name} in {args:?}"));
    &args[i + 1]
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

// ---------------------------------------------------------------- Kubernetes

/// Every document of a (multi-document) YAML file under deploy/.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn k8s_objects() -> Vec<Value> {
    let kustomization = &yaml_docs("k8s/kustomization.yaml")[0];
    let resources = kustomization["resources"]
        .as_sequence()
        .expect("kustomization resources");
    resources
        .iter()
        .flat_map(|r| yaml_docs(&format!("k8s/{}", r.as_str().unwrap())))
        .collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn u16_of(v: &Value) -> u16 {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or_else(|| panic!("not a port number: {v:?}"))
}

/// The `modsync` command line of a container: its args, after checking the command.
fn container_args(container: &Value) -> Vec<String> {
    let command: Vec<String> = container["command"]
        .as_sequence()
        .expect("container command")
        .iter()
        .map(s)
        .collect();
    assert_eq!(command, ["modsync"], "{container:?}");
    container["args"]
        .as_sequence()
        .expect("container args")
        .iter()
        .map(s)
        .collect()
}

/// (name, value or None for valueFrom) of a container's env.
fn container_env(container: &Value) -> Vec<(String, Option<String>)> {
    container["env"]
        .as_sequence()
        .map(|env| {
            env.iter()
                .map(|e| (s(&e["name"]), e.get("value").map(s)))
                .collect()
        })
        .unwrap_or_default()
}

/// The Secret (name, key) a container's MODSYNC_TOKEN comes from.
fn token_secret(container: &Value) -> (String, String) {
    let env = container["env"].as_sequence().expect("env");
    let token = env
        .iter()
        .find(|e| e["name"] == "MODSYNC_TOKEN")
        .expect("MODSYNC_TOKEN in the env");
    let r = &token["valueFrom"]["secretKeyRef"];
    (s(&r["name"]), s(&r["key"]))
}

fn only_container(workload: &Value) -> &Value {
    let containers = workload["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn assert_env_is_read(container: &Value, sub: &str, origin: &str) {
    let read = env_vars_read_by(sub);
    for (name, _) in container_env(container) {
        if name.starts_with("MODSYNC_") {
            assert!(
                read.contains(&name),
                "{origin}: modsync {sub} does not read {name} (it reads {read:?})"
            );
        }
    }
}

#[test]
fn k8s_coordinator_ports_volume_probes_and_secret_match_the_program() {
    let objects = k8s_objects();
    let sts = object(&objects, "StatefulSet", "modsync-coordinator");
    let svc = object(&objects, "Service", "modsync-coordinator");
    assert_eq!(
        sts["spec"]["replicas"], 1,
        "SQLite has one writer: one coordinator"
    );
    assert_eq!(sts["spec"]["serviceName"], svc["metadata"]["name"]);
    let c = only_container(sts);
    let args = container_args(c);
    assert_eq!(args[0], "coordinator");
    assert_parses(&args, "k8s/coordinator.yaml");
    assert_env_is_read(c, "coordinator", "k8s/coordinator.yaml");

    // One port everywhere: --listen (on every interface), the container, the Service, the probes.
    let listen = flag(&args, "--listen");
    assert!(listen.starts_with("0.0.0.0:"), "listen {listen}");
    let port = port_of(listen);
    let ports = c["ports"].as_sequence().unwrap();
    assert!(
        ports.iter().any(|p| u16_of(&p["containerPort"]) == port),
        "{ports:?}"
    );
    let svc_port = &svc["spec"]["ports"][0];
    assert_eq!(u16_of(&svc_port["port"]), port);
    assert_eq!(u16_of(&svc_port["targetPort"]), port);
    // The dashboard: --http on every interface, its container port, the Service's `http` port.
    let http = port_of(flag(&args, "--http"));
    assert!(flag(&args, "--http").starts_with("0.0.0.0:"));
    assert!(
        ports
            .iter()
            .any(|p| u16_of(&p["containerPort"]) == http && p["name"] == "http"),
        "{ports:?}"
    );
    let svc_http = svc["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .expect("the Service has an http port");
    assert_eq!(u16_of(&svc_http["port"]), http);
    assert_eq!(u16_of(&svc_http["targetPort"]), http);
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            u16_of(&c[probe]["grpc"]["port"]),
            port,
            "{probe} must be a gRPC probe on the listen port"
        );
    }
    // The Service selects the coordinator's pods (and only those: not the workers').
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[k], v, "selector {k:?}");
    }
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/component"],
        "coordinator"
    );

    // The database lives on the claim template's volume.
    let db = Path::new(flag(&args, "--db"));
    let claim = s(&sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]);
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == claim.as_str())
        .unwrap_or_else(|| panic!("no mount of the claim {claim}"));
    assert!(
        db.starts_with(s(&mount["mountPath"])),
        "--db {} is not on the volume at {:?}",
        db.display(),
        mount["mountPath"]
    );

    // The token comes from a Secret whose shape is shown and whose creation is documented.
    let (secret, key) = token_secret(c);
    let example = &yaml_docs("k8s/secret.example.yaml")[0];
    assert_eq!(example["kind"], "Secret");
    assert_eq!(s(&example["metadata"]["name"]), secret);
    let value = s(&example["stringData"][key.as_str()]);
    assert!(
        !value.trim().is_empty(),
        "an empty token stops the coordinator from starting"
    );
    assert!(
        read("README.md").contains(&format!(
            "kubectl create secret generic {secret} --from-literal={key}="
        )),
        "deploy/README.md must show how to create Secret {secret} with key {key}"
    );
}

#[test]
fn k8s_workers_point_at_the_service_and_request_a_gpu() {
    let objects = k8s_objects();
    let svc = object(&objects, "Service", "modsync-coordinator");
    let sts = object(&objects, "StatefulSet", "modsync-coordinator");
    let dep = object(&objects, "Deployment", "modsync-worker");
    let c = only_container(dep);
    let args = container_args(c);
    assert_eq!(args[0], "worker");
    assert_parses(&args, "k8s/workers.yaml");
    assert_env_is_read(c, "worker", "k8s/workers.yaml");
    assert_eq!(flag(&args, "--device"), "cuda:0", "the pod's one GPU");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        1
    );

    let url = container_env(c)
        .into_iter()
        .find(|(n, _)| n == "MODSYNC_COORDINATOR")
        .and_then(|(_, v)| v)
        .expect("MODSYNC_COORDINATOR value");
    let port = u16_of(&svc["spec"]["ports"][0]["port"]);
    assert_eq!(
        url,
        format!("http://{}:{port}", s(&svc["metadata"]["name"])),
        "the workers must reach the coordinator through its Service"
    );
    assert_eq!(
        token_secret(c),
        token_secret(only_container(sts)),
        "workers and coordinator must share the token"
    );
    // SIGTERM → final checkpoint and release: give it time before SIGKILL.
    let grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    assert!(grace >= 30, "terminationGracePeriodSeconds {grace}");
    // No liveness probe, and the file says why.
    assert!(c.get("livenessProbe").is_none());
    assert!(read("k8s/workers.yaml").contains("No liveness probe, on purpose"));
}

#[test]
fn k8s_images_are_the_documented_placeholders() {
    let readme = read("README.md");
    let dockerfile = read("docker/Dockerfile");
    let objects = k8s_objects();
    let workloads = objects
        .iter()
        .filter(|o| o["kind"] == "StatefulSet" || o["kind"] == "Deployment");
    let mut n = 0;
    for w in workloads {
        let image = s(&only_container(w)["image"]);
        assert!(
            readme.contains(&image),
            "deploy/README.md does not name {image}"
        );
        assert!(
            dockerfile.contains(&format!("-t {image} ")),
            "deploy/docker/Dockerfile does not show how to build {image}"
        );
        n += 1;
    }
    assert_eq!(n, 2);
    for target in ["cpu", "gpu"] {
        assert!(
            dockerfile.contains(&format!(" AS {target}\n")),
            "no target {target}"
        );
    }
}

// ---------------------------------------------------------------- systemd

/// The `[Service]` settings of a unit file, in order (`Key`, `Value`), comments dropped.
fn unit_settings(rel: &str) -> Vec<(String, String)> {
    read(rel)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{rel}: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// KEY=VALUE pairs of an environment file (commented-out examples included).
fn env_file_keys(rel: &str) -> Vec<(String, String)> {
    read(rel)
        .lines()
        .map(|l| l.trim().trim_start_matches('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A unit's ExecStart as the argument list systemd would run for instance `0`: specifiers and
/// `${VAR}` references (from Environment= and the state directory) resolved.
fn exec_start(settings: &[(String, String)]) -> Vec<String> {
    let mut vars: Vec<(String, String)> = setting(settings, "Environment")
        .iter()
        .flat_map(|line| line.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(dir) = setting(settings, "StateDirectory").first() {
        vars.push(("STATE_DIRECTORY".into(), format!("/var/lib/{dir}")));
    }
    let exec = setting(settings, "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart");
    let mut line = exec[0].to_string();
    for (k, v) in &vars {
        line = line.replace(&format!("${{{k}}}"), v);
    }
    let line = line
        .replace("%i", "0")
        .replace("%H", "host")
        .replace("%C", "/var/cache");
    assert!(
        !line.contains('$') && !line.contains('%'),
        "unresolved reference in {line}"
    );
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(words[0], "/usr/local/bin/modsync", "{line}");
    words[1..].to_vec()
}

/// The default of `modsync SUB`'s numeric flag `name`, from its `--help`.
fn default_of(sub: &str, name: &str) -> u64 {
    let out = Command::new(bin())
        .args([sub, "--help"])
        .output()
        .expect("modsync --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let after = &help[help
        .find(&format!("{name} <"))
        .unwrap_or_else(|| panic!("no {name} in modsync {sub} --help"))..];
    let default = after
        .split("[default: ")
        .nth(1)
        .and_then(|d| d.split(']').next())
        .unwrap_or_else(|| panic!("no default for {name}"));
    default.parse().unwrap()
}

#[test]
fn systemd_units_run_real_flags_and_stop_gracefully() {
    let coordinator = unit_settings("systemd/modsync-coordinator.service");
    let worker = unit_settings("systemd/modsync-worker@.service");
    let env_file = "/etc/modsync/modsync.env";

    let c_args = exec_start(&coordinator);
    assert_eq!(c_args[0], "coordinator");
    assert_parses(&c_args, "modsync-coordinator.service");
    assert!(
        flag(&c_args, "--db").starts_with("/var/lib/modsync/"),
        "the database belongs in the StateDirectory: {c_args:?}"
    );
    let w_args = exec_start(&worker);
    assert_eq!(w_args[0], "worker");
    assert_parses(&w_args, "modsync-worker@.service");
    assert_eq!(flag(&w_args, "--device"), "cuda:0");
    assert_eq!(
        setting(&worker, "Environment")[0].split_whitespace().next(),
        Some("CUDA_VISIBLE_DEVICES=%i")
    );

    for (name, unit) in [("coordinator", &coordinator), ("worker", &worker)] {
        assert_eq!(setting(unit, "Restart"), ["on-failure"], "{name}");
        assert_eq!(setting(unit, "KillSignal"), ["SIGTERM"], "{name}");
        let stop: u64 = setting(unit, "TimeoutStopSec")[0].parse().unwrap();
        assert!(stop >= 30, "{name}: TimeoutStopSec {stop}");
        assert_eq!(setting(unit, "EnvironmentFile"), [env_file], "{name}");
        assert_eq!(setting(unit, "DynamicUser"), ["yes"], "{name}");
        assert_eq!(setting(unit, "NoNewPrivileges"), ["yes"], "{name}");
        assert_eq!(setting(unit, "ProtectSystem"), ["strict"], "{name}");
    }
    assert_eq!(setting(&coordinator, "StateDirectory"), ["modsync"]);
    // The open-file limit holds both ports' connection caps (as deployed, else their defaults)
    // plus a reserve for the store (issue 26: idle connections exhausted a limit of 1024).
    let nofile: u64 = setting(&coordinator, "LimitNOFILE")
        .first()
        .expect("LimitNOFILE in modsync-coordinator.service")
        .parse()
        .expect("LimitNOFILE is a number");
    let cap = |name: &str| -> u64 {
        c_args
            .iter()
            .position(|a| a == name)
            .map(|i| c_args[i + 1].parse().unwrap())
            .unwrap_or_else(|| default_of("coordinator", name))
    };
    let mut needed = cap("--max-connections") + 64;
    if c_args.iter().any(|a| a == "--http") {
        needed += cap("--http-max-connections");
    }
    assert!(
        nofile >= needed,
        "LimitNOFILE={nofile} is below the connection caps plus 64 ({needed})"
    );

    // Every variable of the example environment file is read by a subcommand or by a unit.
    let read_by_modsync: BTreeSet<String> = env_vars_read_by("worker")
        .into_iter()
        .chain(env_vars_read_by("coordinator"))
        .collect();
    let keys = env_file_keys("systemd/modsync.env.example");
    for (k, _) in &keys {
        let used_by_unit = setting(&worker, "ExecStart")[0].contains(&format!("${{{k}}}"));
        assert!(
            read_by_modsync.contains(k) || used_by_unit || k == "LD_LIBRARY_PATH",
            "modsync.env.example sets {k}, which nothing reads"
        );
    }
    // The workers' URL in the example reaches the coordinator unit's port.
    let url = &keys
        .iter()
        .find(|(k, _)| k == "MODSYNC_COORDINATOR")
        .expect("MODSYNC_COORDINATOR in modsync.env.example")
        .1;
    assert_eq!(port_of(url), port_of(flag(&c_args, "--listen")));
}

/// Runs `systemd-analyze verify` on the units where it is installed (Debian package `systemd`).
/// Without it the test skips, saying so; `MODSYNC_REQUIRE_SYSTEMD_ANALYZE=1` (set by `.ci/run`
/// once it has installed the package) turns a missing tool into a failure.
#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        common::skip_unless_required(
            "MODSYNC_REQUIRE_SYSTEMD_ANALYZE",
            "systemd-analyze is not installed (Debian package `systemd`)",
        );
        return;
    };
    assert!(probe.status.success());
    // verify insists that ExecStart's program exists: point the copies at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for (file, name) in [
        ("modsync-coordinator.service", "modsync-coordinator.service"),
        ("modsync-worker@.service", "modsync-worker@0.service"),
    ] {
        let text = read(&format!("systemd/{file}")).replace("/usr/local/bin/modsync", bin());
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze verify");
    let err = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only warnings (exit 0): any line about our units fails.
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("modsync")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}

// ---------------------------------------------------------------- Slurm

/// Runs a Slurm script outside Slurm with `MODSYNC_BIN` = a stand-in that records its arguments
/// and the token it was given, then runs `modsync ARGS --help`. Returns (success, recorded args,
/// recorded token, stderr).
fn run_script(
    script: &str,
    envs: &[(&str, &str)],
    dir: &Path,
) -> (bool, Vec<String>, Option<String>, String) {
    let record = dir.join("args");
    let _ = fs::remove_file(&record);
    let stand_in = dir.join("modsync-stand-in");
    fs::write(
        &stand_in,
        format!(
            "#!/bin/bash\nprintf '%s\\n' \"$@\" > '{rec}'\nprintf 'TOKEN=%s\\n' \"${{MODSYNC_TOKEN-}}\" >> '{rec}'\nexec '{bin}' \"$@\" --help > /dev/null\n",
            rec = record.display(),
            bin = bin(),
        ),
    )
    .unwrap();
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(deploy().join("slurm").join(script))
        .stdin(Stdio::null())
        .current_dir(dir)
        .env("HOME", dir);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("MODSYNC_") || k.starts_with("SLURM_") || k == "CUDA_VISIBLE_DEVICES" {
            cmd.env_remove(k);
        }
    }
    cmd.env("MODSYNC_BIN", &stand_in);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("bash");
    let recorded = fs::read_to_string(&record).unwrap_or_default();
    let mut lines: Vec<String> = recorded.lines().map(str::to_string).collect();
    let token = lines
        .pop()
        .and_then(|l| l.strip_prefix("TOKEN=").map(str::to_string))
        .filter(|t| !t.is_empty());
    (
        out.status.success(),
        lines,
        token,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn slurm_worker_script_picks_the_device_and_runs_real_flags() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    fs::write(&token_file, "slurm-deploy-s3cret-token\n").unwrap();
    let token_file = token_file.to_str().unwrap();
    let base = [
        ("MODSYNC_COORDINATOR", "http://coordinator:50051"),
        ("SLURM_JOB_ID", "43"),
        ("SLURM_ARRAY_JOB_ID", "42"),
        ("SLURM_ARRAY_TASK_ID", "5"),
        ("SLURM_RESTART_COUNT", "1"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut e = base.to_vec();
        e.extend_from_slice(extra);
        e
    };

    // Slurm gave the task GPU 3: CUDA calls it cuda:0.
    let (ok, args, token, err) = run_script(
        "workers.sbatch",
        &with(&[("CUDA_VISIBLE_DEVICES", "3"), ("MODSYNC_SLOTS", "2")]),
        dir.path(),
    );
    assert!(ok, "{err}");
    assert_eq!(
        args[..5],
        ["worker", "--device", "cuda:0", "--slots", "2"],
        "{args:?}"
    );
    assert!(
        flag(&args, "--worker-id").starts_with("42_5.r1@"),
        "{args:?}"
    );
    assert_eq!(token, None);

    // No GPU: the CPU. MODSYNC_DEVICE wins over a GPU. The token file is read.
    let (ok, args, _, err) = run_script("workers.sbatch", &with(&[]), dir.path());
    assert!(ok, "{err}");
    assert_eq!(flag(&args, "--device"), "cpu");
    let mut envs = with(&[("CUDA_VISIBLE_DEVICES", "0"), ("MODSYNC_DEVICE", "cpu")]);
    envs.push(("MODSYNC_TOKEN_FILE", token_file));
    let (ok, args, token, err) = run_script("workers.sbatch", &envs, dir.path());
    assert!(ok, "{err}");
    assert_eq!(flag(&args, "--device"), "cpu");
    assert_eq!(flag(&args, "--slots"), "1");
    assert_eq!(token.as_deref(), Some("slurm-deploy-s3cret-token"));

    // Without a coordinator URL it refuses to start a worker that would poll 127.0.0.1.
    let (ok, args, _, err) = run_script("workers.sbatch", &base[1..], dir.path());
    assert!(!ok && args.is_empty(), "{args:?}");
    assert!(err.contains("MODSYNC_COORDINATOR"), "{err}");

    // The directives that make it preemption- and requeue-friendly, and the exec.
    let text = read("slurm/workers.sbatch");
    for directive in [
        "#SBATCH --requeue",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --signal=B:TERM@",
        "#SBATCH --open-mode=append",
    ] {
        assert!(text.contains(directive), "no {directive}");
    }
    assert!(text.contains("exec \"${MODSYNC_BIN:-modsync}\" worker"));
    // Every MODSYNC_* the script passes on through the environment is read by the worker.
    let read_by_worker = env_vars_read_by("worker");
    for v in ["MODSYNC_COORDINATOR", "MODSYNC_TOKEN"] {
        assert!(read_by_worker.contains(v), "{v}");
    }
}

#[test]
fn slurm_coordinator_script_runs_real_flags_and_publishes_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let token_file = dir.path().join("token");
    fs::write(&token_file, "slurm-deploy-s3cret-token").unwrap();
    let (ok, args, token, err) = run_script(
        "coordinator.sbatch",
        &[
            ("MODSYNC_TOKEN_FILE", token_file.to_str().unwrap()),
            ("MODSYNC_HOME", home.to_str().unwrap()),
            ("MODSYNC_PORT", "50123"),
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert_eq!(args[0], "coordinator");
    assert_eq!(flag(&args, "--listen"), "0.0.0.0:50123");
    assert_eq!(
        Path::new(flag(&args, "--db")),
        home.join("sweeps.db").as_path()
    );
    assert_eq!(token.as_deref(), Some("slurm-deploy-s3cret-token"));
    let url = fs::read_to_string(home.join("coordinator.url")).unwrap();
    assert!(
        url.starts_with("http://") && url.trim_end().ends_with(":50123"),
        "{url}"
    );
    // No token: it refuses to serve the cluster network unauthenticated.
    let (ok, args, _, err) = run_script(
        "coordinator.sbatch",
        &[("MODSYNC_HOME", home.to_str().unwrap())],
        dir.path(),
    );
    assert!(
        !ok && args.is_empty() && err.contains("MODSYNC_TOKEN"),
        "{err}"
    );
}

/// The validation above can fail: a renamed flag is caught.
#[test]
fn an_unknown_flag_is_rejected_before_help() {
    let (ok, _, err) = run_cli(
        &[
            "coordinator",
            "--db",
            "x.db",
            "--listen-addr",
            "0.0.0.0:1",
            "--help",
        ],
        Duration::from_secs(30),
    );
    assert!(!ok && err.contains("--listen-addr"), "{err}");
    let (ok, _, _) = run_cli(
        &["worker", "--slots", "two", "--help"],
        Duration::from_secs(30),
    );
    assert!(!ok);
}

// ---------------------------------------------------------------- authentication

/// Starts `modsync ARGS` and waits until it serves (Ok: the process) or exits (Err: its
/// output). Bounded: panics if it does neither within 30 s.
fn start_or_fail(args: &[String], envs: &[(&str, &str)]) -> Result<common::Proc, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut proc = common::Proc::spawn("coordinator", &args, envs, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if proc
            .log()
            .contains("[out] modsync coordinator listening on ")
        {
            return Ok(proc);
        }
        if !proc.running() {
            let status = proc.wait(Duration::from_secs(5));
            assert!(
                !status.success(),
                "exited 0 without serving: {}",
                proc.log()
            );
            return Err(proc.log());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "neither served nor failed: {}",
            proc.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `args` with `--db` moved to `db` and the port of `--listen` set to 0 (same host).
fn runnable_here(args: &[String], db: &Path) -> Vec<String> {
    let mut args = args.to_vec();
    let i = args.iter().position(|a| a == "--db").expect("--db");
    args[i + 1] = db.to_str().unwrap().to_string();
    let i = args.iter().position(|a| a == "--listen").expect("--listen");
    let host = args[i + 1]
        .rsplit_once(':')
        .expect("host:port")
        .0
        .to_string();
    args[i + 1] = format!("{host}:0");
    args
}

/// Every coordinator the deploy files start: (origin, its arguments, the token the deployment
/// gives it, if any).
fn coordinator_deployments(dir: &Path) -> Vec<(&'static str, Vec<String>, Option<String>)> {
    let mut all = Vec::new();
    // Kubernetes: the token from the Secret (example); a missing Secret or key must stop the
    // pod from starting, not start it without a token.
    let objects = k8s_objects();
    let c = only_container(object(&objects, "StatefulSet", "modsync-coordinator"));
    let (_, key) = token_secret(c);
    let token_ref = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "MODSYNC_TOKEN")
        .unwrap();
    assert_ne!(
        token_ref["valueFrom"]["secretKeyRef"]["optional"], true,
        "k8s/coordinator.yaml: an optional token Secret"
    );
    let example = &yaml_docs("k8s/secret.example.yaml")[0];
    all.push((
        "k8s/coordinator.yaml",
        container_args(c),
        example["stringData"][key.as_str()]
            .as_str()
            .map(str::to_string),
    ));
    // systemd: the token from the environment file (its uncommented MODSYNC_TOKEN line).
    let env_token = read("systemd/modsync.env.example")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MODSYNC_TOKEN="))
        .map(str::to_string)
        .next();
    all.push((
        "systemd/modsync-coordinator.service",
        exec_start(&unit_settings("systemd/modsync-coordinator.service")),
        env_token,
    ));
    // Slurm: the token the script exports from MODSYNC_TOKEN_FILE.
    let token_file = dir.join("token");
    fs::write(&token_file, "slurm-deploy-s3cret-token\n").unwrap();
    let (ok, args, token, err) = run_script(
        "coordinator.sbatch",
        &[
            ("MODSYNC_TOKEN_FILE", token_file.to_str().unwrap()),
            ("MODSYNC_HOME", dir.join("home").to_str().unwrap()),
        ],
        dir,
    );
    assert!(ok, "{err}");
    all.push(("slurm/coordinator.sbatch", args, token));
    all
}

/// Secure by default, as deployed: every coordinator in deploy/ listens on the network, so each
/// either gets a token from its deployment or says `--insecure-no-auth` itself. Checked with the
/// real binary: each command line, as deployed, serves with the deployment's token, and refuses
/// to start when the token is missing or empty (a Secret without the key, a blank env file line).
#[test]
fn every_deployed_coordinator_has_a_token_or_says_insecure_no_auth() {
    let dir = tempfile::tempdir().unwrap();
    let deployments = coordinator_deployments(dir.path());
    assert_eq!(deployments.len(), 3);
    for (n, (origin, args, token)) in deployments.into_iter().enumerate() {
        assert_eq!(args[0], "coordinator", "{origin}");
        let insecure = args.iter().any(|a| a == "--insecure-no-auth");
        let listen = flag(&args, "--listen").to_string();
        let loopback = listen.starts_with("127.") || listen.starts_with("[::1]");
        assert!(
            insecure || loopback || token.as_deref().is_some_and(|t| !t.trim().is_empty()),
            "{origin}: serves {listen} with no token: give it one or pass --insecure-no-auth"
        );
        assert!(
            !(insecure && token.is_some()),
            "{origin}: --insecure-no-auth and a token contradict each other"
        );
        let db = dir.path().join(format!("auth{n}.db"));
        let args = runnable_here(&args, &db);
        // As deployed: it serves.
        let envs: Vec<(&str, &str)> = token
            .as_deref()
            .map(|t| ("MODSYNC_TOKEN", t))
            .into_iter()
            .collect();
        let mut proc = start_or_fail(&args, &envs).unwrap_or_else(|e| {
            panic!(
                "{origin}: `modsync {}` does not serve:\n{e}",
                args.join(" ")
            )
        });
        // It answers, with the token (SIGTERM before that could beat the signal handler).
        let port = proc
            .log()
            .lines()
            .find_map(|l| l.strip_prefix("[out] modsync coordinator listening on "))
            .and_then(|url| url.rsplit(':').next()?.parse::<u16>().ok())
            .expect("the listening line has a port");
        let local = format!("http://127.0.0.1:{port}");
        common::wait_until(Duration::from_secs(30), "it answers", || {
            run_cli_env(
                &["status", "--coordinator", &local],
                &envs,
                Duration::from_secs(30),
                None,
            )
            .0
        });
        proc.signal("TERM");
        assert!(proc.wait(Duration::from_secs(30)).success(), "{origin}");
        if insecure || loopback {
            continue;
        }
        // Token missing or empty: it does not start, and says what to do.
        let _ = fs::remove_file(&db);
        let missing = start_or_fail(&args, &[]).map(|_| ()).unwrap_err();
        for name in ["--token", "--insecure-no-auth"] {
            assert!(
                missing.contains(name),
                "{origin} without a token:\n{missing}"
            );
        }
        let empty = start_or_fail(&args, &[("MODSYNC_TOKEN", "")])
            .map(|_| ())
            .unwrap_err();
        assert!(
            empty.contains("MODSYNC_TOKEN is empty"),
            "{origin} with an empty token:\n{empty}"
        );
        assert!(
            !db.exists(),
            "{origin}: the database was opened without a token"
        );
    }
}

// ---------------------------------------------------------------- health

/// The Kubernetes probes' view: grpc.health.v1 Check answers SERVING without a token, on a
/// coordinator whose other calls need one.
#[test]
fn health_service_answers_serving_without_a_token() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &dir.path().join("health.db"),
        Some("probe-secret-0123456789"),
        &[],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Channel::from_shared(coord.url.clone())
            .unwrap()
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("connect");
        let mut health = HealthClient::new(channel);
        // "" is the server as a whole (what a probe without `service` asks); the sweeps service
        // by its full name.
        for service in ["", "modsync.v1.Sweeps"] {
            let status = tokio::time::timeout(
                Duration::from_secs(30),
                health.check(HealthCheckRequest {
                    service: service.into(),
                }),
            )
            .await
            .expect("Check answers")
            .unwrap_or_else(|e| panic!("Check({service:?}) without a token: {e}"))
            .into_inner()
            .status;
            assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
        }
        let unknown = health
            .check(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);
    });
    // …while the sweeps service itself still refuses a client without the token.
    let (ok, _, err) = run_cli_env(
        &["status", "--coordinator", &coord.url],
        &[],
        Duration::from_secs(30),
        None,
    );
    assert!(!ok && err.contains("token"), "{err}");
}
