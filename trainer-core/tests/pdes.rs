//! The benchmark definitions: exact solutions satisfy their PDE through the same residual code
//! the trainer uses, conditions agree with the solutions, samplers and grids follow SPEC §2.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use trainer_core::jet::{Jet, Second};
use trainer_core::pde::{self, Pde, Quantity};
use trainer_core::tensors::to_host;

mod common;

use common::{benchmark, ctx64};

fn all() -> Vec<Box<dyn Pde>> {
    pde::NAMES.iter().map(|n| benchmark(n, 6)).collect()
}

/// Central differences of the reference solution at each point along `axis`.
fn fd(pde: &dyn Pde, points: &[f64], axis: usize, order: u8) -> Vec<f64> {
    let dim = pde.dim();
    let h = 1e-4 * (pde.domain()[axis].1 - pde.domain()[axis].0);
    let shift = |s: f64| {
        let mut p = points.to_vec();
        for row in p.chunks_mut(dim) {
            row[axis] += s;
        }
        pde.reference(&p)
    };
    let (plus, minus) = (shift(h), shift(-h));
    match order {
        1 => plus
            .iter()
            .zip(&minus)
            .map(|(p, m)| (p - m) / (2.0 * h))
            .collect(),
        _ => {
            let mid = pde.reference(points);
            (0..mid.len())
                .map(|i| (plus[i] - 2.0 * mid[i] + minus[i]) / (h * h))
                .collect()
        }
    }
}

#[test]
fn exact_solutions_satisfy_their_pde_through_the_residual_code() {
    let ctx = ctx64();
    for pde in all() {
        let dim = pde.dim();
        let mut batch = pde.sample_residual(&mut ChaCha8Rng::seed_from_u64(1));
        if pde.name() == "burgers" {
            // Differences in t need t − h ≥ 0; the Cole–Hopf quadrature starts at t > 0.
            let keep: Vec<usize> = (0..batch.forcing.len())
                .filter(|&i| batch.points[i * dim + 1] > 0.05)
                .collect();
            batch.points = keep
                .iter()
                .flat_map(|&i| batch.points[i * dim..(i + 1) * dim].to_vec())
                .collect();
            batch.forcing = keep.iter().map(|&i| batch.forcing[i]).collect();
        }
        let n = batch.forcing.len();
        let spec = pde.residual_spec();
        let jet = Jet {
            value: ctx.column(&pde.reference(&batch.points)),
            d1: (0..dim)
                .map(|a| {
                    (spec.order[a] >= 1).then(|| ctx.column(&fd(pde.as_ref(), &batch.points, a, 1)))
                })
                .collect(),
            d2: (0..dim)
                .map(|a| {
                    if spec.order[a] == 2 {
                        Second::Tensor(ctx.column(&fd(pde.as_ref(), &batch.points, a, 2)))
                    } else {
                        Second::NotNeeded
                    }
                })
                .collect(),
        };
        let residual = to_host(pde.residual(&jet, ctx.column(&batch.forcing)));
        // Each point is judged against the size of the terms that cancel there: |f| and the
        // derivative magnitudes (Burgers' shock has u_xx ~ 10⁴, where differences are coarse).
        let term_size: Vec<f64> = (0..n)
            .map(|i| {
                let mut s = batch.forcing[i].abs() + 1.0;
                for a in 0..dim {
                    s += jet.d1[a]
                        .as_ref()
                        .map_or(0.0, |t| to_host(t.clone().slice(i..i + 1))[0].abs());
                }
                s
            })
            .collect();
        for (i, r) in residual.iter().enumerate() {
            assert!(
                r.abs()
                    <= 1e-4
                        * term_size[i].max(1.0)
                        * if pde.name() == "burgers" { 10.0 } else { 1.0 },
                "{}: |residual| {r} at point {i} of {n} (term size {})",
                pde.name(),
                term_size[i]
            );
        }
        let scale = batch.forcing.iter().fold(1.0f64, |m, f| m.max(f.abs()));
        // And the check can fail: a wrong forcing term is visible.
        let wrong: Vec<f64> = batch.forcing.iter().map(|f| f + 0.1 * scale).collect();
        let off = to_host(pde.residual(&jet, ctx.column(&wrong)));
        assert!(
            off.iter().all(|r| r.abs() > 0.05 * scale),
            "{}: residual ignores the forcing",
            pde.name()
        );
    }
}

#[test]
fn conditions_agree_with_the_solution() {
    for pde in all() {
        let conditions = pde.sample_conditions(&mut ChaCha8Rng::seed_from_u64(2));
        assert!(!conditions.is_empty());
        for c in &conditions {
            let got = match c.quantity {
                Quantity::Value => pde.reference(&c.points),
                Quantity::FirstDerivative(axis) => {
                    // Central difference; the manufactured solution extends smoothly past t = 0.
                    let dim = pde.dim();
                    let h = 1e-5;
                    let moved = |s: f64| {
                        let mut p = c.points.clone();
                        for row in p.chunks_mut(dim) {
                            row[axis] += s;
                        }
                        pde.reference(&p)
                    };
                    let (a, b) = (moved(h), moved(-h));
                    a.iter().zip(&b).map(|(a, b)| (a - b) / (2.0 * h)).collect()
                }
            };
            for (g, t) in got.iter().zip(&c.target) {
                assert!(
                    (g - t).abs() < 1e-5,
                    "{} {:?}: solution {g} vs target {t}",
                    pde.name(),
                    c.quantity
                );
            }
        }
    }
}

#[test]
fn samplers_follow_the_spec() {
    let expect = [
        // (name, residual points, points per condition)
        ("helmholtz2d", 1280, vec![128, 128, 128, 128]),
        ("klein_gordon2d", 128, vec![128, 128, 128, 128]),
        ("burgers", 1280, vec![42, 42, 42]),
        ("helmholtz3d", 216, vec![6 * 36]),
        ("klein_gordon3d", 216, vec![36, 4 * 36]),
    ];
    for (name, n_res, per_cond) in expect {
        let pde = benchmark(name, 6);
        let dim = pde.dim();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let batch = pde.sample_residual(&mut rng);
        assert_eq!(batch.forcing.len(), n_res, "{name} residual points");
        assert_eq!(batch.points.len(), n_res * dim);
        let domain = pde.domain();
        for p in batch.points.chunks(dim) {
            for (x, (lo, hi)) in p.iter().zip(&domain) {
                assert!(x >= lo && x <= hi, "{name}: {x} outside [{lo}, {hi}]");
            }
        }
        let conds = pde.sample_conditions(&mut rng);
        assert_eq!(
            conds.iter().map(|c| c.target.len()).collect::<Vec<_>>(),
            per_cond,
            "{name} condition sizes"
        );
        // Resampled every iteration: the next draw differs.
        assert_ne!(
            pde.sample_residual(&mut rng).points,
            batch.points,
            "{name} resamples"
        );
    }
}

#[test]
fn burgers_collocation_is_a_latin_hypercube_below_t_099() {
    let pde = benchmark("burgers", 6);
    let batch = pde.sample_residual(&mut ChaCha8Rng::seed_from_u64(9));
    let n = batch.forcing.len();
    for (axis, (lo, hi)) in [(-1.0, 1.0), (0.0, 0.99)].into_iter().enumerate() {
        let mut seen = vec![0; n];
        for p in batch.points.chunks(2) {
            let stratum = (((p[axis] - lo) / (hi - lo)) * n as f64).floor() as usize;
            seen[stratum.min(n - 1)] += 1;
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "axis {axis}: every stratum holds exactly one point"
        );
    }
}

#[test]
fn test_grids_and_input_normalisation() {
    let sizes = [
        ("helmholtz2d", 10_000),
        ("klein_gordon2d", 10_000),
        ("burgers", 25_600),
        ("helmholtz3d", 1_000_000),
        ("klein_gordon3d", 1_000_000),
    ];
    for (name, n) in sizes {
        let pde = benchmark(name, 16);
        assert_eq!(pde.test_grid(None).len(), n, "{name} default grid");
        assert_eq!(
            pde.test_grid(Some(5)).len(),
            5usize.pow(pde.dim() as u32),
            "{name} --test-grid 5"
        );
        let (shift, scale) = pde.input_map();
        for (a, (lo, hi)) in pde.domain().into_iter().enumerate() {
            if pde.normalises_inputs() {
                // Mean and standard deviation of U(lo, hi).
                assert!((shift[a] - (lo + hi) / 2.0).abs() < 1e-15);
                assert!((1.0 / scale[a] - (hi - lo) / 12f64.sqrt()).abs() < 1e-15);
            } else {
                assert_eq!((shift[a], scale[a]), (0.0, 1.0));
            }
        }
    }
    // Burgers' grid: 256 x by t = 0, 0.01, …, 0.99, t fastest.
    let grid = benchmark("burgers", 16).test_grid(None);
    assert_eq!(grid.shape, vec![256, 100]);
    assert_eq!(&grid.points[0..4], &[-1.0, 0.0, -1.0, 0.01]);
    assert!((grid.points[2 * 99 + 1] - 0.99).abs() < 1e-15);
}

/// Every condition's points lie on the faces (edges in 2-D) SPEC §2 puts it on: the coordinate
/// that defines the face equals its value, the others lie inside the domain and spread over it.
/// (Targets are checked against the solution above, which holds wherever the points are.)
#[test]
fn condition_points_lie_on_their_faces() {
    // Per condition, in the crate's order: (axis, value, points) of each face it covers.
    let n = 6 * 6; // nc² with nc = 6
    type Face = (usize, f64, usize);
    let expect: [(&str, Vec<Vec<Face>>); 5] = [
        (
            "helmholtz2d",
            vec![
                vec![(0, -1.0, 128)],
                vec![(0, 1.0, 128)],
                vec![(1, -1.0, 128)],
                vec![(1, 1.0, 128)],
            ],
        ),
        (
            // (t, x): u(0, x) and u_t(0, x) at t = 0; x = 0 and x = 1.
            "klein_gordon2d",
            vec![
                vec![(0, 0.0, 128)],
                vec![(0, 0.0, 128)],
                vec![(1, 0.0, 128)],
                vec![(1, 1.0, 128)],
            ],
        ),
        (
            // (x, t): t = 0, then x = −1 and x = 1.
            "burgers",
            vec![vec![(1, 0.0, 42)], vec![(0, -1.0, 42)], vec![(0, 1.0, 42)]],
        ),
        (
            "helmholtz3d",
            vec![vec![
                (0, -1.0, n),
                (0, 1.0, n),
                (1, -1.0, n),
                (1, 1.0, n),
                (2, -1.0, n),
                (2, 1.0, n),
            ]],
        ),
        (
            // (t, x, y): t = 0, then the four side faces x = ±1, y = ±1.
            "klein_gordon3d",
            vec![
                vec![(0, 0.0, n)],
                vec![(1, -1.0, n), (1, 1.0, n), (2, -1.0, n), (2, 1.0, n)],
            ],
        ),
    ];
    for (name, faces_per_condition) in expect {
        let pde = benchmark(name, 6);
        let dim = pde.dim();
        let domain = pde.domain();
        let conditions = pde.sample_conditions(&mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(conditions.len(), faces_per_condition.len(), "{name}");
        for (c, faces) in conditions.iter().zip(faces_per_condition) {
            let what = format!("{name} {:?}", c.quantity);
            let mut counts = vec![0; faces.len()];
            // Per face and free axis: the smallest and largest coordinate seen.
            let mut span = vec![vec![(f64::INFINITY, f64::NEG_INFINITY); dim]; faces.len()];
            for p in c.points.chunks_exact(dim) {
                let on: Vec<usize> = (0..faces.len())
                    .filter(|&f| p[faces[f].0] == faces[f].1)
                    .collect();
                assert_eq!(on.len(), 1, "{what}: point {p:?} is on faces {on:?}");
                let f = on[0];
                counts[f] += 1;
                for a in (0..dim).filter(|&a| a != faces[f].0) {
                    // Closed: burgers' grid-drawn points include the corners x = ±1, t = 0.
                    let (lo, hi) = domain[a];
                    assert!(
                        p[a] >= lo && p[a] <= hi,
                        "{what}: point {p:?} leaves the face (axis {a})"
                    );
                    span[f][a] = (span[f][a].0.min(p[a]), span[f][a].1.max(p[a]));
                }
            }
            let want: Vec<usize> = faces.iter().map(|f| f.2).collect();
            assert_eq!(counts, want, "{what}: points per face");
            for (f, face) in faces.iter().enumerate() {
                for a in (0..dim).filter(|&a| a != face.0) {
                    let (lo, hi) = domain[a];
                    let (min, max) = span[f][a];
                    assert!(
                        max - min > 0.5 * (hi - lo),
                        "{what}: face {face:?} covers only [{min}, {max}] of axis {a}"
                    );
                }
            }
        }
    }
}
