//! Resume is exact: N steps straight equal N/2 steps, a checkpoint through its byte format, a
//! fresh trainer, and N/2 more — to the last bit on the CPU backend.

use trainer_core::{Checkpoint, RunStatus, TrainConfig, Trainer};

mod common;

use common::{Recorder, tiny};

fn config(pde: &str) -> TrainConfig {
    let mut c = TrainConfig {
        pde: pde.into(),
        width: 10,
        iters: 40,
        eval_every: 10,
        lr_decay_every: 15, // the schedule must also continue correctly
        ..tiny("adam")
    };
    c.pde_options.nc = 4;
    c.pde_options.test_grid = Some(8);
    c
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn straight(config: &TrainConfig) -> (Vec<f64>, Recorder, trainer_core::RunResult) {
    let device = trainer_core::default_device();
    let mut t = Trainer::new(config.clone(), &device).unwrap();
    let mut rec = Recorder::default();
    let r = t.run(&mut rec);
    (t.parameters(), rec, r)
}

#[test]
fn cancel_checkpoint_resume_is_bit_identical() {
    let device = trainer_core::default_device();
    for pde in ["burgers", "klein_gordon2d"] {
        let config = config(pde);
        let (expected, full_rec, full) = straight(&config);

        let mut first = Trainer::new(config.clone(), &device).unwrap();
        let mut rec = Recorder {
            stop_at: Some(20),
            ..Default::default()
        };
        let partial = first.run(&mut rec);
        assert_eq!(partial.status, RunStatus::Cancelled);
        assert_eq!(partial.iters_done, 20);
        let ckpt = rec.checkpoints.last().expect("a cancelled run checkpoints");
        assert_eq!(ckpt.iter, 20);

        let restored = Checkpoint::from_bytes(&ckpt.to_bytes()).unwrap();
        assert!(
            &restored == ckpt,
            "byte format round trip changed the checkpoint"
        );
        let mut second = Trainer::resume(&restored, &device).unwrap();
        let mut rec2 = Recorder::default();
        let resumed = second.run(&mut rec2);
        assert_eq!(resumed.status, RunStatus::Finished);
        assert_eq!(
            bits(&second.parameters()),
            bits(&expected),
            "{pde}: parameters differ after resume"
        );
        // The reported errors are the same too, and the metrics continue at iteration 20.
        assert_eq!(resumed.rel_l2_best.to_bits(), full.rel_l2_best.to_bits());
        assert_eq!(resumed.rel_l2_last.to_bits(), full.rel_l2_last.to_bits());
        assert_eq!(resumed.best_iter, full.best_iter);
        assert_eq!(rec2.rows.first().map(|r| r.iter), Some(20));
        let tail: Vec<_> = full_rec
            .rows
            .iter()
            .filter(|r| r.iter >= 20)
            .map(|r| (r.iter, r.rel_l2.to_bits(), r.loss_r.to_bits()))
            .collect();
        let got: Vec<_> = rec2
            .rows
            .iter()
            .map(|r| (r.iter, r.rel_l2.to_bits(), r.loss_r.to_bits()))
            .collect();
        assert_eq!(got, tail, "{pde}: metrics after resume");
    }
}

#[test]
fn periodic_checkpoints_resume_identically() {
    let device = trainer_core::default_device();
    let config = TrainConfig {
        checkpoint_every: 15,
        ..config("helmholtz2d")
    };
    let (expected, rec, _) = straight(&config);
    assert_eq!(
        rec.checkpoints.iter().map(|c| c.iter).collect::<Vec<_>>(),
        vec![15, 30]
    );
    for ckpt in &rec.checkpoints {
        let mut t =
            Trainer::resume(&Checkpoint::from_bytes(&ckpt.to_bytes()).unwrap(), &device).unwrap();
        t.run(&mut Recorder::default());
        assert_eq!(
            bits(&t.parameters()),
            bits(&expected),
            "resumed from iteration {}",
            ckpt.iter
        );
    }
}

#[test]
fn a_different_run_does_not_match() {
    // The comparison above can fail: another seed gives other parameters.
    let a = straight(&config("burgers")).0;
    let b = straight(&TrainConfig {
        seed: 1,
        ..config("burgers")
    })
    .0;
    assert_ne!(bits(&a), bits(&b));
}

#[test]
fn corrupt_checkpoints_are_rejected_not_panicking() {
    let config = config("burgers");
    let mut rec = Recorder {
        stop_at: Some(5),
        ..Default::default()
    };
    Trainer::new(config, &trainer_core::default_device())
        .unwrap()
        .run(&mut rec);
    let bytes = rec.checkpoints[0].to_bytes();
    for cut in [0, 5, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            Checkpoint::from_bytes(&bytes[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(Checkpoint::from_bytes(&extra).is_err());
    // A checkpoint of another network size is refused by resume.
    let mut ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    ckpt.config.width = 11;
    assert!(Trainer::resume(&ckpt, &trainer_core::default_device()).is_err());
}
