//! A run with a stateful method (alone and wrapped in ModSync) continues bit-identically from
//! a checkpoint on the CPU backend: N steps straight equal N/2 steps, checkpoint bytes round
//! trip, resume, N/2 steps — every parameter, moment, weight and threshold, bit for bit.

use burn::tensor::Device;
use trainer_core::{Checkpoint, MetricsRow, TrainConfig, Trainer};

mod common;

use common::{Recorder, tiny};

const N: u64 = 12;

fn config(method: &str) -> TrainConfig {
    let mut c = TrainConfig {
        iters: N,
        eval_every: 4,
        checkpoint_every: N / 2,
        ..tiny(method)
    };
    // NTK weights recomputed three times, orth diagnostics on, StepLR inside the run.
    c.method_options.ntk.every = 5;
    c.method_options.ntk.points = 8;
    c.diagnostics.diag_every = 4;
    c.diagnostics.orth_points = 4;
    c.lr_decay_every = 5;
    c.modsync.lr_t = 1e-2;
    c
}

/// The run's state at its end, without the wall-clock field.
fn state(t: &Trainer) -> Vec<(String, Vec<u64>)> {
    let c = t.checkpoint(0.0);
    let mut out: Vec<(String, Vec<u64>)> = c
        .vectors
        .iter()
        .map(|(n, v)| (n.clone(), v.iter().map(|x| x.to_bits()).collect()))
        .collect();
    out.push((
        "json".into(),
        c.method_state.to_string().bytes().map(u64::from).collect(),
    ));
    out
}

fn rows_bits(rows: &[MetricsRow]) -> Vec<(u64, Vec<u64>)> {
    rows.iter()
        .map(|r| {
            let mut v = vec![r.loss_r.to_bits(), r.loss_b.to_bits(), r.rel_l2.to_bits()];
            v.extend(r.extra.values().map(|x| x.to_bits()));
            (r.iter, v)
        })
        .collect()
}

fn check(method: &str) {
    let device = Device::flex();
    let mut straight = Trainer::new(config(method), &device).unwrap();
    let mut full = Recorder::default();
    let result = straight.run(&mut full);
    assert_eq!(result.skipped_steps, 0, "{method}");
    assert_eq!(full.checkpoints.len(), 1, "{method}: one checkpoint at N/2");

    // The first half again, stopped at the checkpoint (`iters` = N/2 would change nothing
    // but the end; resuming needs the original config, which the checkpoint carries).
    let bytes = &full.checkpoints[0].to_bytes();
    let checkpoint = Checkpoint::from_bytes(bytes).unwrap();
    assert_eq!(checkpoint.iter, N / 2);
    let again = Checkpoint::from_bytes(&checkpoint.to_bytes()).unwrap();
    assert_eq!(
        again.to_bytes(),
        *bytes,
        "{method}: checkpoint bytes round trip"
    );
    let mut resumed = Trainer::resume(&again, &device).unwrap();
    let mut second = Recorder::default();
    resumed.run(&mut second);

    assert_eq!(resumed.iter(), N);
    let (a, b) = (state(&straight), state(&resumed));
    assert_eq!(a.len(), b.len(), "{method}: same state vectors");
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(va == vb, "{method}: {na} differs after resume");
    }
    // The metrics rows after the checkpoint agree too (diagnostics included).
    let tail: Vec<MetricsRow> = full
        .rows
        .iter()
        .filter(|r| r.iter > N / 2)
        .cloned()
        .collect();
    let resumed_rows: Vec<MetricsRow> = second
        .rows
        .iter()
        .filter(|r| r.iter > N / 2)
        .cloned()
        .collect();
    assert_eq!(
        rows_bits(&tail),
        rows_bits(&resumed_rows),
        "{method}: metrics rows"
    );
}

#[test]
fn lra_resumes_bit_identically() {
    check("lra");
}

#[test]
fn ntk_resumes_bit_identically() {
    check("ntk");
}

#[test]
fn multiadam_resumes_bit_identically() {
    check("multiadam");
}

#[test]
fn mconfig_resumes_bit_identically() {
    check("mconfig");
}

#[test]
fn modsync_dcgd_resumes_bit_identically() {
    check("modsync+dcgd");
}

#[test]
fn modsync_with_each_stateful_method_resumes_bit_identically() {
    for m in ["lra", "ntk", "multiadam", "mconfig"] {
        check(&format!("modsync+{m}"));
    }
}

/// The comparison can fail: a checkpoint that loses the method's state diverges.
#[test]
fn losing_method_state_breaks_the_resume() {
    let device = Device::flex();
    let mut straight = Trainer::new(config("modsync+mconfig"), &device).unwrap();
    let mut full = Recorder::default();
    straight.run(&mut full);
    let mut checkpoint = Checkpoint::from_bytes(&full.checkpoints[0].to_bytes()).unwrap();
    // Zero the thresholds' Adam moment: the resumed run must differ.
    for (name, v) in &mut checkpoint.vectors {
        if name == "modsync.adam_m" {
            v.iter_mut().for_each(|x| *x = 0.0);
        }
    }
    let mut resumed = Trainer::resume(&checkpoint, &device).unwrap();
    resumed.run(&mut Recorder::default());
    assert_ne!(state(&straight), state(&resumed));
}
