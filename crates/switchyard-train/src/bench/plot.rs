//! The cost–quality picture of a benchmark: the router's sweep and hull, the kNN baselines, the zero router,
//! the single models (labelled), random and oracle, on a log-cost axis. Written as SVG and PNG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::curve::{upper_hull, Point};
use super::run::{points, BenchReport};
use crate::TrainError;

const SIZE: (u32, u32) = (1100, 720);

/// Draws the report into `svg` and `png`.
pub fn plot(report: &BenchReport, title: &str, svg: &Path, png: &Path) -> Result<(), TrainError> {
    draw(&SVGBackend::new(svg, SIZE).into_drawing_area(), report, title)?;
    draw(&BitMapBackend::new(png, SIZE).into_drawing_area(), report, title)
}

fn err(e: impl std::fmt::Display) -> TrainError {
    TrainError::Fit(format!("cannot draw the benchmark plot: {e}"))
}

/// A hull as a polyline for a log-cost axis: segments are straight in linear cost, so each is sampled.
fn densify(hull: &[Point], lo: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for w in hull.windows(2) {
        for k in 0..24 {
            let t = f64::from(k) / 24.0;
            out.push((
                (w[0].cost + t * (w[1].cost - w[0].cost)).max(lo),
                w[0].quality + t * (w[1].quality - w[0].quality),
            ));
        }
    }
    out.extend(hull.last().map(|p| (p.cost.max(lo), p.quality)));
    out
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, report: &BenchReport, title: &str) -> Result<(), TrainError>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(err)?;
    let mut all: Vec<Point> = points(&report.curve);
    all.extend(report.single_models.iter().map(|s| Point { cost: s.cost, quality: s.quality }));
    let positive: Vec<f64> = all.iter().map(|p| p.cost).filter(|c| *c > 0.0).collect();
    let lo = positive.iter().copied().fold(f64::INFINITY, f64::min).min(report.c_max) * 0.7;
    let hi = positive.iter().copied().fold(0.0, f64::max).max(report.c_max) * 1.4;
    let (lo, hi) = if lo.is_finite() && hi > lo && lo > 0.0 { (lo, hi) } else { (1e-6, 1.0) };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("mean cost per prompt (USD, log scale)")
        .y_desc("mean score")
        .x_labels(8)
        .x_label_formatter(&|c| format!("{c:.1e}"))
        .draw()
        .map_err(err)?;
    let clamp = |p: &Point| (p.cost.max(lo), p.quality);

    // Zero router: the hull of the single models, extended flat to the right.
    let singles: Vec<Point> = report.single_models.iter().map(|s| Point { cost: s.cost, quality: s.quality }).collect();
    let zero = upper_hull(&singles);
    let mut zero_line = densify(&zero, lo);
    zero_line.extend(zero.last().map(|p| (hi, p.quality)));
    chart
        .draw_series(LineSeries::new(zero_line, ShapeStyle::from(&BLACK.mix(0.5)).stroke_width(2)))
        .map_err(err)?
        .label("zero router (hull of single models)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.5)));

    let colors = [RGBColor(230, 120, 0), RGBColor(0, 150, 110), RGBColor(150, 80, 200)];
    for ((name, curve), color) in report.baseline_curves.iter().zip(colors) {
        let hull = densify(&upper_hull(&points(curve)), lo);
        chart
            .draw_series(LineSeries::new(hull, ShapeStyle::from(&color).stroke_width(2)))
            .map_err(err)?
            .label(format!("{name} router (hull)"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
    }

    let router = points(&report.curve);
    chart
        .draw_series(router.iter().map(|p| Circle::new(clamp(p), 3, BLUE.mix(0.4).filled())))
        .map_err(err)?
        .label("learned router (sweep points)")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.mix(0.4).filled()));
    let hull = densify(&upper_hull(&router), lo);
    chart
        .draw_series(LineSeries::new(hull, ShapeStyle::from(&BLUE).stroke_width(3)))
        .map_err(err)?
        .label("learned router (hull)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));

    for s in &report.single_models {
        let p = clamp(&Point { cost: s.cost, quality: s.quality });
        chart.draw_series(std::iter::once(TriangleMarker::new(p, 6, BLACK.filled()))).map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(s.model.clone(), (p.0 * 1.05, p.1 + 0.015), ("sans-serif", 13))))
            .map_err(err)?;
    }
    for (name, color) in [("oracle", RED), ("random", MAGENTA)] {
        if let Some(m) = report.baselines.get(name) {
            if let (Some(c), Some(q)) = (m.cost, m.quality) {
                let p = clamp(&Point { cost: c, quality: q });
                chart
                    .draw_series(std::iter::once(Cross::new(p, 7, ShapeStyle::from(&color).stroke_width(2))))
                    .map_err(err)?
                    .label(name)
                    .legend(move |(x, y)| Cross::new((x + 10, y), 5, ShapeStyle::from(&color).stroke_width(2)));
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}
