//! The differential oracle in CI: replays PyTorch trajectories (written by
//! `bench/fidelity.sh --golden` from an independent trainer, `bench/fidelity_torch.py`) against
//! trainer-core, case by case: every PDE × every method, f64, width 32, depth 3.
//!
//! Targets, as in the harness (relative difference |a − b| / max(|b|, 1e-12), b = PyTorch):
//! ≤ 1e-9 for step 0 (losses, gradient norms, cosine, the whole update vector); ≤ 1e-6 for every
//! compared step's scalars and ‖update‖, and for θ and the thresholds after the last step.
//! Where the harness saw the two implementations decide a mask or branch differently
//! (`compare_until` < steps), only the steps before it are compared.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use trainer_core::{TrainConfig, Trainer};

const STEP0_TOL: f64 = 1e-9;
const TRAJECTORY_TOL: f64 = 1e-6;

const METHODS: [&str; 17] = [
    "adam",
    "lra",
    "ntk",
    "multiadam",
    "pcgrad",
    "cagrad",
    "dcgd",
    "dcgd:proj",
    "dcgd:avg",
    "config",
    "mconfig",
    "mconfig:literal",
    "modsync+dcgd",
    "modsync+config",
    "modsync+adam",
    "modsync+multiadam",
    "modsync+mconfig",
];

#[derive(Deserialize)]
struct Golden {
    label: String,
    config: TrainConfig,
    steps: usize,
    compare_until: usize,
    fingerprint: Fingerprint,
    torch: Trajectory,
}

#[derive(Deserialize)]
struct Fingerprint {
    theta0_sum: f64,
    points_sum: f64,
}

#[derive(Deserialize)]
struct Trajectory {
    steps: Vec<GoldenStep>,
    update0: Vec<f64>,
    theta: Vec<f64>,
    t_r: Option<Vec<f64>>,
    t_b: Option<Vec<f64>>,
}

#[derive(Deserialize)]
struct GoldenStep {
    loss_r: f64,
    loss_b: f64,
    norm_g_r: f64,
    norm_g_b: f64,
    cos: f64,
    update_norm: f64,
    skipped: bool,
    masks: Option<Vec<[u64; 2]>>,
    resets: Option<Vec<u8>>,
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "vector lengths differ");
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    diff.sqrt() / norm.sqrt().max(1e-12)
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity")
}

fn file_name(pde: &str, label: &str) -> String {
    format!("{pde}-{}.json.gz", label.replace(':', "-"))
}

fn read_gzip(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
    Ok(text)
}

/// Replays one case; returns the largest relative difference seen.
fn replay(pde: &str, label: &str) -> f64 {
    let path = golden_dir().join(file_name(pde, label));
    let text = read_gzip(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} — every PDE × method needs a golden file: run bench/fidelity.sh --golden",
            path.display()
        )
    });
    let golden: Golden = serde_json::from_str(&text).expect("golden file parses");
    assert_eq!(golden.label, label);
    assert_eq!(golden.config.pde, pde);
    let mut trainer =
        Trainer::new(golden.config.clone(), &trainer_core::default_device()).expect("config");
    let theta0_sum: f64 = trainer.parameters().iter().sum();
    let traces: Vec<_> = (0..golden.steps).map(|_| trainer.trace_step()).collect();
    let points_sum: f64 = traces
        .iter()
        .flat_map(|t| {
            let i = &t.inputs;
            i.residual
                .iter()
                .chain(i.conditions.iter().flat_map(|c| c.points.iter()))
                .map(|p| p.iter().sum::<f64>())
        })
        .sum();
    let fp = &golden.fingerprint;
    assert!(
        rel(&[theta0_sum, points_sum], &[fp.theta0_sum, fp.points_sum]) < 1e-12,
        "{pde} {label}: the initial parameters or sampled points are not the ones the golden \
         trajectory was made from (sampler or initialisation changed?): regenerate with \
         bench/fidelity.sh --golden"
    );
    let mut worst: f64 = 0.0;
    let mut check = |what: &str, k: usize, diff: f64, tol: f64| {
        assert!(
            diff <= tol,
            "{pde} {label}: {what} at step {k} differs from PyTorch by {diff:.3e} (target {tol:e})"
        );
        worst = worst.max(diff);
    };
    for (k, (ours, torch)) in traces
        .iter()
        .zip(&golden.torch.steps)
        .take(golden.compare_until)
        .enumerate()
    {
        let o = &ours.outputs;
        let tol = if k == 0 { STEP0_TOL } else { TRAJECTORY_TOL };
        for (what, a, b) in [
            ("L_r", o.loss_r, torch.loss_r),
            ("L_b", o.loss_b, torch.loss_b),
            ("|g_r|", o.norm_g_r, torch.norm_g_r),
            ("|g_b|", o.norm_g_b, torch.norm_g_b),
            ("cos(g_r, g_b)", o.cos, torch.cos),
            ("|update|", norm(&o.update), torch.update_norm),
        ] {
            check(what, k, rel(&[a], &[b]), tol);
        }
        if k == 0 {
            check(
                "update vector",
                0,
                rel(&o.update, &golden.torch.update0),
                tol,
            );
        }
        assert_eq!(
            o.skipped, torch.skipped,
            "{pde} {label}: skipped at step {k}"
        );
        assert_eq!(
            o.masks, torch.masks,
            "{pde} {label}: ModSync masks at step {k}"
        );
        assert_eq!(
            o.resets, torch.resets,
            "{pde} {label}: ModSync resets at step {k}"
        );
    }
    if golden.compare_until == golden.steps {
        let last = golden.steps;
        check(
            "θ",
            last,
            rel(&trainer.parameters(), &golden.torch.theta),
            TRAJECTORY_TOL,
        );
        let thresholds = trainer.thresholds();
        assert_eq!(thresholds.is_some(), golden.torch.t_r.is_some());
        if let (Some((t_r, t_b)), Some(gr), Some(gb)) =
            (thresholds, &golden.torch.t_r, &golden.torch.t_b)
        {
            check("t_r", last, rel(&t_r, gr), TRAJECTORY_TOL);
            check("t_b", last, rel(&t_b, gb), TRAJECTORY_TOL);
        }
    }
    worst
}

fn replay_all(pde: &str) {
    for label in METHODS {
        let worst = replay(pde, label);
        println!("{pde} {label}: max relative difference {worst:.2e}");
    }
}

#[test]
fn helmholtz2d_matches_pytorch() {
    replay_all("helmholtz2d");
}

#[test]
fn klein_gordon2d_matches_pytorch() {
    replay_all("klein_gordon2d");
}

#[test]
fn burgers_matches_pytorch() {
    replay_all("burgers");
}

#[test]
fn helmholtz3d_matches_pytorch() {
    replay_all("helmholtz3d");
}

#[test]
fn klein_gordon3d_matches_pytorch() {
    replay_all("klein_gordon3d");
}
