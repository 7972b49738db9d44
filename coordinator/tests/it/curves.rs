//! GetCurves equals what the test computes itself from the `results` table.

use std::collections::BTreeMap;

use modsync_proto::value::Kind;
use modsync_proto::*;

use crate::common::*;

/// mean, sample std (0 for n = 1), median, min — computed here independently of the view.
fn stats(v: &mut [f64]) -> (f64, f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    (mean, std, median, v[0])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
}

#[tokio::test]
async fn curves_match_the_results_table() {
    let (_server, mut c) = start_with_client(|_| {}).await;
    let s = SweepSpec {
        pdes: vec!["burgers".into(), "helmholtz2d".into()],
        widths: vec![8, 16, 32],
        seeds: vec![0, 1, 2, 3],
        ..spec("curves")
    };
    assert_eq!(submit(&mut c, s).await.jobs_created, 24);
    // An unrelated sweep's results must not leak into these curves.
    submit(&mut c, spec("noise")).await;
    assert_eq!(
        c.get_curves(GetCurvesRequest {
            sweep_id: "curves".into()
        })
        .await
        .unwrap()
        .into_inner()
        .points,
        vec![],
        "no results yet, no points"
    );

    // Finish a different number of seeds per point: width 8 → 1 (n = 1), width 16 → 3 (odd),
    // width 32 → 4 (even); distinct, unsorted values.
    let seeds_done = |width: usize| match width {
        8 => 1,
        16 => 3,
        _ => 4,
    };
    let mut k = 0.0;
    while let Some(job) = lease(&mut c, "w").await {
        let config: trainer_core::TrainConfig = serde_json::from_str(&job.config_json).unwrap();
        if job.sweep_id == "noise" {
            complete(&mut c, &job, "w", 1e6).await;
            continue;
        }
        if (config.seed as usize) < seeds_done(config.width) {
            k += 1.0;
            let v = 0.01 * (1.0 + (k * 7.3f64).sin().abs()) * (config.width as f64).recip();
            complete(&mut c, &job, "w", v).await;
        }
    }

    // The test's own SQL: the raw values, grouped in Rust.
    let rows = sql(
        &mut c,
        "SELECT j.pde, j.method, j.width, r.rel_l2_best FROM results r JOIN jobs j ON j.id = r.job_id
         WHERE j.sweep_id = 'curves'",
    )
    .await;
    let mut groups: BTreeMap<(String, String, i64), Vec<f64>> = BTreeMap::new();
    for r in rows {
        let (Kind::Integer(w), Kind::Real(v)) = (&r[2], &r[3]) else {
            panic!("{r:?}")
        };
        groups
            .entry((text(&r[0]).into(), text(&r[1]).into(), *w))
            .or_default()
            .push(*v);
    }
    assert_eq!(groups.len(), 6);

    let points = c
        .get_curves(GetCurvesRequest {
            sweep_id: "curves".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .points;
    assert_eq!(points.len(), groups.len());
    // BTreeMap order is (pde, method, width): the order GetCurves promises.
    for (p, ((pde, method, width), values)) in points.iter().zip(groups.iter_mut()) {
        assert_eq!((&p.pde, &p.method, p.width as i64), (pde, method, *width));
        assert_eq!(p.n as usize, values.len());
        assert_eq!(p.n as usize, seeds_done(*width as usize));
        let (mean, std, median, min) = stats(values);
        assert!(close(p.mean, mean), "{p:?} mean {mean}");
        assert!(close(p.std, std), "{p:?} std {std}");
        assert!(close(p.median, median), "{p:?} median {median}");
        assert_eq!(p.min, min, "{p:?}");
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(p.max, max, "{p:?}");
        if p.n == 1 {
            assert_eq!(p.std, 0.0);
        }
    }
    // The view is what users query directly, too.
    assert_eq!(
        sql_i64(
            &mut c,
            "SELECT COUNT(*) FROM curves WHERE sweep_id = 'curves'"
        )
        .await,
        6
    );
}

#[test]
fn the_reference_statistics_are_right() {
    assert_eq!(stats(&mut [3.0, 1.0, 2.0]), (2.0, 1.0, 2.0, 1.0));
    let (mean, std, median, min) = stats(&mut [4.0, 1.0, 3.0, 2.0]);
    assert_eq!((mean, median, min), (2.5, 2.5, 1.0));
    assert!(close(std, (5.0f64 / 3.0).sqrt()));
    assert_eq!(stats(&mut [5.0]), (5.0, 0.0, 5.0, 5.0));
}
