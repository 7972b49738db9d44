//! Packs (K networks in one batched step) against two oracles: each network trained alone, and
//! each network trained alone by Burn autodiff.
//!
//! On the CPU backend a network's arithmetic in a pack is the arithmetic it does alone: the
//! batched matrix products run the same GEMM per network, elementwise ops are per element, and
//! every sum stays inside one network in the same order (row chunks depend on the row count
//! only). So the tests against `alone` demand bit-identical trajectories, not a tolerance. But
//! alone is a pack of one (`Trainer::run` is `pack::step` with K = 1): that proves isolation,
//! not correctness. `alone_autodiff` shares no reverse pass with the pack (`Backward::Autodiff`:
//! Burn autodiff through separate jet streams, one network at a time), so a pack's whole
//! trajectory is also held to it — within a tolerance, since the two reverse passes round
//! differently.

use std::path::Path;

use trainer_core::backprop::{Backward, Chunks};
use trainer_core::pde::{BoundaryLoss, Quantity, Reading};
use trainer_core::tensors::host_reads;
use trainer_core::trainer::{Pack, PackError, pack_key};
use trainer_core::{
    Checkpoint, MetricsRow, NoopObserver, Precision, RunResult, RunStatus, TrainConfig, Trainer,
};

mod common;

use common::{Recorder, tiny};

fn config(method: &str, seed: u64, iters: u64) -> TrainConfig {
    let mut c = TrainConfig {
        iters,
        seed,
        precision: Precision::F64,
        eval_every: 50,
        lr_decay_every: 70,
        ..tiny(method)
    };
    c.pde_options.test_grid = Some(6);
    c.method_options.ntk.every = 40;
    c
}

/// θ's bits, the metrics rows, the result (timings zeroed).
#[derive(Debug, PartialEq)]
struct Outcome {
    theta: Vec<u64>,
    rows: Vec<MetricsRow>,
    result: RunResult,
}

fn outcome(trainer: &Trainer, rows: Vec<MetricsRow>, result: RunResult) -> Outcome {
    Outcome {
        theta: trainer.parameters().iter().map(|v| v.to_bits()).collect(),
        rows: rows
            .into_iter()
            .map(|row| MetricsRow {
                elapsed_s: 0.0,
                ..row
            })
            .collect(),
        result: RunResult {
            wall_s: 0.0,
            iters_per_s: 0.0,
            ..result
        },
    }
}

fn alone(config: TrainConfig) -> Outcome {
    let mut t = Trainer::new(config, &trainer_core::default_device()).unwrap();
    let mut rec = Recorder::default();
    let result = t.run(&mut rec);
    outcome(&t, rec.rows, result)
}

/// `config` trained alone by the autodiff oracle: no step code in common with a pack's reverse
/// pass.
fn alone_autodiff(config: TrainConfig) -> Outcome {
    let mut t = Trainer::new(config, &trainer_core::default_device()).unwrap();
    t.set_backward(Backward::Autodiff);
    let mut rec = Recorder::default();
    let result = t.run(&mut rec);
    outcome(&t, rec.rows, result)
}

/// The largest relative difference between two outcomes of the same run by different reverse
/// passes: θ as max |a − b| / max |b| over the vector; every real of every metrics row and of
/// the result as |a − b| / max(|a|, |b|). Everything that is not a real (counts, iterations,
/// the status, which evaluations were best) must be equal.
fn outcome_distance(label: &str, a: &Outcome, b: &Outcome) -> f64 {
    let theta = |o: &Outcome| -> Vec<f64> { o.theta.iter().map(|&v| f64::from_bits(v)).collect() };
    let (ta, tb) = (theta(a), theta(b));
    assert_eq!(ta.len(), tb.len(), "{label}: θ sizes");
    let scale = tb.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = ta
        .iter()
        .zip(&tb)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale;
    let json = |o: &Outcome| serde_json::to_value((&o.rows, &o.result)).unwrap();
    walk(label, "", &json(a), &json(b), &mut worst);
    worst
}

fn walk(label: &str, at: &str, a: &serde_json::Value, b: &serde_json::Value, worst: &mut f64) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let big = x.abs().max(y.abs());
            if big > 0.0 {
                *worst = worst.max((x - y).abs() / big);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{label}: {at} lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                walk(label, &format!("{at}[{i}]"), x, y, worst);
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{label}: {at} keys"
            );
            for (k, x) in x {
                walk(label, &format!("{at}.{k}"), x, &y[k], worst);
            }
        }
        _ => assert_eq!(a, b, "{label}: {at}"),
    }
}

/// Runs `joins` = (pack step at which it joins, trainer) in one pack; outcomes by join order.
fn packed(joins: Vec<(u64, Trainer)>, chunks: Option<Chunks>) -> Vec<Outcome> {
    let mut pack = Pack::new();
    let mut pending: Vec<(u64, usize, Trainer)> = joins
        .into_iter()
        .enumerate()
        .map(|(i, (at, t))| (at, i, t))
        .collect();
    let mut done: Vec<Option<Outcome>> = pending.iter().map(|_| None).collect();
    let mut ids = Vec::new();
    let mut step = 0;
    while !(pending.is_empty() && pack.is_empty()) {
        while let Some(pos) = pending.iter().position(|(at, _, _)| *at == step) {
            let (_, i, mut t) = pending.remove(pos);
            if let Some(c) = chunks {
                t.set_chunks(c);
            }
            ids.push((pack.join(t, Recorder::default()).unwrap(), i));
        }
        for left in pack.step() {
            let i = ids.iter().find(|(id, _)| *id == left.id).unwrap().1;
            done[i] = Some(outcome(&left.trainer, left.observer.rows, left.result));
        }
        step += 1;
    }
    done.into_iter().map(Option::unwrap).collect()
}

const MIXED: [&str; 7] = [
    "adam",
    "dcgd",
    "config",
    "pcgrad",
    "ntk",
    "mconfig",
    "modsync+dcgd",
];

#[test]
fn each_network_of_a_mixed_pack_follows_its_solo_trajectory_bit_for_bit() {
    let configs: Vec<TrainConfig> = MIXED
        .iter()
        .enumerate()
        .map(|(i, m)| config(m, i as u64, 300))
        .collect();
    let solo: Vec<Outcome> = configs.iter().cloned().map(alone).collect();
    assert!(solo.iter().all(|o| o.result.status == RunStatus::Finished));
    // Joining at different pack steps: each network still counts its own iterations.
    let trainers = || {
        configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let t = Trainer::new(c.clone(), &trainer_core::default_device()).unwrap();
                (17 * i as u64, t)
            })
            .collect()
    };
    for chunks in [
        None,
        // All networks in one batched pass per row chunk (as on LibTorch, with CPU row chunks).
        Some(Chunks {
            networks: usize::MAX,
            ..Chunks::CPU
        }),
    ] {
        let packed = packed(trainers(), chunks);
        for ((m, s), p) in MIXED.iter().zip(&solo).zip(&packed) {
            assert_eq!(s.rows.len(), 7, "{m}: evaluations at 0, 50, …, 300");
            assert_eq!(s, p, "{m} ({chunks:?}): packed differs from alone");
        }
    }
}

/// A mixed pack on `pde` — each network its own method, seed and learning rate, joining at its
/// own pack step — against each network alone, bit for bit, with one network per chunk (the
/// CPU's default) and with all of them in one batched pass per row chunk (as on LibTorch).
fn mixed_pack_matches_alone(pde: &str, methods: &[&str], set: impl Fn(&mut TrainConfig)) {
    let configs: Vec<TrainConfig> = methods
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut c = config(m, 20 + i as u64, 120);
            c.pde = pde.into();
            c.lr = 1e-3 * (1.0 + i as f64);
            c.eval_every = 40;
            set(&mut c);
            c
        })
        .collect();
    let keys: Vec<_> = configs.iter().map(pack_key).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "one pack key: {keys:?}");
    let solo: Vec<Outcome> = configs.iter().cloned().map(alone).collect();
    for (m, s) in methods.iter().zip(&solo) {
        assert_eq!(s.result.status, RunStatus::Finished, "{pde} {m}");
        assert_eq!(s.rows.len(), 4, "{pde} {m}: evaluations at 0, 40, 80, 120");
    }
    let device = trainer_core::default_device();
    for chunks in [
        None,
        Some(Chunks {
            networks: usize::MAX,
            ..Chunks::CPU
        }),
    ] {
        let trainers = configs
            .iter()
            .enumerate()
            .map(|(i, c)| (7 * i as u64, Trainer::new(c.clone(), &device).unwrap()))
            .collect();
        let packed = packed(trainers, chunks);
        for ((m, s), p) in methods.iter().zip(&solo).zip(&packed) {
            assert_eq!(s, p, "{pde} {m} ({chunks:?}): packed differs from alone");
        }
    }
}

/// The conditions `config`'s PDE samples, with the factor each gets in L_b.
fn conditions(config: &TrainConfig) -> Vec<(trainer_core::pde::Condition, f64)> {
    use rand::SeedableRng;
    let t = Trainer::new(config.clone(), &trainer_core::default_device()).unwrap();
    let conditions = t
        .pde()
        .sample_conditions(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let counts: Vec<(usize, usize)> = conditions
        .iter()
        .map(|c| (c.target.len(), c.group))
        .collect();
    let scales = config.pde_options.boundary_loss().condition_scales(&counts);
    conditions.into_iter().zip(scales).collect()
}

fn has_derivative_condition(config: &TrainConfig) -> bool {
    conditions(config)
        .iter()
        .any(|(c, _)| matches!(c.quantity, Quantity::FirstDerivative(_)))
}

/// klein_gordon2d's u_t(0, x) = 0: a derivative condition, stacked per network, one reverse
/// pass for the pack (`derivative_loss_and_grad` with K > 1).
#[test]
fn klein_gordon2d_mixed_pack_is_bit_identical_to_alone() {
    let probe = {
        let mut c = config("adam", 0, 1);
        c.pde = "klein_gordon2d".into();
        c
    };
    assert!(has_derivative_condition(&probe), "klein_gordon2d has u_t");
    mixed_pack_matches_alone(
        "klein_gordon2d",
        &["adam", "ntk", "dcgd", "mconfig", "modsync+config"],
        |_| {},
    );
}

/// helmholtz3d: a 3-D lattice (nc³ interior points, 6 nc² face points), three second
/// derivatives per point.
#[test]
fn helmholtz3d_mixed_pack_is_bit_identical_to_alone() {
    mixed_pack_matches_alone(
        "helmholtz3d",
        &["adam", "pcgrad", "ntk", "modsync+dcgd", "multiadam"],
        |c| {
            c.pde_options.nc = 4;
            c.pde_options.test_grid = Some(5);
        },
    );
}

/// `pooled_mean` in a pack: every condition's factor is its share of all condition points
/// (klein_gordon2d: ¼ each, the u_t condition included), the same for every network of the pack.
#[test]
fn a_pooled_mean_mixed_pack_is_bit_identical_to_alone() {
    let pooled = |c: &mut TrainConfig| {
        c.pde = "klein_gordon2d".into();
        c.pde_options.boundary_loss = Some(BoundaryLoss::PooledMean);
    };
    let mut probe = config("adam", 0, 1);
    pooled(&mut probe);
    let scales: Vec<(bool, f64)> = conditions(&probe)
        .iter()
        .map(|(c, s)| (c.quantity != Quantity::Value, *s))
        .collect();
    assert_eq!(
        scales,
        [(false, 0.25), (true, 0.25), (false, 0.25), (false, 0.25)]
    );
    mixed_pack_matches_alone(
        "klein_gordon2d",
        &["lra", "cagrad", "modsync+adam", "dcgd"],
        pooled,
    );
}

/// burgers under the default reading (`paper`): L_b grouped, weights 1 : ½ : ½ (and condition
/// points drawn from the reference grid).
#[test]
fn a_burgers_mixed_pack_under_the_default_reading_is_bit_identical_to_alone() {
    let probe = config("adam", 0, 1);
    assert_eq!(probe.pde_options.reading, Reading::Paper);
    let scales: Vec<f64> = conditions(&probe).iter().map(|(_, s)| *s).collect();
    assert_eq!(scales, [1.0, 0.5, 0.5], "grouped");
    mixed_pack_matches_alone(
        "burgers",
        &["multiadam", "adam", "modsync+mconfig", "lra"],
        |_| {},
    );
}

/// Packed (explicit reverse pass) against the autodiff oracle over 300 steps, f64, CPU backend:
/// the worst relative difference measured was 4.5e-13 (modsync+dcgd; the other methods
/// 1e-15 to 2e-14), so this leaves a margin of ~200. A reverse pass wrong by more than rounding
/// moves the trajectory far more: dropping one term of the tanh jet's adjoint gave 1.6e-3.
const AUTODIFF_TOL: f64 = 1e-10;

#[test]
fn each_network_of_a_mixed_pack_follows_the_autodiff_oracle() {
    let configs: Vec<TrainConfig> = MIXED
        .iter()
        .enumerate()
        .map(|(i, m)| config(m, i as u64, 300))
        .collect();
    let device = trainer_core::default_device();
    let trainers = configs
        .iter()
        .enumerate()
        .map(|(i, c)| (5 * i as u64, Trainer::new(c.clone(), &device).unwrap()))
        .collect();
    let packed = packed(trainers, None);
    let mut report = Vec::new();
    for ((m, c), p) in MIXED.iter().zip(&configs).zip(&packed) {
        let oracle = alone_autodiff(c.clone());
        assert_eq!(oracle.result.status, RunStatus::Finished, "{m}");
        assert_eq!(oracle.rows.len(), 7, "{m}: evaluations at 0, 50, …, 300");
        let d = outcome_distance(m, p, &oracle);
        report.push(format!("{m} {d:.1e}"));
        assert!(
            d <= AUTODIFF_TOL,
            "{m}: the packed run differs from the autodiff oracle by {d:e} relative \
             (tolerance {AUTODIFF_TOL:e})"
        );
    }
    eprintln!(
        "packed vs autodiff oracle, worst relative difference: {}",
        report.join(", ")
    );
}

#[test]
fn a_diverging_network_leaves_the_others_untouched() {
    let calm = vec![config("adam", 1, 120), config("modsync+dcgd", 2, 120)];
    let mut wild = config("dcgd", 3, 120);
    // lr 1e3 only saturates the tanh units (the losses stay finite); 1e300 overflows the
    // output at once, so every later step is skipped as non-finite.
    wild.lr = 1e300;
    wild.max_consecutive_skips = 3;
    let device = trainer_core::default_device();
    let make = |cs: &[TrainConfig]| -> Vec<(u64, Trainer)> {
        cs.iter()
            .map(|c| (0, Trainer::new(c.clone(), &device).unwrap()))
            .collect()
    };
    let with = packed(
        make(&[calm[0].clone(), wild.clone(), calm[1].clone()]),
        None,
    );
    assert_eq!(
        with[1].result.status,
        RunStatus::Diverged,
        "lr 1e300 must diverge"
    );
    assert!(with[1].result.iters_done < 120);
    // Against each network trained alone, not against a smaller pack (which would share any
    // fault of the pack's step).
    assert_eq!(alone(calm[0].clone()), with[0]);
    assert_eq!(alone(calm[1].clone()), with[2]);
    assert_eq!(
        alone(wild),
        with[1],
        "the diverging network diverges as it does alone"
    );
}

#[test]
fn a_network_moves_between_packs_through_a_checkpoint_as_if_alone() {
    let device = trainer_core::default_device();
    let mut moving = config("modsync+dcgd", 5, 150);
    moving.checkpoint_every = 60;
    let solo = alone(moving.clone());
    // Pack A (K = 3): the moving network is cancelled right after its checkpoint at 60.
    let mut a = Pack::new();
    for c in [config("adam", 6, 150), config("pcgrad", 7, 150)] {
        a.join(Trainer::new(c, &device).unwrap(), Recorder::default())
            .unwrap();
    }
    let id = a
        .join(
            Trainer::new(moving.clone(), &device).unwrap(),
            Recorder {
                stop_at: Some(60),
                ..Recorder::default()
            },
        )
        .unwrap();
    let left = loop {
        if let Some(l) = a.step().into_iter().find(|l| l.id == id) {
            break l;
        }
    };
    assert_eq!(left.result.status, RunStatus::Cancelled);
    let mut rows = left.observer.rows;
    let checkpoint = left.observer.checkpoints.last().unwrap().clone();
    assert_eq!(checkpoint.iter, 60);
    // Through bytes, as a worker stores it; into pack B (K = 2) with other partners.
    let checkpoint = Checkpoint::from_bytes(&checkpoint.to_bytes()).unwrap();
    let mut b = Pack::new();
    b.join(
        Trainer::new(config("mconfig", 8, 40), &device).unwrap(),
        Recorder::default(),
    )
    .unwrap();
    let id = b
        .join(
            Trainer::resume(&checkpoint, &device).unwrap(),
            Recorder::default(),
        )
        .unwrap();
    let left = b.run().into_iter().find(|l| l.id == id).unwrap();
    // The evaluation at 60 was reported before the checkpoint and is not repeated.
    rows.extend(left.observer.rows);
    assert_eq!(solo, outcome(&left.trainer, rows, left.result));
}

/// A fresh directory under the target directory (removed first if a failed run left it).
fn scratch_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("packs-resume");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Set by [`a_pack_resumes_bit_identically_in_a_fresh_process`] for the child it starts.
const CHILD_DIR: &str = "MODSYNC_PACK_RESUME_DIR";

fn bits_file(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("theta-{i}.txt"))
}

fn write_bits(path: &Path, theta: &[f64]) {
    let text: Vec<String> = theta.iter().map(|v| v.to_bits().to_string()).collect();
    std::fs::write(path, text.join("\n")).unwrap();
}

/// Resumes every checkpoint in $MODSYNC_PACK_RESUME_DIR as one pack and writes each final θ.
#[test]
#[ignore = "run by a_pack_resumes_bit_identically_in_a_fresh_process in a child process"]
fn resume_pack_child() {
    let dir = std::path::PathBuf::from(std::env::var(CHILD_DIR).expect("run by the parent"));
    let device = trainer_core::default_device();
    let mut pack = Pack::new();
    for i in 0.. {
        let Ok(bytes) = std::fs::read(dir.join(format!("ckpt-{i}.bin"))) else {
            break;
        };
        let c = Checkpoint::from_bytes(&bytes).unwrap();
        let id = pack.join(Trainer::resume(&c, &device).unwrap(), NoopObserver);
        assert_eq!(id.unwrap(), i);
    }
    for left in pack.run() {
        write_bits(
            &bits_file(&dir, left.id as usize),
            &left.trainer.parameters(),
        );
    }
}

#[test]
fn a_pack_resumes_bit_identically_in_a_fresh_process() {
    let device = trainer_core::default_device();
    let configs = [
        config("dcgd", 11, 90),
        config("modsync+adam", 12, 90),
        config("ntk", 13, 90),
    ];
    let mut straight = Pack::new();
    let mut halted = Pack::new();
    for c in &configs {
        straight
            .join(Trainer::new(c.clone(), &device).unwrap(), NoopObserver)
            .unwrap();
        halted
            .join(Trainer::new(c.clone(), &device).unwrap(), NoopObserver)
            .unwrap();
    }
    let expected: Vec<Vec<f64>> = straight
        .run()
        .into_iter()
        .map(|l| l.trainer.parameters())
        .collect();
    for _ in 0..45 {
        assert!(halted.step().is_empty());
    }
    let dir = scratch_dir();
    for (i, m) in halted.members().iter().enumerate() {
        let c = m.trainer.checkpoint(0.0);
        std::fs::write(dir.as_path().join(format!("ckpt-{i}.bin")), c.to_bytes()).unwrap();
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "resume_pack_child", "--ignored", "--quiet"])
        .env(CHILD_DIR, dir.as_path())
        .status()
        .unwrap();
    assert!(status.success(), "child failed: {status}");
    for (i, theta) in expected.iter().enumerate() {
        let text = std::fs::read_to_string(bits_file(dir.as_path(), i)).unwrap();
        let got: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
        let want: Vec<u64> = theta.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "network {i} after resume in a fresh process");
    }
}

#[test]
fn a_pack_step_reads_the_device_once_for_all_networks() {
    let device = trainer_core::default_device();
    let methods = ["adam", "dcgd", "mconfig", "cagrad", "modsync+pcgrad"];
    for k in [1, 5] {
        let mut pack = Pack::new();
        for (i, m) in methods.iter().take(k).enumerate() {
            let mut c = config(m, i as u64, 100);
            c.eval_every = 1000; // evaluations (host reads of their own) only at iteration 0
            pack.join(Trainer::new(c, &device).unwrap(), NoopObserver)
                .unwrap();
        }
        pack.step(); // iteration 0 evaluates
        for step in 1..10 {
            let before = host_reads();
            assert!(pack.step().is_empty());
            assert_eq!(host_reads() - before, 1, "K = {k}, step {step}");
        }
    }
}

#[test]
fn only_networks_of_one_shape_share_a_pack() {
    let device = trainer_core::default_device();
    let mut pack = Pack::new();
    pack.join(
        Trainer::new(config("adam", 0, 10), &device).unwrap(),
        NoopObserver,
    )
    .unwrap();
    let mut wider = config("adam", 1, 10);
    wider.width = 9;
    let err = pack
        .join(Trainer::new(wider.clone(), &device).unwrap(), NoopObserver)
        .err()
        .expect("a wider network cannot join");
    assert!(matches!(err, PackError::KeyMismatch { .. }));
    assert!(err.to_string().contains("width 9"), "{err}");
    // The step scales the conditions for the whole pack: one reading of L_b per pack.
    let mut pooled = config("adam", 1, 10);
    pooled.pde_options.boundary_loss = Some(BoundaryLoss::PooledMean);
    let err = pack
        .join(Trainer::new(pooled.clone(), &device).unwrap(), NoopObserver)
        .err()
        .expect("a network reading L_b otherwise cannot join");
    assert!(err.to_string().contains("L_b pooled_mean"), "{err}");
    assert!(pack_key(&pooled).encode().ends_with(":pooled_mean"));
    // Keys stored before readings existed are spec_v1's and stay as they were.
    let mut first_reading = config("adam", 0, 10);
    first_reading.pde_options.reading = Reading::SpecV1;
    assert!(pack_key(&first_reading).encode().ends_with(":nc16"));
    assert!(
        pack_key(&config("adam", 0, 10))
            .encode()
            .ends_with(":nc16:grouped")
    );
    // Everything else may differ.
    let mut other = config("modsync+cagrad", 2, 20);
    other.lr = 3e-3;
    other.eval_every = 7;
    assert_eq!(pack_key(&other), pack_key(&config("adam", 0, 10)));
    pack.join(Trainer::new(other, &device).unwrap(), NoopObserver)
        .unwrap();
    assert_eq!(pack.len(), 2);
}
