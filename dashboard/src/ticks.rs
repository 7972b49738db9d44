//! Axes and styles shared by the static SVG plots (`modsync curves`) and the dashboard's plots:
//! log axes fitted to the data with labelled 1-2-5 ticks, linear ticks, and a colour-blind-safe
//! palette with one marker shape per series.

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#RRGGBB`, as SVG and CSS take it.
    pub fn hex(self) -> String {
        format!("#{:02X}{:02X}{:02X}", self.0, self.1, self.2)
    }
}

/// Okabe & Ito's colour-blind-safe palette ("Color Universal Design", 2008), in an order
/// where neighbours differ in hue and lightness; black is left to the axes, yellow (hard to see
/// on white) comes last.
pub const PALETTE: [Rgb; 7] = [
    Rgb(0, 114, 178),   // blue
    Rgb(213, 94, 0),    // vermillion
    Rgb(0, 158, 115),   // bluish green
    Rgb(204, 121, 167), // reddish purple
    Rgb(86, 180, 233),  // sky blue
    Rgb(230, 159, 0),   // orange
    Rgb(240, 228, 66),  // yellow
];

/// Marker shapes, so that lines stay apart in grey print too.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
}
pub const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
    Marker::Cross,
];

/// Colour and marker of the `i`-th method: every pair differs from its neighbours in both, and
/// the first 35 pairs are all different.
pub fn style(i: usize) -> (Rgb, Marker) {
    (PALETTE[i % PALETTE.len()], MARKERS[i % MARKERS.len()])
}

/// Relative margin of a fitted log axis beyond the data on each side, as a share of the
/// data's span in decades (so a marker at the end is not cut in half).
pub const LOG_MARGIN: f64 = 0.04;

/// A log axis fitted to data in `lo..=hi`: a small margin each side, never empty, never
/// running on to the next power of ten as plotters' own ranges do.
pub fn fit_log_axis(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo {
        (lo, hi)
    } else {
        (1e-3, 1.0)
    };
    let decades = (hi / lo).log10();
    // One point (or nearly): a tenth of a decade each side.
    let pad = if decades < 0.05 {
        0.1
    } else {
        decades * LOG_MARGIN
    };
    let f = 10f64.powf(pad);
    (lo / f, hi * f)
}

/// Tick values for a log axis over `lo..=hi`, all inside it: 1-2-5 × 10^k (…, 0.05, 0.1, 0.2,
/// 0.5, 1) when that gives two ticks or more; only powers of ten when 1-2-5 would crowd the axis
/// (more than `max`); every digit × 10^k when the range is too narrow for 1-2-5; the two ends
/// themselves when even that gives fewer than two.
pub fn log_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo) {
        return Vec::new();
    }
    let in_range = |mantissas: &[f64]| -> Vec<f64> {
        let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        let mut out = Vec::new();
        for k in k0..=k1 {
            for m in mantissas {
                let v = round_sig(m * 10f64.powi(k));
                // Tolerance: 0.1 must count as inside 0.1..1 whatever the rounding.
                if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                    out.push(v);
                }
            }
        }
        out
    };
    let one_two_five = in_range(&[1.0, 2.0, 5.0]);
    if one_two_five.len() > max {
        let decades = in_range(&[1.0]);
        // Very wide ranges: every n-th power of ten.
        let step = decades.len().div_ceil(max.max(1));
        return decades.into_iter().step_by(step.max(1)).collect();
    }
    if one_two_five.len() >= 2 {
        return one_two_five;
    }
    let digits = in_range(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    if digits.len() >= 2 && digits.len() <= max {
        return digits;
    }
    if lo == hi {
        vec![round_sig(lo)]
    } else {
        vec![round_sig(lo), round_sig(hi)]
    }
}

/// `v` rounded to 3 significant digits (tick values: 0.3, not 0.30000000000000004).
pub fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(2 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// A tick label: plain decimals from 0.001 to 99,999 (0.05, 0.2, 1, 500), else scientific
/// with a short mantissa (2e-5, 1e6).
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if (1e-3..1e5).contains(&a) {
        // Enough decimals for 3 significant digits, then trailing zeros trimmed.
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let exp = a.log10().floor() as i32;
        let mantissa = round_sig(v / 10f64.powi(exp));
        let m = tick_label(mantissa);
        format!("{m}e{exp}")
    }
}

/// A tick label on a linear axis whose ticks are `step` apart: as many decimals as the step
/// needs, trailing zeros dropped (1, 1.005, 1.01 for a step of 0.005, where 3 significant
/// digits would label 1.005 and 1.01 alike), exactly "0" at zero (no "-0" or "1e-17" from
/// rounding); scientific, as [`tick_label`], for values from 100,000 up or below 0.001 when
/// the step is that small too.
pub fn linear_tick_label(v: f64, step: f64) -> String {
    let (a, step) = (v.abs(), step.abs());
    if !(step.is_finite() && step > 0.0) {
        return tick_label(v);
    }
    if a < step * 1e-6 {
        return "0".into();
    }
    if a >= 1e5 || (a < 1e-3 && step < 1e-3) {
        return tick_label(v);
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A linear axis fitted to `lo..=hi` (a 4 % margin each side; a flat series gets ±1 or ±10 %).
pub fn fit_linear_axis(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) || hi < lo {
        return (0.0, 1.0);
    }
    if hi == lo {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    let m = (hi - lo) * 0.04;
    (lo - m, hi + m)
}

/// About `count` ticks at 1-2-5 × 10^k steps inside `lo..=hi`.
pub fn linear_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || count == 0 {
        return Vec::new();
    }
    let raw = (hi - lo) / count as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    // Rounded to the step's decimals: 0.30000000000000004 → 0.3.
    let scale = 10f64.powi((-mag.log10().floor() as i32).max(0));
    (first..=last)
        .map(|i| (i as f64 * step * scale).round() / scale)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ticks chosen for data ranges, and the fitted axis: it may not run past the data by
    /// more than the margin (the old axis ran to ×1.5 each side and labelled one tick, 1.0e0).
    #[test]
    fn log_ticks_are_labelled_1_2_5_steps_inside_an_axis_fitted_to_the_data() {
        for (lo, hi, want) in [
            (0.04, 1.1, vec![0.05, 0.1, 0.2, 0.5, 1.0]),
            (0.003, 0.08, vec![0.005, 0.01, 0.02, 0.05]),
            (0.3, 0.45, vec![0.3, 0.4]),
            (1e-6, 1.0, vec![1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0]),
        ] {
            let (a, b) = fit_log_axis(lo, hi);
            let span = (hi / lo).log10().max(0.05);
            assert!(a < lo && b > hi, "{lo}..{hi}: axis {a}..{b} cuts the data");
            // At most the margin (plus rounding) past the data on each side, in decades.
            assert!(
                (lo / a).log10() <= span * LOG_MARGIN * 1.01 + 0.1
                    && (b / hi).log10() <= span * LOG_MARGIN * 1.01 + 0.1,
                "{lo}..{hi}: axis {a}..{b} runs past the data"
            );
            let ticks = log_ticks(a, b, 10);
            assert_eq!(ticks, want, "{lo}..{hi}");
        }
        let labels: Vec<String> = [0.05, 0.1, 0.2, 0.5, 1.0, 20.0, 512.0, 2e-5, 1e6, 0.3]
            .iter()
            .map(|v| tick_label(*v))
            .collect();
        assert_eq!(
            labels,
            [
                "0.05", "0.1", "0.2", "0.5", "1", "20", "512", "2e-5", "1e6", "0.3"
            ]
        );
    }

    /// Every series gets its own colour and its own marker, from the colour-blind-safe palette.
    #[test]
    fn series_get_distinct_okabe_ito_colours_and_markers() {
        for i in 0..5 {
            for j in 0..i {
                assert_ne!(style(i).0, style(j).0, "{i} {j}");
                assert_ne!(style(i).1, style(j).1, "{i} {j}");
            }
        }
        assert_eq!(style(0).0.hex(), "#0072B2");
    }

    /// Linear ticks close together keep apart (1.005 is not 1.01), and zero is "0".
    #[test]
    fn linear_tick_labels_have_the_decimals_of_their_step() {
        let labels = |ticks: &[f64], step| -> Vec<String> {
            ticks.iter().map(|t| linear_tick_label(*t, step)).collect()
        };
        assert_eq!(
            labels(&[1.0, 1.005, 1.01, 1.015, 1.02], 0.005),
            ["1", "1.005", "1.01", "1.015", "1.02"]
        );
        assert_eq!(
            labels(&[-0.5, 1e-17, 0.5, 1.0], 0.5),
            ["-0.5", "0", "0.5", "1"]
        );
        assert_eq!(labels(&[300.0, 305.0, 320.0], 5.0), ["300", "305", "320"]);
        assert_eq!(labels(&[2e-5, 4e-5], 2e-5), ["2e-5", "4e-5"]);
        assert_eq!(labels(&[2e5, 4e5], 2e5), ["2e5", "4e5"]);
    }

    #[test]
    fn linear_ticks_are_round_and_inside() {
        assert_eq!(
            linear_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        );
        assert_eq!(linear_ticks(-0.93, 0.97, 4), vec![-0.5, 0.0, 0.5]);
        assert_eq!(linear_ticks(13.0, 1987.0, 4), vec![500.0, 1000.0, 1500.0]);
    }
}
