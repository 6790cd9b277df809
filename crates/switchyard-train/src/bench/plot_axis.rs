//! Geometry for the benchmark plot: the log-cost axis's ticks and labels, hulls as polylines, and clipping
//! polylines to a panel's frame (plotters draws outside the plotting area otherwise).

use super::curve::Point;

/// A panel's data ranges: cost (USD, log axis) and quality.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Frame {
    /// Cost range (both > 0).
    pub x: (f64, f64),
    /// Quality range.
    pub y: (f64, f64),
}

impl Frame {
    /// Whether a (cost, quality) point lies inside.
    pub(super) fn contains(&self, (x, y): (f64, f64)) -> bool {
        self.x.0 <= x && x <= self.x.1 && self.y.0 <= y && y <= self.y.1
    }
}

/// Tick values for a log cost axis over `[lo, hi]`: labelled ones at 1, 2 and 5 × 10^k (only 1 × 10^k when
/// the range spans more than five decades; when it spans too little for four labels, every 1–9 × 10^k, then
/// every 0.5, 0.2 or 0.1 × 10^k), and grid lines at every 1–9 × 10^k (or at the labels, when finer).
pub(super) fn cost_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return (Vec::new(), Vec::new());
    }
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    // Mantissas in tenths: 10 = 1.0, 25 = 2.5.
    let at = |tenths: &mut dyn Iterator<Item = u32>| -> Vec<f64> {
        let tenths: Vec<u32> = tenths.collect();
        (k0..=k1)
            .flat_map(|k| tenths.iter().map(move |&m| f64::from(m) / 10.0 * 10f64.powi(k)))
            .filter(|v| (lo * (1.0 - 1e-9)..=hi * (1.0 + 1e-9)).contains(v))
            .collect()
    };
    let all = at(&mut (10..=90).step_by(10));
    let mut bold = if k1 - k0 > 5 { at(&mut std::iter::once(10)) } else { at(&mut [10, 20, 50].into_iter()) };
    for step in [10, 5, 2, 1] {
        if bold.len() >= 4 {
            break;
        }
        bold = at(&mut (10..100).step_by(step));
    }
    let light = if bold.len() > all.len() { bold.clone() } else { all };
    (bold, light)
}

/// Digits a quality axis over a range this wide needs for distinct labels.
pub(super) fn quality_digits(span: f64) -> usize {
    match span {
        s if s >= 0.2 => 2,
        s if s >= 0.02 => 3,
        _ => 4,
    }
}

/// A cost label, compact: `$0.002`, `$0.5`, `$20` from 0.001 up; `$2e-4` below.
pub(super) fn money(v: f64) -> String {
    if !(v > 0.0 && v.is_finite()) {
        return "$0".to_string();
    }
    let k = (v.log10() + 1e-9).floor() as i32;
    let m = v / 10f64.powi(k);
    let mantissa = if (m - m.round()).abs() < 1e-6 { format!("{}", m.round()) } else { format!("{m:.1}") };
    if k >= -3 {
        let decimals = usize::try_from(-k).unwrap_or(0) + usize::from(mantissa.contains('.'));
        format!("${v:.decimals$}")
    } else {
        format!("${mantissa}e{k}")
    }
}

/// A hull as a polyline for a log-cost axis: its segments are straight in linear cost, so each is sampled.
pub(super) fn densify(hull: &[Point]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for w in hull.windows(2) {
        for k in 0..24 {
            let t = f64::from(k) / 24.0;
            out.push((w[0].cost + t * (w[1].cost - w[0].cost), w[0].quality + t * (w[1].quality - w[0].quality)));
        }
    }
    out.extend(hull.last().map(|p| (p.cost, p.quality)));
    out
}

/// The parts of a polyline inside `frame` (clipped in log-cost × quality space, where the plot is linear).
pub(super) fn clip(line: &[(f64, f64)], frame: Frame) -> Vec<Vec<(f64, f64)>> {
    let (xlo, xhi) = (frame.x.0.log10(), frame.x.1.log10());
    let to = |(x, y): (f64, f64)| ((x.max(frame.x.0 * 1e-3)).log10(), y);
    let from = |(x, y): (f64, f64)| (10f64.powf(x), y);
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false;
    for w in line.windows(2) {
        let (a, b) = (to(w[0]), to(w[1]));
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        // Liang–Barsky: the segment's parameter range inside the frame.
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        let mut visible = true;
        for (p, q) in [(-dx, a.0 - xlo), (dx, xhi - a.0), (-dy, a.1 - frame.y.0), (dy, frame.y.1 - a.1)] {
            if p == 0.0 {
                visible &= q >= 0.0;
            } else if p < 0.0 {
                t0 = t0.max(q / p);
            } else {
                t1 = t1.min(q / p);
            }
        }
        if !visible || t0 > t1 {
            open = false;
            continue;
        }
        let start = from((a.0 + t0 * dx, a.1 + t0 * dy));
        let end = from((a.0 + t1 * dx, a.1 + t1 * dy));
        match runs.last_mut() {
            Some(run) if open && t0 == 0.0 => run.push(end),
            _ => runs.push(vec![start, end]),
        }
        open = t1 == 1.0;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_labels() {
        let (bold, light) = cost_ticks(1.5e-5, 3e-3);
        let labels: Vec<String> = bold.iter().map(|v| money(*v)).collect();
        assert_eq!(labels, ["$2e-5", "$5e-5", "$1e-4", "$2e-4", "$5e-4", "$0.001", "$0.002"]);
        assert_eq!(light.len(), 8 + 9 + 3);
        // Less than a decade: every 1–9 × 10^k is labelled.
        let (bold, _) = cost_ticks(2.5e-4, 9.5e-4);
        assert_eq!(bold.len(), 7);
        // Less than a factor 2: halves, then fifths.
        let (bold, light) = cost_ticks(3.8e-5, 6.3e-5);
        let labels: Vec<String> = bold.iter().map(|v| money(*v)).collect();
        assert_eq!(labels, ["$4e-5", "$4.5e-5", "$5e-5", "$5.5e-5", "$6e-5"]);
        assert_eq!(light, bold);
        assert_eq!(quality_digits(0.015), 4);
        assert_eq!(money(0.5), "$0.5");
        assert_eq!(money(20.0), "$20");
        assert_eq!(money(0.0015), "$0.0015");
    }

    #[test]
    fn clipping_keeps_the_inside_parts() {
        let frame = Frame { x: (1e-3, 1e-1), y: (0.0, 1.0) };
        // Inside, out through the top, back in, then out to the right.
        let line = [(1e-3, 0.5), (1e-2, 0.9), (1e-2, 1.5), (2e-2, 0.8), (1.0, 0.8)];
        let runs = clip(&line, frame);
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(runs[0].len(), 3);
        assert!((runs[0][2].1 - 1.0).abs() < 1e-12);
        let last = runs[1].last().unwrap();
        assert!((last.0 - 0.1).abs() < 1e-12 && (last.1 - 0.8).abs() < 1e-12);
        assert!(clip(&[(1.0, 2.0), (2.0, 3.0)], frame).is_empty());
    }
}
