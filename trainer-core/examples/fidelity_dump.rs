//! Writes one differential-testing case for `bench/fidelity.sh`: the initial parameters and the
//! exact points of the first `steps` steps (`inputs.json`, coordinates only: an independent
//! implementation computes forcing terms and targets itself), and trainer-core's own trajectory
//! over those steps (`ours.json`). The format is documented in `bench/fidelity.md`.
//!
//! Usage: fidelity_dump --pde P --method M [--dcgd-variant center|proj|avg]
//!                     [--mconfig-variant reference|literal] [--steps 50]
//!                     [--width 32] [--depth 3] [--reading paper|spec_v1]
//!                     [--boundary-loss sum_of_means|pooled_mean|grouped] --out DIR

use std::path::Path;

use serde_json::json;
use trainer_core::Trainer;
use trainer_core::methods::{DcgdVariant, MconfigVariant};
use trainer_core::pde::{BoundaryLoss, Reading};
use trainer_core::trainer::{StepTrace, fidelity_config};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

const FLAGS: [&str; 10] = [
    "--pde",
    "--method",
    "--dcgd-variant",
    "--mconfig-variant",
    "--steps",
    "--width",
    "--depth",
    "--reading",
    "--boundary-loss",
    "--out",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Every argument is a known flag followed by its value: a typo must not silently run the
    // default case and compare the wrong thing.
    for pair in args[1..].chunks(2) {
        if !FLAGS.contains(&pair[0].as_str()) || pair.len() < 2 {
            fail(format!(
                "unexpected argument {:?}; flags: {}",
                pair[0],
                FLAGS.join(" ")
            ));
        }
    }
    let need = |name: &str| arg(&args, name).unwrap_or_else(|| fail(format!("{name} is required")));
    let (pde, method, out) = (need("--pde"), need("--method"), need("--out"));
    let steps: u64 = arg(&args, "--steps")
        .unwrap_or_else(|| "50".into())
        .parse()
        .unwrap_or_else(|e| fail(format!("--steps: {e}")));
    let mut config = fidelity_config(&pde, &method, steps);
    // The network's size: the capacity-failure check (issue 16) runs this at width 512.
    for (flag, field) in [
        ("--width", &mut config.width),
        ("--depth", &mut config.depth),
    ] {
        if let Some(v) = arg(&args, flag) {
            *field = v.parse().unwrap_or_else(|e| fail(format!("{flag}: {e}")));
        }
    }
    if let Some(v) = arg(&args, "--boundary-loss") {
        config.pde_options.boundary_loss = Some(BoundaryLoss::parse(&v).unwrap_or_else(|| {
            fail(format!(
                "--boundary-loss: unknown L_b {v:?} (known: {})",
                BoundaryLoss::NAMES.join(", ")
            ))
        }));
    }
    if let Some(v) = arg(&args, "--reading") {
        config.pde_options.reading = Reading::parse(&v).unwrap_or_else(|| {
            fail(format!(
                "--reading: unknown reading {v:?} (known: {})",
                Reading::NAMES.join(", ")
            ))
        });
    }
    if let Some(v) = arg(&args, "--dcgd-variant") {
        config.method_options.dcgd.variant = DcgdVariant::parse(&v)
            .unwrap_or_else(|| fail(format!("--dcgd-variant: unknown variant {v:?}")));
    }
    if let Some(v) = arg(&args, "--mconfig-variant") {
        config.method_options.mconfig.variant = MconfigVariant::parse(&v)
            .unwrap_or_else(|| fail(format!("--mconfig-variant: unknown variant {v:?}")));
    }
    let mut trainer = Trainer::new(config.clone(), &trainer_core::default_device())
        .unwrap_or_else(|e| fail(e.to_string()));
    let theta0 = trainer.parameters();
    let modsync = trainer.thresholds().map(|(t_r0, t_b0)| {
        json!({ "masked_layers": trainer.masked_layers(), "t_r0": t_r0, "t_b0": t_b0 })
    });
    let dims = trainer.dims().to_vec();
    let traces: Vec<StepTrace> = (0..steps).map(|_| trainer.trace_step()).collect();
    let (t_r, t_b) = trainer.thresholds().unzip();
    let inputs = json!({
        "pde": pde,
        "method": method,
        "config": config,
        "dims": dims,
        "theta0": theta0,
        "modsync": modsync,
        "steps": traces.iter().map(|t| &t.inputs).collect::<Vec<_>>(),
    });
    let ours = json!({
        "steps": traces.iter().map(|t| &t.outputs).collect::<Vec<_>>(),
        "theta": trainer.parameters(),
        "t_r": t_r,
        "t_b": t_b,
    });
    let dir = Path::new(&out);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(format!("--out {out}: {e}")));
    for (name, value) in [("inputs.json", inputs), ("ours.json", ours)] {
        let text = serde_json::to_string(&value).expect("JSON of plain numbers");
        std::fs::write(dir.join(name), text)
            .unwrap_or_else(|e| fail(format!("writing {out}/{name}: {e}")));
    }
}
