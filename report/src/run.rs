//! One training run as `modsync train` prints it when it ends.

use trainer_core::RunResult;

/// One line: the config's identity, the status, the three relative L2 errors, the absolute
/// error, and the speed.
pub fn summary(r: &RunResult) -> String {
    let c = &r.config;
    format!(
        "{} {} w={} d={} seed={}: {:?} | rel_l2 best {:.4e} (iter {}) min-loss {:.4e} last {:.4e} | abs_err {:.3e} | {} iters in {:.1} s ({:.1} it/s), {} skipped",
        c.pde,
        c.method,
        c.width,
        c.depth,
        c.seed,
        r.status,
        r.rel_l2_best,
        r.best_iter,
        r.rel_l2_min_loss,
        r.rel_l2_last,
        r.abs_err_best,
        r.iters_done,
        r.wall_s,
        r.iters_per_s,
        r.skipped_steps
    )
}
