//! What `modsync methods` prints: every method with a one-line summary and its options with
//! their defaults, read from the `Default` impls so the listing cannot drift from the code.

use super::options::MethodOptions;
use crate::modsync::{DiagnosticsOptions, ModSyncOptions};

/// One option: its dotted config path (also the CLI flag, `--{path}` without the
/// `method_options.` prefix), default and meaning.
#[derive(Clone, Debug)]
pub struct OptionInfo {
    pub path: String,
    pub default: String,
    pub help: &'static str,
}

/// One method key or option group.
#[derive(Clone, Debug)]
pub struct MethodInfo {
    pub key: &'static str,
    pub summary: &'static str,
    pub options: Vec<OptionInfo>,
}

fn opt(path: &str, default: impl ToString, help: &'static str) -> OptionInfo {
    OptionInfo {
        path: path.to_string(),
        default: default.to_string(),
        help,
    }
}

/// Every method of SPEC §3, then the ModSync wrapper and the diagnostics.
pub fn catalogue() -> Vec<MethodInfo> {
    let m = MethodOptions::default();
    let s = ModSyncOptions::default();
    let d = DiagnosticsOptions::default();
    let eps = || opt("eps", m.eps, "ε added to gradient norms (all methods)");
    vec![
        MethodInfo {
            key: "adam",
            summary: "g = λ_r g_r + λ_b g_b, outer Adam (plain PINN)",
            options: vec![
                opt(
                    "adam.lambda_r",
                    m.adam.lambda_r,
                    "weight of the residual loss",
                ),
                opt(
                    "adam.lambda_b",
                    m.adam.lambda_b,
                    "weight of the boundary loss",
                ),
            ],
        },
        MethodInfo {
            key: "lra",
            summary: "learning-rate annealing: λ_b ← (1−α)λ_b + α max|g_r|/mean|g_b| every step",
            options: vec![opt("lra.alpha", m.lra.alpha, "moving-average weight α")],
        },
        MethodInfo {
            key: "ntk",
            summary: "λ_k = (T_r + T_b)/T_k from NTK-block traces on a subsample",
            options: vec![
                opt(
                    "ntk.every",
                    m.ntk.every,
                    "recompute the weights every N steps",
                ),
                opt(
                    "ntk.points",
                    m.ntk.points,
                    "points per task in the trace subsample",
                ),
            ],
        },
        MethodInfo {
            key: "multiadam",
            summary: "one Adam per task, weighted sum of their steps, no outer Adam",
            options: vec![
                opt("multiadam.beta1", m.multiadam.beta1, "first-moment decay"),
                opt("multiadam.beta2", m.multiadam.beta2, "second-moment decay"),
                opt("multiadam.eps", m.multiadam.eps, "Adam ε"),
                opt(
                    "multiadam.weight_r",
                    m.multiadam.weight_r,
                    "weight of the residual step",
                ),
                opt(
                    "multiadam.weight_b",
                    m.multiadam.weight_b,
                    "weight of the boundary step",
                ),
            ],
        },
        MethodInfo {
            key: "pcgrad",
            summary: "project each gradient off the other when they conflict, then sum",
            options: vec![eps()],
        },
        MethodInfo {
            key: "cagrad",
            summary: "conflict-averse direction in a ball of radius c‖g₀‖ (dual weight by bisection on F′)",
            options: vec![
                opt("cagrad.c", m.cagrad.c, "ball radius relative to ‖g₀‖"),
                eps(),
            ],
        },
        MethodInfo {
            key: "dcgd",
            summary: "dual cone gradient descent (center: projection on the unit-gradient bisector)",
            options: vec![
                opt("dcgd.variant", m.dcgd.variant.name(), "center | proj | avg"),
                eps(),
            ],
        },
        MethodInfo {
            key: "config",
            summary: "ConFIG: conflict-free direction with projection length (= dcgd center for 2 tasks)",
            options: vec![],
        },
        MethodInfo {
            key: "mconfig",
            summary: "momentum ConFIG: one loss per step (alternating), ConFIG of the momenta, SGD",
            options: vec![
                opt("mconfig.beta1", m.mconfig.beta1, "per-task momentum decay"),
                opt(
                    "mconfig.beta2",
                    m.mconfig.beta2,
                    "pseudo-gradient second-moment decay",
                ),
                opt("mconfig.eps", m.mconfig.eps, "ε of the normalisation"),
                opt(
                    "mconfig.variant",
                    m.mconfig.variant.name(),
                    "reference | literal (two readings of SPEC; README)",
                ),
            ],
        },
        MethodInfo {
            key: "modsync+X",
            summary: "ModSync around any method X: masked layers, task-routed thresholds, sparsity loss",
            options: vec![
                opt("modsync.lambda_r", s.lambda_r, "weight of L_r"),
                opt("modsync.lambda_b", s.lambda_b, "weight of L_b"),
                opt(
                    "modsync.lambda_s",
                    s.lambda_s,
                    "weight of the sparsity loss L_s",
                ),
                opt("modsync.beta", s.beta, "sharpness β of R_w"),
                opt(
                    "modsync.lr_t",
                    s.lr_t,
                    "Adam learning rate of the thresholds",
                ),
                opt(
                    "modsync.lr_t_decay",
                    s.lr_t_decay,
                    "apply StepLR to the threshold lr",
                ),
                opt(
                    "modsync.mode",
                    s.mode.name(),
                    "full | dual_thresholds | sparsity_only (ablations)",
                ),
                opt("modsync.rw", s.rw.name(), "per_unit | per_layer"),
                opt(
                    "modsync.detach_rw",
                    s.detach_rw,
                    "treat R_w as a constant in ∂L_s/∂t",
                ),
                opt(
                    "modsync.rw_max_exponent",
                    s.rw_max_exponent,
                    "clamp of R_w's exponent",
                ),
                opt(
                    "modsync.route_thresholds",
                    s.route_thresholds,
                    "t_r gets ∂L_r/∂t, t_b gets ∂L_b/∂t (off: both get the sum's)",
                ),
                opt("modsync.mask_first", s.mask_first, "mask the input layer"),
                opt("modsync.mask_last", s.mask_last, "mask the output layer"),
                opt(
                    "modsync.reset_below",
                    s.reset_below,
                    "reset a layer's thresholds when its kept fraction is at most this",
                ),
            ],
        },
        MethodInfo {
            key: "diagnostics",
            summary: "metrics-row diagnostics (all methods)",
            options: vec![
                opt(
                    "diagnostics.enabled",
                    d.enabled,
                    "cosine, norms, mask statistics each evaluation",
                ),
                opt(
                    "diagnostics.diag_every",
                    d.diag_every,
                    "sample-orthogonality fraction every N steps (0 = off)",
                ),
                opt(
                    "diagnostics.orth_points",
                    d.orth_points,
                    "residual points in its subsample",
                ),
                opt("diagnostics.eps_dot", d.eps_dot, "|∇ℓ_r,i·∇L_b| threshold"),
            ],
        },
    ]
}
