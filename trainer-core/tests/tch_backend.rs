//! The LibTorch backend (`--device cpu-tch`) against burn-flex (`--device cpu`): the same config
//! gives bit-identical initial parameters (drawn on the host), and after 50 training steps the
//! same losses and parameters up to floating-point rounding. Only built with `--features tch`.
//!
//! Run: `LIBTORCH_USE_PYTORCH=1 PATH=<venv>/bin:$PATH LD_LIBRARY_PATH=<torch>/lib \
//!       CARGO_TARGET_DIR=target/tch cargo test --release --workspace --features modsync/tch \
//!       --test tch_backend`

#![cfg(feature = "tch")]

use trainer_core::{MetricsRow, Precision, TrainConfig, Trainer, parse_device};

mod common;

use common::{Recorder, tiny};

fn config(method: &str, precision: Precision) -> TrainConfig {
    let mut c = TrainConfig {
        width: 32,
        depth: 3,
        iters: 50,
        eval_every: 10,
        precision,
        ..tiny(method)
    };
    c.pde_options.test_grid = Some(32);
    c
}

struct Run {
    init: Vec<f64>,
    last: Vec<f64>,
    rows: Vec<MetricsRow>,
}

fn run(device: &str, config: &TrainConfig) -> Run {
    let device = parse_device(device).unwrap();
    let mut t = Trainer::new(config.clone(), &device).unwrap();
    let init = t.parameters();
    let mut rec = Recorder::default();
    let r = t.run(&mut rec);
    assert_eq!(r.iters_done, 50);
    assert_eq!(r.skipped_steps, 0);
    Run {
        init,
        last: t.parameters(),
        rows: rec.rows,
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

/// max |a − b| / max |a|
fn rel_max(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Compares the two backends; returns (loss difference at step 50, parameter difference).
fn compare(method: &str, precision: Precision, loss_tol: f64, param_tol: f64) -> (f64, f64) {
    let c = config(method, precision);
    let flex = run("cpu", &c);
    let tch = run("cpu-tch", &c);
    assert_eq!(
        flex.init.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        tch.init.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        "{method}: initial parameters differ"
    );
    assert_eq!(flex.rows.len(), 6);
    assert_eq!(tch.rows.len(), 6);
    let (a, b) = (flex.rows.last().unwrap(), tch.rows.last().unwrap());
    assert_eq!((a.iter, b.iter), (50, 50));
    let loss = rel(a.loss_r + a.loss_b, b.loss_r + b.loss_b);
    let params = rel_max(&flex.last, &tch.last);
    eprintln!(
        "{method} {precision:?}: loss after 50 steps flex {:.9e} tch {:.9e} (rel diff {loss:.2e}), \
         rel_l2 {:.6e} vs {:.6e}, parameters max rel diff {params:.2e}",
        a.loss_r + a.loss_b,
        b.loss_r + b.loss_b,
        a.rel_l2,
        b.rel_l2
    );
    assert!(loss <= loss_tol, "{method}: loss differs by {loss:.2e}");
    assert!(
        params <= param_tol,
        "{method}: parameters differ by {params:.2e}"
    );
    // Training moved the parameters by far more than the backends disagree.
    assert!(rel_max(&flex.init, &flex.last) > 100.0 * params);
    (loss, params)
}

// Tolerances: measured differences (2 cores, 2026-11-26) were 1.6e-7 (loss) and 4.4e-7
// (parameters) in f32, 1e-15 and 4e-15 in f64: the backends sum in different orders (GEMM
// kernels, tanh), ~1e-7 per f32 operation, and 50 Adam steps barely amplify that. The bounds
// leave a factor of ~20 for other CPUs' kernels.

#[test]
fn same_start_and_same_training_f32() {
    compare("adam", Precision::F32, 1e-5, 1e-5);
}

#[test]
fn same_start_and_same_training_f64() {
    compare("adam", Precision::F64, 1e-12, 1e-12);
}

#[test]
fn same_training_with_a_conflict_averse_method() {
    compare("dcgd", Precision::F32, 1e-5, 1e-5);
}

#[test]
fn cuda_index_is_checked() {
    let e = parse_device("cuda:9999").unwrap_err().to_string();
    assert!(e.contains("cuda:9999 is not available"), "{e}");
}

/// What `modsync worker --slots K` does on one LibTorch device: K trainers on K threads share
/// the device. Each must train exactly as it would alone.
#[test]
fn concurrent_trainers_share_a_device() {
    let configs: Vec<TrainConfig> = (0..3)
        .map(|seed| TrainConfig {
            seed,
            ..config("adam", Precision::F32)
        })
        .collect();
    let alone: Vec<Vec<f64>> = configs.iter().map(|c| run("cpu-tch", c).last).collect();
    let together: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = configs
            .iter()
            .map(|c| s.spawn(move || run("cpu-tch", c).last))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (seed, (a, b)) in alone.iter().zip(&together).enumerate() {
        let d = rel_max(a, b);
        eprintln!("seed {seed}: alone vs concurrent, parameters max rel diff {d:.2e}");
        assert!(
            d <= 1e-6,
            "seed {seed}: concurrent training differs by {d:.2e}"
        );
    }
    // Different seeds are different runs, so the comparison could fail.
    assert!(rel_max(&alone[0], &alone[1]) > 1e-2);
}

/// The explicit reverse pass on LibTorch (one row chunk there) against the autodiff oracle on
/// the same device, in f64, for a PDE with second derivatives and one with a derivative
/// condition, unmasked and under ModSync.
#[test]
fn explicit_backward_matches_autodiff_on_libtorch() {
    use trainer_core::backprop::Backward;
    let device = parse_device("cpu-tch").unwrap();
    for (pde, method) in [
        ("burgers", "adam"),
        ("klein_gordon2d", "adam"),
        ("helmholtz2d", "modsync+adam"),
    ] {
        let mut c = config(method, Precision::F64);
        c.pde = pde.into();
        c.modsync.lr_t = 0.05;
        let mut t = Trainer::new(c, &device).unwrap();
        for _ in 0..25 {
            t.train_step();
        }
        t.set_backward(Backward::Explicit);
        let e = t.peek_gradients();
        t.set_backward(Backward::Autodiff);
        let a = t.peek_gradients();
        for (what, x, y) in [("g_r", &e.g_r, &a.g_r), ("g_b", &e.g_b, &a.g_b)] {
            let d = rel_max(y, x);
            eprintln!("{pde} {method} on cpu-tch: {what} explicit vs autodiff {d:.1e}");
            assert!(d <= 1e-10, "{pde} {method}: {what} differs by {d:.2e}");
        }
    }
}

#[test]
fn a_pack_on_libtorch_matches_each_network_alone() {
    // On LibTorch a pack is one batched pass over all its networks (no CPU chunks): each
    // network must still follow its solo trajectory, to rounding.
    use trainer_core::NoopObserver;
    use trainer_core::trainer::Pack;
    let device = parse_device("cpu-tch").unwrap();
    let configs: Vec<TrainConfig> = ["adam", "dcgd", "modsync+pcgrad"]
        .iter()
        .enumerate()
        .map(|(i, m)| TrainConfig {
            seed: i as u64,
            ..config(m, Precision::F64)
        })
        .collect();
    let mut pack = Pack::new();
    for c in &configs {
        pack.join(Trainer::new(c.clone(), &device).unwrap(), NoopObserver)
            .unwrap();
    }
    let packed = pack.run();
    for (c, left) in configs.iter().zip(packed) {
        let mut alone = Trainer::new(c.clone(), &device).unwrap();
        alone.run(&mut NoopObserver);
        let d = rel_max(&alone.parameters(), &left.trainer.parameters());
        eprintln!(
            "{}: packed vs alone on cpu-tch, max rel diff of theta {d:.1e}",
            c.method
        );
        assert!(d <= 1e-12, "{}: {d:e}", c.method);
    }
}
