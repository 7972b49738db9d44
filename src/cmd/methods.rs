//! `modsync methods`: every gradient method with its options and defaults; and the
//! `--X.option` flags `modsync train` takes for them (`--modsync.beta 0.3`, `--cagrad.c 0.4`).

use anyhow::Result;
use clap::{ArgAction, Args};
use trainer_core::TrainConfig;
use trainer_core::methods::catalogue::catalogue;
use trainer_core::methods::{DcgdVariant, MconfigVariant};
use trainer_core::modsync::{Ablation, RwMode};

#[derive(Args)]
pub struct MethodsArgs {}

pub fn run(_args: MethodsArgs) -> Result<()> {
    for m in catalogue() {
        println!("{}", m.key);
        println!("    {}", m.summary);
        for o in &m.options {
            let flag = format!("--{}", o.path);
            println!("    {flag:<30} {:<10} {}", o.default, o.help);
        }
        println!();
    }
    println!("Use `--method modsync+X` to wrap any method X in ModSync.");
    Ok(())
}

fn parse_variant(s: &str) -> Result<DcgdVariant, String> {
    DcgdVariant::parse(s).ok_or_else(|| {
        format!(
            "expected one of {}, got {s:?}",
            DcgdVariant::NAMES.join(", ")
        )
    })
}

fn parse_mconfig_variant(s: &str) -> Result<MconfigVariant, String> {
    MconfigVariant::parse(s).ok_or_else(|| {
        format!(
            "expected one of {}, got {s:?}",
            MconfigVariant::NAMES.join(", ")
        )
    })
}

fn parse_mode(s: &str) -> Result<Ablation, String> {
    Ablation::parse(s)
        .ok_or_else(|| format!("expected one of {}, got {s:?}", Ablation::NAMES.join(", ")))
}

fn parse_rw(s: &str) -> Result<RwMode, String> {
    RwMode::parse(s)
        .ok_or_else(|| format!("expected one of {}, got {s:?}", RwMode::NAMES.join(", ")))
}

/// Method, ModSync and diagnostics options of `modsync train`; unset flags keep the defaults
/// (`modsync methods` lists them).
#[derive(Args, Default)]
#[command(next_help_heading = "Method options (see `modsync methods`)")]
pub struct MethodFlags {
    #[arg(long = "eps", value_name = "F")]
    eps: Option<f64>,
    #[arg(long = "adam.lambda_r", value_name = "F")]
    adam_lambda_r: Option<f64>,
    #[arg(long = "adam.lambda_b", value_name = "F")]
    adam_lambda_b: Option<f64>,
    #[arg(long = "lra.alpha", value_name = "F")]
    lra_alpha: Option<f64>,
    #[arg(long = "ntk.every", value_name = "N")]
    ntk_every: Option<u64>,
    #[arg(long = "ntk.points", value_name = "N")]
    ntk_points: Option<usize>,
    #[arg(long = "multiadam.beta1", value_name = "F")]
    multiadam_beta1: Option<f64>,
    #[arg(long = "multiadam.beta2", value_name = "F")]
    multiadam_beta2: Option<f64>,
    #[arg(long = "multiadam.eps", value_name = "F")]
    multiadam_eps: Option<f64>,
    #[arg(long = "multiadam.weight_r", value_name = "F")]
    multiadam_weight_r: Option<f64>,
    #[arg(long = "multiadam.weight_b", value_name = "F")]
    multiadam_weight_b: Option<f64>,
    #[arg(long = "cagrad.c", value_name = "F")]
    cagrad_c: Option<f64>,
    #[arg(long = "dcgd.variant", value_name = "center|proj|avg", value_parser = parse_variant)]
    dcgd_variant: Option<DcgdVariant>,
    #[arg(long = "mconfig.beta1", value_name = "F")]
    mconfig_beta1: Option<f64>,
    #[arg(long = "mconfig.beta2", value_name = "F")]
    mconfig_beta2: Option<f64>,
    #[arg(long = "mconfig.eps", value_name = "F")]
    mconfig_eps: Option<f64>,
    #[arg(long = "mconfig.variant", value_name = "reference|literal", value_parser = parse_mconfig_variant)]
    mconfig_variant: Option<MconfigVariant>,
    #[arg(long = "modsync.lambda_r", value_name = "F")]
    modsync_lambda_r: Option<f64>,
    #[arg(long = "modsync.lambda_b", value_name = "F")]
    modsync_lambda_b: Option<f64>,
    #[arg(long = "modsync.lambda_s", value_name = "F")]
    modsync_lambda_s: Option<f64>,
    #[arg(long = "modsync.beta", value_name = "F")]
    modsync_beta: Option<f64>,
    #[arg(long = "modsync.lr_t", value_name = "F")]
    modsync_lr_t: Option<f64>,
    #[arg(long = "modsync.lr_t_decay", value_name = "BOOL", action = ArgAction::Set)]
    modsync_lr_t_decay: Option<bool>,
    #[arg(long = "modsync.mode", value_name = "full|dual_thresholds|sparsity_only", value_parser = parse_mode)]
    modsync_mode: Option<Ablation>,
    #[arg(long = "modsync.rw", value_name = "per_unit|per_layer", value_parser = parse_rw)]
    modsync_rw: Option<RwMode>,
    #[arg(long = "modsync.detach_rw", value_name = "BOOL", action = ArgAction::Set)]
    modsync_detach_rw: Option<bool>,
    #[arg(long = "modsync.rw_max_exponent", value_name = "F")]
    modsync_rw_max_exponent: Option<f64>,
    #[arg(long = "modsync.route_thresholds", value_name = "BOOL", action = ArgAction::Set)]
    modsync_route_thresholds: Option<bool>,
    #[arg(long = "modsync.mask_first", value_name = "BOOL", action = ArgAction::Set)]
    modsync_mask_first: Option<bool>,
    #[arg(long = "modsync.mask_last", value_name = "BOOL", action = ArgAction::Set)]
    modsync_mask_last: Option<bool>,
    #[arg(long = "modsync.reset_below", value_name = "F")]
    modsync_reset_below: Option<f64>,
    #[arg(long = "diagnostics.enabled", value_name = "BOOL", action = ArgAction::Set)]
    diagnostics_enabled: Option<bool>,
    #[arg(long = "diagnostics.diag_every", value_name = "N")]
    diag_every: Option<u64>,
    #[arg(long = "diagnostics.orth_points", value_name = "N")]
    orth_points: Option<usize>,
    #[arg(long = "diagnostics.eps_dot", value_name = "F")]
    eps_dot: Option<f64>,
}

impl MethodFlags {
    /// Writes every given flag into `c`.
    pub fn apply(&self, c: &mut TrainConfig) {
        fn set<T: Clone>(dst: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *dst = v.clone();
            }
        }
        let m = &mut c.method_options;
        set(&mut m.eps, &self.eps);
        set(&mut m.adam.lambda_r, &self.adam_lambda_r);
        set(&mut m.adam.lambda_b, &self.adam_lambda_b);
        set(&mut m.lra.alpha, &self.lra_alpha);
        set(&mut m.ntk.every, &self.ntk_every);
        set(&mut m.ntk.points, &self.ntk_points);
        set(&mut m.multiadam.beta1, &self.multiadam_beta1);
        set(&mut m.multiadam.beta2, &self.multiadam_beta2);
        set(&mut m.multiadam.eps, &self.multiadam_eps);
        set(&mut m.multiadam.weight_r, &self.multiadam_weight_r);
        set(&mut m.multiadam.weight_b, &self.multiadam_weight_b);
        set(&mut m.cagrad.c, &self.cagrad_c);
        set(&mut m.dcgd.variant, &self.dcgd_variant);
        set(&mut m.mconfig.beta1, &self.mconfig_beta1);
        set(&mut m.mconfig.beta2, &self.mconfig_beta2);
        set(&mut m.mconfig.eps, &self.mconfig_eps);
        set(&mut m.mconfig.variant, &self.mconfig_variant);
        let s = &mut c.modsync;
        set(&mut s.lambda_r, &self.modsync_lambda_r);
        set(&mut s.lambda_b, &self.modsync_lambda_b);
        set(&mut s.lambda_s, &self.modsync_lambda_s);
        set(&mut s.beta, &self.modsync_beta);
        set(&mut s.lr_t, &self.modsync_lr_t);
        set(&mut s.lr_t_decay, &self.modsync_lr_t_decay);
        set(&mut s.mode, &self.modsync_mode);
        set(&mut s.rw, &self.modsync_rw);
        set(&mut s.detach_rw, &self.modsync_detach_rw);
        set(&mut s.rw_max_exponent, &self.modsync_rw_max_exponent);
        set(&mut s.route_thresholds, &self.modsync_route_thresholds);
        set(&mut s.mask_first, &self.modsync_mask_first);
        set(&mut s.mask_last, &self.modsync_mask_last);
        set(&mut s.reset_below, &self.modsync_reset_below);
        let d = &mut c.diagnostics;
        set(&mut d.enabled, &self.diagnostics_enabled);
        set(&mut d.diag_every, &self.diag_every);
        set(&mut d.orth_points, &self.orth_points);
        set(&mut d.eps_dot, &self.eps_dot);
    }
}
