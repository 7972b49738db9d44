//! The differential oracle in CI: replays PyTorch trajectories (written by
//! `bench/fidelity.sh --golden` from an independent trainer, `bench/fidelity_torch.py`) against
//! trainer-core, case by case: every PDE × every method, f64, width 32, depth 3, the default
//! reading (`paper`).
//!
//! Targets, as in the harness (relative difference |a − b| / max(|b|, 1e-12), b = PyTorch):
//! ≤ 1e-9 for step 0 (losses, gradient norms, cosine, the whole update vector); ≤ 1e-8 for every
//! step's scalars and ‖update‖, and for θ and the thresholds after the last step. Every golden is
//! compared over all of its steps: a golden whose step lists are shorter than its `steps`, or whose
//! `compare_until` (where the harness saw a mask or branch decided differently) is below `steps`,
//! fails. Where the two implementations legitimately decide a near tie differently at step D, the
//! harness records that case over its first D steps instead (`bench/fidelity.sh`).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use trainer_core::trainer::StepOutputs;
use trainer_core::{TrainConfig, Trainer};

const STEP0_TOL: f64 = 1e-9;
const TRAJECTORY_TOL: f64 = 1e-8;

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

/// What trainer-core did over a golden's steps.
struct Ours {
    steps: Vec<StepOutputs>,
    theta: Vec<f64>,
    thresholds: Option<(Vec<f64>, Vec<f64>)>,
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
    let ours = Ours {
        steps: traces.into_iter().map(|t| t.outputs).collect(),
        theta: trainer.parameters(),
        thresholds: trainer.thresholds(),
    };
    check(&golden, &ours).unwrap_or_else(|e| panic!("{pde} {label}: {e}"))
}

/// Compares trainer-core's run with a golden trajectory over every step of the golden, and θ and
/// the thresholds after the last; returns the largest relative difference, or what failed.
fn check(golden: &Golden, ours: &Ours) -> Result<f64, String> {
    let steps = golden.steps;
    if steps == 0 {
        return Err("the golden has no steps".into());
    }
    if golden.compare_until != steps {
        return Err(format!(
            "compare_until = {} but steps = {steps}: a golden must be compared over all its steps \
             (where a decision differs at step D, record the case over D steps)",
            golden.compare_until
        ));
    }
    for (who, len) in [
        ("PyTorch's", golden.torch.steps.len()),
        ("trainer-core's", ours.steps.len()),
    ] {
        if len != steps {
            return Err(format!(
                "{who} trajectory has {len} steps, the golden {steps}"
            ));
        }
    }
    let mut worst: f64 = 0.0;
    let mut within = |what: &str, k: usize, a: &[f64], b: &[f64], tol: f64| {
        if a.len() != b.len() {
            return Err(format!(
                "{what} at step {k}: {} values, PyTorch {}",
                a.len(),
                b.len()
            ));
        }
        let diff = rel(a, b);
        if diff.is_nan() || diff > tol {
            return Err(format!(
                "{what} at step {k} differs from PyTorch by {diff:.3e} (target {tol:e})"
            ));
        }
        worst = worst.max(diff);
        Ok(())
    };
    for (k, (o, torch)) in ours.steps.iter().zip(&golden.torch.steps).enumerate() {
        let tol = if k == 0 { STEP0_TOL } else { TRAJECTORY_TOL };
        for (what, a, b) in [
            ("L_r", o.loss_r, torch.loss_r),
            ("L_b", o.loss_b, torch.loss_b),
            ("|g_r|", o.norm_g_r, torch.norm_g_r),
            ("|g_b|", o.norm_g_b, torch.norm_g_b),
            ("cos(g_r, g_b)", o.cos, torch.cos),
            ("|update|", norm(&o.update), torch.update_norm),
        ] {
            within(what, k, &[a], &[b], tol)?;
        }
        if k == 0 {
            within("update vector", 0, &o.update, &golden.torch.update0, tol)?;
        }
        if o.skipped != torch.skipped {
            return Err(format!(
                "skipped at step {k}: trainer-core {}, PyTorch {}",
                o.skipped, torch.skipped
            ));
        }
        if o.masks != torch.masks {
            return Err(format!(
                "ModSync masks at step {k}: trainer-core {:?}, PyTorch {:?}",
                o.masks, torch.masks
            ));
        }
        if o.resets != torch.resets {
            return Err(format!(
                "ModSync resets at step {k}: trainer-core {:?}, PyTorch {:?}",
                o.resets, torch.resets
            ));
        }
    }
    within("θ", steps, &ours.theta, &golden.torch.theta, TRAJECTORY_TOL)?;
    match (&ours.thresholds, &golden.torch.t_r, &golden.torch.t_b) {
        (Some((t_r, t_b)), Some(gr), Some(gb)) => {
            within("t_r", steps, t_r, gr, TRAJECTORY_TOL)?;
            within("t_b", steps, t_b, gb, TRAJECTORY_TOL)?;
        }
        (None, None, None) => {}
        (mine, _, _) => {
            return Err(format!(
                "thresholds: trainer-core has {}, the golden {}",
                if mine.is_some() { "some" } else { "none" },
                if golden.torch.t_r.is_some() {
                    "some"
                } else {
                    "none"
                }
            ));
        }
    }
    Ok(worst)
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

// The checker itself: a golden that cannot compare every step must fail, never pass.

/// A synthetic golden of `n` ModSync steps and a trainer-core run that matches it exactly.
fn synthetic(n: usize) -> (Golden, Ours) {
    let ours_steps: Vec<StepOutputs> = (0..n)
        .map(|k| StepOutputs {
            loss_r: 1.0 + k as f64,
            loss_b: 0.5,
            norm_g_r: 2.0,
            norm_g_b: 3.0,
            cos: -0.1,
            update: vec![1e-3, -2e-3 * k as f64],
            skipped: false,
            masks: Some(vec![[3, 10]]),
            resets: Some(vec![0]),
        })
        .collect();
    let torch_steps = ours_steps
        .iter()
        .map(|o| GoldenStep {
            loss_r: o.loss_r,
            loss_b: o.loss_b,
            norm_g_r: o.norm_g_r,
            norm_g_b: o.norm_g_b,
            cos: o.cos,
            update_norm: norm(&o.update),
            skipped: o.skipped,
            masks: o.masks.clone(),
            resets: o.resets.clone(),
        })
        .collect();
    let golden = Golden {
        label: "modsync+adam".into(),
        config: TrainConfig::default(),
        steps: n,
        compare_until: n,
        fingerprint: Fingerprint {
            theta0_sum: 0.0,
            points_sum: 0.0,
        },
        torch: Trajectory {
            steps: torch_steps,
            update0: ours_steps[0].update.clone(),
            theta: vec![1.0, 2.0],
            t_r: Some(vec![0.1]),
            t_b: Some(vec![0.2]),
        },
    };
    let ours = Ours {
        steps: ours_steps,
        theta: vec![1.0, 2.0],
        thresholds: Some((vec![0.1], vec![0.2])),
    };
    (golden, ours)
}

fn check_fails(golden: &Golden, ours: &Ours, expected: &str) {
    match check(golden, ours) {
        Ok(worst) => panic!("passed (max relative difference {worst:e}); expected: {expected}"),
        Err(e) => assert!(
            e.contains(expected),
            "failed with {e:?}; expected {expected:?}"
        ),
    }
}

#[test]
fn the_checker_passes_a_golden_that_matches() {
    let (golden, ours) = synthetic(10);
    assert_eq!(check(&golden, &ours), Ok(0.0));
}

/// `zip` would silently compare the first 3 steps only.
#[test]
fn a_truncated_trajectory_fails() {
    let (mut golden, ours) = synthetic(10);
    golden.torch.steps.truncate(3);
    check_fails(
        &golden,
        &ours,
        "PyTorch's trajectory has 3 steps, the golden 10",
    );
    let (golden, mut ours) = synthetic(10);
    ours.steps.truncate(9);
    check_fails(
        &golden,
        &ours,
        "trainer-core's trajectory has 9 steps, the golden 10",
    );
}

/// A mask decided differently at step 0 once gave compare_until = 0 and a pass with nothing
/// compared.
#[test]
fn a_mask_disagreement_at_step_0_fails() {
    let (mut golden, ours) = synthetic(10);
    golden.torch.steps[0].masks = Some(vec![[2, 4]]);
    check_fails(&golden, &ours, "ModSync masks at step 0");
    golden.compare_until = 0;
    check_fails(&golden, &ours, "compare_until = 0 but steps = 10");
    let (mut golden, ours) = synthetic(10);
    golden.compare_until = 7;
    check_fails(&golden, &ours, "compare_until = 7 but steps = 10");
}

#[test]
fn differences_above_the_targets_fail() {
    let (mut golden, ours) = synthetic(10);
    golden.torch.steps[5].loss_b *= 1.0 + 1e-9;
    assert!(check(&golden, &ours).is_ok_and(|worst| worst > 0.0 && worst < 2e-9));
    golden.torch.steps[5].loss_b *= 1.0 + 1e-7;
    check_fails(&golden, &ours, "L_b at step 5 differs");
    let (mut golden, ours) = synthetic(10);
    golden.torch.steps[0].cos *= 1.0 + 1e-8;
    check_fails(&golden, &ours, "cos(g_r, g_b) at step 0 differs");
    let (mut golden, ours) = synthetic(10);
    golden.torch.theta[1] *= 1.0 + 1e-7;
    check_fails(&golden, &ours, "θ at step 10 differs");
    let (mut golden, ours) = synthetic(10);
    golden.torch.t_b = Some(vec![0.2 * (1.0 + 1e-7)]);
    check_fails(&golden, &ours, "t_b at step 10 differs");
    let (mut golden, ours) = synthetic(10);
    golden.torch.steps[3].norm_g_r = f64::NAN;
    check_fails(&golden, &ours, "|g_r| at step 3 differs");
}
