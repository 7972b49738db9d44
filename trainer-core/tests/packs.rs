//! Packs (K networks in one batched step) against the oracle of training each network alone.
//!
//! On the CPU backend a network's arithmetic in a pack is the arithmetic it does alone: the
//! batched matrix products run the same GEMM per network, elementwise ops are per element, and
//! every sum stays inside one network in the same order (row chunks depend on the row count
//! only). So the tests demand bit-identical trajectories, not a tolerance.

use std::path::Path;

use trainer_core::backprop::Chunks;
use trainer_core::pde::{BoundaryLoss, Reading};
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
    let without = packed(make(&calm), None);
    let with = packed(make(&[calm[0].clone(), wild, calm[1].clone()]), None);
    assert_eq!(
        with[1].result.status,
        RunStatus::Diverged,
        "lr 1e300 must diverge"
    );
    assert!(with[1].result.iters_done < 120);
    assert_eq!(without[0], with[0]);
    assert_eq!(without[1], with[2]);
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
    assert!(pack_key(&config("adam", 0, 10)).encode().ends_with(":nc16:grouped"));
    // Everything else may differ.
    let mut other = config("modsync+cagrad", 2, 20);
    other.lr = 3e-3;
    other.eval_every = 7;
    assert_eq!(pack_key(&other), pack_key(&config("adam", 0, 10)));
    pack.join(Trainer::new(other, &device).unwrap(), NoopObserver)
        .unwrap();
    assert_eq!(pack.len(), 2);
}
