//! Which kind a diagnostic of the metrics rows (`MetricsRow::extra`) is, and so which panel and
//! which y axis it is drawn on: the job page of the dashboard and `modsync history` both draw
//! diagnostics by kind, from this one table, so that values of different sizes never share an
//! axis (an L_s of 5,000 next to fractions in 0..1 flattened the fractions to a line).
//!
//! The names a run emits (`trainer::diagnostics`, the methods' and ModSync's `diagnostics`):
//!
//! | kind | names | y axis |
//! |---|---|---|
//! | [`Cosines`](DiagnosticKind::Cosines) | `cos_rb` | linear, at least −1..1 |
//! | [`Kept`](DiagnosticKind::Kept) | `kept_frac_l{i}` per masked layer | linear, at least 0..1 |
//! | [`Exclusive`](DiagnosticKind::Exclusive) | `exclusive_frac_l{i}` | linear, at least 0..1 |
//! | [`Orthogonality`](DiagnosticKind::Orthogonality) | `orth_frac` (paper Fig. 3) | linear, at least 0..1 |
//! | [`Norms`](DiagnosticKind::Norms) | `norm_g_r`, `norm_g_b` | log |
//! | [`LossS`](DiagnosticKind::LossS) | `loss_s` | log when wide, else linear |
//! | [`Reweighting`](DiagnosticKind::Reweighting) | `rw_mean_l{i}` (mean R_w) | log when wide, else linear |
//! | [`Weights`](DiagnosticKind::Weights) | `lambda_r`, `lambda_b` (lra, ntk) | log when wide, else linear |
//! | [`Resets`](DiagnosticKind::Resets) | `resets_l{i}` (a counter) | marks where it grows |
//! | [`Other`](DiagnosticKind::Other) | anything else | linear |
//!
//! Names are matched by their first word (the text before the first `_`, `.` or `-`), so a
//! renamed layer suffix (`kept_frac.0`, `kept_l3`) or an abbreviation (`excl_l1`) still lands in
//! its kind, and a name nobody knows is still drawn, in [`Other`](DiagnosticKind::Other).
//!
//! Why these axes: gradient norms span decades within a run (0.0016 to 0.67 for ‖∇L_r‖ in
//! one 2,000-iteration modsync+dcgd run at width 512), so always log. L_s = Σ R_w (e^{−t_r} +
//! e^{−t_b}) is positive by construction and moves by factors (e^{−t} as the thresholds rise,
//! R_w up to e^{q_max}), which a log axis shows over a long run; but over a short one it moves
//! by a few per cent (5,122 → 4,999 in that run), which a log axis padded around so narrow a
//! range draws as a flat line and a linear axis fitted to the data shows. So L_s, and alike
//! R_w = e^{min(q, q_max)} ≥ 1 (1.0 → 1.04 there) and the loss weights λ, are
//! [`AxisScale::Auto`]: log once the values span more than a factor of [`WIDE`], linear
//! before. Fractions and cosines keep their whole range in view (the axis covers at least 0..1
//! or −1..1), so panels of different jobs compare at a glance.

/// A kind of diagnostic: one panel, one y axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiagnosticKind {
    /// cos(∇L_r, ∇L_b) (paper Fig. 2).
    Cosines,
    /// ModSync: the fraction of a masked layer's weights kept by the mean threshold.
    Kept,
    /// ModSync: the fraction above exactly one of the two thresholds (one task's only).
    Exclusive,
    /// The fraction of residual points whose gradient is not orthogonal to ∇L_b (Fig. 3).
    Orthogonality,
    /// ‖∇L_r‖, ‖∇L_b‖.
    Norms,
    /// ModSync's sparsity loss L_s.
    LossS,
    /// ModSync: the mean reweighting factor R_w of a layer.
    Reweighting,
    /// A weighting method's loss weights λ (lra, ntk).
    Weights,
    /// ModSync: threshold resets of a layer so far (a counter).
    Resets,
    /// Anything not known above.
    Other,
}

/// How a kind's y axis maps values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisScale {
    Linear,
    /// Logarithmic: values ≤ 0 are not drawn.
    Log,
    /// [`AxisScale::Log`] where every value is positive and they span more than a factor of
    /// [`WIDE`], [`AxisScale::Linear`] otherwise ([`AxisScale::resolve`]).
    Auto,
}

/// The span (largest / smallest value) from which an [`AxisScale::Auto`] axis is logarithmic.
pub const WIDE: f64 = 20.0;

impl AxisScale {
    /// The scale for `values`: `Auto` decided, the others as they are.
    pub fn resolve(self, values: impl IntoIterator<Item = f64>) -> AxisScale {
        if self != AxisScale::Auto {
            return self;
        }
        let (lo, hi) = values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if lo > 0.0 && hi.is_finite() && hi / lo > WIDE {
            AxisScale::Log
        } else {
            AxisScale::Linear
        }
    }
}

impl DiagnosticKind {
    /// Every kind, in the order their panels appear.
    pub const ALL: [DiagnosticKind; 10] = [
        DiagnosticKind::Cosines,
        DiagnosticKind::Kept,
        DiagnosticKind::Exclusive,
        DiagnosticKind::Orthogonality,
        DiagnosticKind::Norms,
        DiagnosticKind::LossS,
        DiagnosticKind::Reweighting,
        DiagnosticKind::Weights,
        DiagnosticKind::Resets,
        DiagnosticKind::Other,
    ];

    /// The kind of the diagnostic `name`; [`DiagnosticKind::Other`] for a name not known.
    pub fn of(name: &str) -> DiagnosticKind {
        let lower = name.to_ascii_lowercase();
        let mut words = lower.split(['_', '.', '-']);
        let first = words.next().unwrap_or("");
        match first {
            "cos" | "cosine" => DiagnosticKind::Cosines,
            "kept" => DiagnosticKind::Kept,
            "exclusive" | "excl" => DiagnosticKind::Exclusive,
            "orth" | "orthogonal" => DiagnosticKind::Orthogonality,
            "norm" => DiagnosticKind::Norms,
            "rw" => DiagnosticKind::Reweighting,
            "lambda" => DiagnosticKind::Weights,
            "reset" | "resets" => DiagnosticKind::Resets,
            "loss" if words.next() == Some("s") => DiagnosticKind::LossS,
            // A cosine under another first word (e.g. `pair_cos`).
            _ if lower.split(['_', '.', '-']).any(|w| w == "cos") => DiagnosticKind::Cosines,
            _ => DiagnosticKind::Other,
        }
    }

    /// The kind's name, as `modsync history --metric` takes it (no diagnostic's name).
    pub fn name(self) -> &'static str {
        match self {
            DiagnosticKind::Cosines => "cosines",
            DiagnosticKind::Kept => "kept",
            DiagnosticKind::Exclusive => "exclusive",
            DiagnosticKind::Orthogonality => "orthogonality",
            DiagnosticKind::Norms => "norms",
            // Not `loss_s`: `modsync history --metric loss_s` is the one diagnostic.
            DiagnosticKind::LossS => "sparsity",
            DiagnosticKind::Reweighting => "reweighting",
            DiagnosticKind::Weights => "weights",
            DiagnosticKind::Resets => "resets",
            DiagnosticKind::Other => "other",
        }
    }

    /// The kind called `name` ([`DiagnosticKind::name`]).
    pub fn from_name(name: &str) -> Option<DiagnosticKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// A panel's title.
    pub fn title(self) -> &'static str {
        match self {
            DiagnosticKind::Cosines => "gradient cosines",
            DiagnosticKind::Kept => "kept fraction per layer",
            DiagnosticKind::Exclusive => "exclusive fraction per layer",
            DiagnosticKind::Orthogonality => "non-orthogonal fraction of points",
            DiagnosticKind::Norms => "gradient norms",
            DiagnosticKind::LossS => "sparsity loss L_s",
            DiagnosticKind::Reweighting => "mean R_w per layer",
            DiagnosticKind::Weights => "loss weights",
            DiagnosticKind::Resets => "threshold resets",
            DiagnosticKind::Other => "other diagnostics",
        }
    }

    /// The y axis's label.
    pub fn y_label(self) -> &'static str {
        match self {
            DiagnosticKind::Cosines => "cosine",
            DiagnosticKind::Kept | DiagnosticKind::Exclusive | DiagnosticKind::Orthogonality => {
                "fraction"
            }
            DiagnosticKind::Norms => "norm",
            DiagnosticKind::LossS => "L_s",
            DiagnosticKind::Reweighting => "R_w",
            DiagnosticKind::Weights => "λ",
            DiagnosticKind::Resets => "layer",
            DiagnosticKind::Other => "value",
        }
    }

    /// The y axis's scale.
    pub fn scale(self) -> AxisScale {
        match self {
            DiagnosticKind::Norms => AxisScale::Log,
            DiagnosticKind::LossS | DiagnosticKind::Reweighting | DiagnosticKind::Weights => {
                AxisScale::Auto
            }
            _ => AxisScale::Linear,
        }
    }

    /// The range the y axis covers at least (more only where a value lies outside it).
    pub fn y_range(self) -> Option<(f64, f64)> {
        match self {
            DiagnosticKind::Cosines => Some((-1.0, 1.0)),
            DiagnosticKind::Kept | DiagnosticKind::Exclusive | DiagnosticKind::Orthogonality => {
                Some((0.0, 1.0))
            }
            _ => None,
        }
    }

    /// Whether the values are a counter, drawn as marks where it grows instead of a line.
    pub fn is_counter(self) -> bool {
        self == DiagnosticKind::Resets
    }
}

/// The masked layer a per-layer diagnostic is of (`kept_frac_l3` → 3, `kept_frac.0` → 0).
pub fn layer_of(name: &str) -> Option<u32> {
    let last = name.rsplit(['_', '.', '-']).next()?;
    let digits = last.strip_prefix('l').unwrap_or(last);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `names` in the order a kind's panel lists them: by layer (so `_l10` comes after `_l9`),
/// then by name.
pub fn sort_members<S: AsRef<str>>(names: &mut [S]) {
    names.sort_by(|a, b| {
        let (a, b) = (a.as_ref(), b.as_ref());
        (layer_of(a), a).cmp(&(layer_of(b), b))
    });
}

/// Where a counter (e.g. `resets_l0`) grows: (index of the value, by how much), given its
/// values in iteration order. A missing value (`None`) is skipped; the first value counts as
/// growth from 0.
pub fn counter_steps(values: &[Option<f64>]) -> Vec<(usize, f64)> {
    let mut last = 0.0;
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v.filter(|v| v.is_finite()) else {
            continue;
        };
        if v > last {
            out.push((i, v - last));
        }
        last = v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::DiagnosticKind::*;
    use super::*;

    /// Every name a modsync+dcgd run emits at depth 4 (five masked layers, as ModSync's
    /// `diagnostics` names them), and the weighting methods' own, in their kinds.
    #[test]
    fn every_name_a_run_emits_lands_in_its_kind() {
        let mut want: Vec<(String, DiagnosticKind)> = vec![
            ("cos_rb".into(), Cosines),
            ("norm_g_r".into(), Norms),
            ("norm_g_b".into(), Norms),
            ("orth_frac".into(), Orthogonality),
            ("loss_s".into(), LossS),
            ("lambda_r".into(), Weights),
            ("lambda_b".into(), Weights),
        ];
        for l in 0..5 {
            want.push((format!("kept_frac_l{l}"), Kept));
            want.push((format!("exclusive_frac_l{l}"), Exclusive));
            want.push((format!("rw_mean_l{l}"), Reweighting));
            want.push((format!("resets_l{l}"), Resets));
        }
        for (name, kind) in &want {
            assert_eq!(DiagnosticKind::of(name), *kind, "{name}");
        }
        // Other spellings of the same quantities.
        for (name, kind) in [
            ("kept_l3", Kept),
            ("kept_frac.0", Kept),
            ("excl_l1", Exclusive),
            ("exclusive_l2", Exclusive),
            ("reset_count_l0", Resets),
            ("cos", Cosines),
            ("pair_cos", Cosines),
            ("Norm_G_R", Norms),
        ] {
            assert_eq!(DiagnosticKind::of(name), kind, "{name}");
        }
    }

    #[test]
    fn unknown_names_are_other_and_still_have_a_panel() {
        for name in [
            "dcgd_step",
            "loss",
            "loss_r",
            "losses",
            "costly",
            "",
            "kepts",
            "normal",
        ] {
            assert_eq!(DiagnosticKind::of(name), Other, "{name:?}");
        }
        assert!(DiagnosticKind::ALL.contains(&Other));
        assert_eq!(Other.scale(), AxisScale::Linear);
    }

    #[test]
    fn axes_per_kind() {
        assert_eq!(Norms.scale(), AxisScale::Log);
        for k in [LossS, Reweighting, Weights] {
            assert_eq!(k.scale(), AxisScale::Auto, "{k:?}");
        }
        for k in [Norms, LossS, Reweighting, Weights] {
            assert_eq!(k.y_range(), None, "{k:?}");
        }
        // Auto: log once the values span more than WIDE, never with a value ≤ 0.
        let auto = AxisScale::Auto;
        assert_eq!(auto.resolve([5122.0, 4999.0]), AxisScale::Linear);
        assert_eq!(auto.resolve([320.0, 3.0, f64::NAN]), AxisScale::Log);
        assert_eq!(auto.resolve([0.0, 320.0]), AxisScale::Linear);
        assert_eq!(auto.resolve([]), AxisScale::Linear);
        assert_eq!(AxisScale::Log.resolve([1.0, 1.0]), AxisScale::Log);
        for k in [Cosines, Kept, Exclusive, Orthogonality, Other] {
            assert_eq!(k.scale(), AxisScale::Linear, "{k:?}");
        }
        assert_eq!(Cosines.y_range(), Some((-1.0, 1.0)));
        assert_eq!(Kept.y_range(), Some((0.0, 1.0)));
        assert_eq!(Exclusive.y_range(), Some((0.0, 1.0)));
        assert!(Resets.is_counter() && !Kept.is_counter());
        // Names round-trip, and are distinct.
        for k in DiagnosticKind::ALL {
            assert_eq!(DiagnosticKind::from_name(k.name()), Some(k));
        }
        assert_eq!(DiagnosticKind::from_name("kept_frac_l0"), None);
        // A kind's name is never that of a diagnostic, which `--metric` also takes.
        for name in ["cos_rb", "loss_s", "norm_g_r", "orth_frac", "lambda_b"] {
            assert_eq!(DiagnosticKind::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn members_sort_by_layer_and_counters_step_where_they_grow() {
        let mut names = vec!["kept_frac_l10", "kept_frac_l2", "kept_frac_l0", "kept_x"];
        sort_members(&mut names);
        assert_eq!(
            names,
            ["kept_x", "kept_frac_l0", "kept_frac_l2", "kept_frac_l10"]
        );
        assert_eq!(layer_of("kept_frac.7"), Some(7));
        assert_eq!(layer_of("loss_s"), None);
        let values = [
            Some(0.0),
            Some(0.0),
            Some(1.0),
            None,
            Some(1.0),
            Some(3.0),
            Some(f64::NAN),
        ];
        assert_eq!(counter_steps(&values), vec![(2, 1.0), (5, 2.0)]);
        assert_eq!(counter_steps(&[Some(2.0)]), vec![(0, 2.0)]);
    }
}
