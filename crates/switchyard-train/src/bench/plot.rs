//! The cost–quality picture of a benchmark, written as SVG and PNG: on the left the whole picture (log cost
//! axis, quality 0–1), on the right a zoom on the region where the routers' hulls differ (the costs of their
//! vertices, the qualities of the hulls there), and the legend in a strip below both so that it covers no
//! curve.
//!
//! Each router's hull has its own colour and line pattern; the learned router is drawn last, on top.

use std::path::Path;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::curve::{hull_quality, upper_hull, Point};
use super::plot_axis::{clip, cost_ticks, densify, money, quality_digits, Frame};
use super::run::{points, BenchReport, Metrics};
use crate::TrainError;

const SIZE: (u32, u32) = (1700, 900);
const LEGEND_HEIGHT: u32 = 120;

/// How a hull is drawn.
#[derive(Clone, Copy)]
struct Style {
    color: RGBColor,
    width: u32,
    /// Dash length and gap in pixels; `None` for a solid line.
    dash: Option<(u32, u32)>,
    marker: Marker,
}

#[derive(Clone, Copy, PartialEq)]
enum Marker {
    None,
    Dot,
    Square,
    Triangle,
}

const LEARNED: Style = Style { color: RGBColor(20, 70, 220), width: 3, dash: None, marker: Marker::Dot };
const ORACLE: Style = Style { color: RGBColor(200, 30, 30), width: 2, dash: Some((2, 4)), marker: Marker::None };
const ZERO: Style = Style { color: RGBColor(110, 110, 110), width: 2, dash: Some((10, 6)), marker: Marker::None };
const SWEEP: RGBAColor = RGBAColor(120, 150, 240, 0.45);
const RANDOM: RGBColor = RGBColor(200, 0, 200);
const KNN: [Style; 3] = [
    Style { color: RGBColor(235, 130, 0), width: 2, dash: Some((5, 4)), marker: Marker::Triangle },
    Style { color: RGBColor(0, 150, 110), width: 2, dash: Some((14, 5)), marker: Marker::Square },
    Style { color: RGBColor(150, 80, 200), width: 2, dash: Some((3, 3)), marker: Marker::None },
];

/// One hull to draw: its name in the legend, its points (already the hull) and its style.
struct Hull {
    label: String,
    hull: Vec<Point>,
    style: Style,
}

/// Draws the report into `svg` and `png`.
pub fn plot(report: &BenchReport, title: &str, svg: &Path, png: &Path) -> Result<(), TrainError> {
    draw(&SVGBackend::new(svg, SIZE).into_drawing_area(), report, title)?;
    draw(&BitMapBackend::new(png, SIZE).into_drawing_area(), report, title)
}

pub(super) fn err(e: impl std::fmt::Display) -> TrainError {
    TrainError::Fit(format!("cannot draw the benchmark plot: {e}"))
}

fn with_aiq(name: &str, m: Option<&Metrics>) -> String {
    match m {
        Some(Metrics { aiq, aiq_ci: Some(ci), .. }) => format!("{name}: AIQ {aiq:.4} [{:.4}, {:.4}]", ci.lo, ci.hi),
        Some(m) => format!("{name}: AIQ {:.4}", m.aiq),
        None => name.to_string(),
    }
}

/// The hulls, bottom to top: zero router, oracle, kNN routers, learned router.
fn hulls(report: &BenchReport) -> Vec<Hull> {
    let singles: Vec<Point> = report.single_models.iter().map(|s| Point { cost: s.cost, quality: s.quality }).collect();
    let zero = report.baselines.get("zero_router");
    let mut out = vec![Hull {
        label: with_aiq("zero router (hull of single models)", zero),
        hull: upper_hull(&singles),
        style: ZERO,
    }];
    if !report.oracle_curve.is_empty() {
        out.push(Hull {
            label: with_aiq("oracle (knows every score)", report.baselines.get("oracle")),
            hull: upper_hull(&points(&report.oracle_curve)),
            style: ORACLE,
        });
    }
    for ((name, curve), style) in report.baseline_curves.iter().zip(KNN) {
        out.push(Hull {
            label: with_aiq(&format!("{name} router"), report.baselines.get(name)),
            hull: upper_hull(&points(curve)),
            style,
        });
    }
    let learned = Some(&report.metrics.curve);
    out.push(Hull {
        label: with_aiq("learned router", learned),
        hull: upper_hull(&points(&report.curve)),
        style: LEARNED,
    });
    out
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, report: &BenchReport, title: &str) -> Result<(), TrainError>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(err)?;
    let area = area.titled(title, ("sans-serif", 22)).map_err(err)?;
    let (panels, legend) = area.split_vertically(area.dim_in_pixel().1.saturating_sub(LEGEND_HEIGHT));
    let (left, right) = panels.split_horizontally(area.dim_in_pixel().0 * 11 / 20);
    let hulls = hulls(report);

    // Whole picture: every point, from a bit left of the cheapest to a bit right of the dearest.
    let mut all: Vec<Point> = points(&report.curve);
    all.extend(points(&report.oracle_curve));
    all.extend(report.single_models.iter().map(|s| Point { cost: s.cost, quality: s.quality }));
    let positive: Vec<f64> = all.iter().map(|p| p.cost).filter(|c| *c > 0.0).collect();
    let lo = positive.iter().copied().fold(f64::INFINITY, f64::min).min(report.c_max) * 0.7;
    let hi = positive.iter().copied().fold(0.0, f64::max).max(report.c_max) * 1.4;
    let (lo, hi) = if lo.is_finite() && hi > lo && lo > 0.0 { (lo, hi) } else { (1e-6, 1.0) };
    let whole = Frame { x: (lo, hi), y: (0.0, 1.0) };

    // The zoom: costs between the cheapest and the dearest single model; the hulls' qualities there.
    let zoom = zoom_frame(&hulls, whole);
    panel(&left, report, &hulls, whole, "all routers", Some(zoom))?;
    panel(&right, report, &hulls, zoom, "zoom: where the routers' hulls differ", None)?;
    draw_legend(&legend, &hulls)?;
    area.present().map_err(err)
}

/// The zoomed region, where the routers differ: x over the costs of the routers' hull vertices (the zero
/// router's are single models) with a margin, at least a factor 1.6 wide; y the range of those hulls over it,
/// with a margin. The oracle (above everything, by design) and the single models below the hulls may fall
/// outside.
fn zoom_frame(hulls: &[Hull], whole: Frame) -> Frame {
    let routers: Vec<&Hull> = hulls.iter().filter(|h| h.style.color != ORACLE.color).collect();
    let costs: Vec<f64> = routers.iter().flat_map(|h| h.hull.iter().map(|p| p.cost)).filter(|c| *c > 0.0).collect();
    let (c0, c1) = (costs.iter().copied().fold(f64::INFINITY, f64::min), costs.iter().copied().fold(0.0, f64::max));
    if !(c0.is_finite() && c1 > 0.0) {
        return whole;
    }
    let centre = (c0 * c1).sqrt();
    let half = ((c1 / c0).sqrt() * (c1 / c0).powf(0.06)).max(1.6f64.sqrt());
    let x = (centre / half, centre * half);
    let (mut qlo, mut qhi) = (f64::INFINITY, f64::NEG_INFINITY);
    for h in &routers {
        let Some(first) = h.hull.first() else {
            continue;
        };
        // Hulls are non-decreasing: lowest at the left edge (or their first point), highest at the right edge.
        let left = if first.cost > x.0 { first.quality } else { hull_quality(&h.hull, x.0) };
        (qlo, qhi) = (qlo.min(left), qhi.max(hull_quality(&h.hull, x.1)));
    }
    if !(qlo.is_finite() && qhi.is_finite()) {
        return whole;
    }
    let margin = ((qhi - qlo) * 0.08).max(0.005);
    Frame { x, y: ((qlo - margin).max(0.0), (qhi + margin).min(1.0)) }
}

// Long: one panel drawn top to bottom (axes, grid, hull, curves, points, legend); each part is a few lines of
// plotting that reads best in drawing order.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &BenchReport,
    hulls: &[Hull],
    frame: Frame,
    caption: &str,
    zoom: Option<Frame>,
) -> Result<(), TrainError>
where
    DB::ErrorType: 'static,
{
    let (bold, light) = cost_ticks(frame.x.0, frame.x.1);
    let digits = quality_digits(frame.y.1 - frame.y.0);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(58)
        .build_cartesian_2d(
            (frame.x.0..frame.x.1).log_scale().with_key_points(bold).with_light_points(light),
            frame.y.0..frame.y.1,
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("mean cost per prompt (USD, log scale)")
        .y_desc("mean score")
        .x_label_formatter(&|c| money(*c))
        .y_label_formatter(&|q| format!("{q:.digits$}"))
        .y_labels(12)
        .light_line_style(RGBColor(232, 232, 232))
        .bold_line_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(err)?;

    if let Some(z) = zoom {
        let corners = [(z.x.0, z.y.0), (z.x.1, z.y.0), (z.x.1, z.y.1), (z.x.0, z.y.1), (z.x.0, z.y.0)];
        let style = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(1);
        chart.draw_series(DashedLineSeries::new(corners, 4, 4, style)).map_err(err)?;
    }
    // The learned router's sweep points, underneath everything.
    let faint = SWEEP.filled();
    let sweep: Vec<(f64, f64)> =
        points(&report.curve).iter().map(|p| (p.cost, p.quality)).filter(|p| frame.contains(*p)).collect();
    chart.draw_series(sweep.into_iter().map(|p| Circle::new(p, 3, faint))).map_err(err)?;

    for h in hulls {
        let mut line = densify(&h.hull);
        // R̃ is flat right of the dearest point, up to c_max.
        if let Some(last) = h.hull.last().filter(|p| p.cost < report.c_max) {
            line.push((report.c_max, last.quality));
        }
        let style = ShapeStyle::from(&h.style.color).stroke_width(h.style.width);
        for run in clip(&line, frame) {
            match h.style.dash {
                None => chart.draw_series(LineSeries::new(run, style)).map_err(err)?,
                Some((d, g)) => chart.draw_series(DashedLineSeries::new(run, d, g, style)).map_err(err)?,
            };
        }
        let vertices = h.hull.iter().map(|p| (p.cost, p.quality)).filter(|p| frame.contains(*p));
        let color = h.style.color;
        for p in vertices {
            match h.style.marker {
                Marker::None => {}
                Marker::Dot => {
                    chart.draw_series(std::iter::once(Circle::new(p, 4, color.filled()))).map_err(err)?;
                }
                Marker::Square => {
                    let el = EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], color.stroke_width(2));
                    chart.draw_series(std::iter::once(el)).map_err(err)?;
                }
                Marker::Triangle => {
                    chart
                        .draw_series(std::iter::once(TriangleMarker::new(p, 5, color.stroke_width(2))))
                        .map_err(err)?;
                }
            }
        }
    }

    for s in &report.single_models {
        let p = (s.cost, s.quality);
        if frame.contains(p) {
            chart.draw_series(std::iter::once(TriangleMarker::new(p, 7, BLACK.filled()))).map_err(err)?;
            // Labels near the right edge go to the left of their marker, so they are not cut off.
            let right = (s.cost / frame.x.0).ln() / (frame.x.1 / frame.x.0).ln() > 0.75;
            let dx = if right { -8 - 7 * s.model.len() as i32 } else { 8 };
            let label = EmptyElement::at(p) + Text::new(s.model.clone(), (dx, -18), ("sans-serif", 13));
            chart.draw_series(std::iter::once(label)).map_err(err)?;
        }
    }
    for (name, color) in [("oracle_point", ORACLE.color), ("random", RANDOM)] {
        let Some((Some(c), Some(q))) = report.baselines.get(name).map(|m| (m.cost, m.quality)) else {
            continue;
        };
        if frame.contains((c, q)) {
            let cross = Cross::new((c, q), 7, ShapeStyle::from(&color).stroke_width(3));
            chart.draw_series(std::iter::once(cross)).map_err(err)?;
        }
    }
    Ok(())
}

/// The legend, in its own strip: a sample of each hull's line and marker, then the point markers.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, hulls: &[Hull]) -> Result<(), TrainError>
where
    DB::ErrorType: 'static,
{
    let (w, _) = area.dim_in_pixel();
    let col = (w as i32 - 40) / 3;
    let font = ("sans-serif", 15).into_font();
    let mut slot = 0;
    let mut next = || {
        let at = (20 + (slot % 3) * col, 18 + (slot / 3) * 26);
        slot += 1;
        at
    };
    // The learned router first, as in reading order it matters most.
    for h in hulls.iter().rev() {
        let (x, y) = next();
        let style = ShapeStyle::from(&h.style.color).stroke_width(h.style.width);
        let sample = vec![(x, y), (x + 46, y)];
        match h.style.dash {
            None => area.draw(&PathElement::new(sample, style)).map_err(err)?,
            Some((d, g)) => area.draw(&DashedPathElement::new(sample, d, g, style)).map_err(err)?,
        }
        let color = h.style.color;
        match h.style.marker {
            Marker::None => {}
            Marker::Dot => area.draw(&Circle::new((x + 23, y), 4, color.filled())).map_err(err)?,
            Marker::Square => {
                area.draw(&Rectangle::new([(x + 19, y - 4), (x + 27, y + 4)], color.stroke_width(2))).map_err(err)?
            }
            Marker::Triangle => area.draw(&TriangleMarker::new((x + 23, y), 5, color.stroke_width(2))).map_err(err)?,
        }
        area.draw(&Text::new(h.label.clone(), (x + 56, y - 8), font.clone())).map_err(err)?;
    }
    let (x, y) = next();
    area.draw(&Circle::new((x + 23, y), 3, SWEEP.filled())).map_err(err)?;
    area.draw(&Text::new("learned router: sweep points (every knob value)", (x + 56, y - 8), font.clone()))
        .map_err(err)?;
    let (x, y) = next();
    area.draw(&TriangleMarker::new((x + 23, y), 7, BLACK.filled())).map_err(err)?;
    area.draw(&Text::new("single models", (x + 56, y - 8), font.clone())).map_err(err)?;
    for (label, color) in [
        ("oracle point: per prompt the cheapest best-scoring model", ORACLE.color),
        ("random (uniform over models)", RANDOM),
    ] {
        let (x, y) = next();
        area.draw(&Cross::new((x + 23, y), 7, ShapeStyle::from(&color).stroke_width(3))).map_err(err)?;
        area.draw(&Text::new(label, (x + 56, y - 8), font.clone())).map_err(err)?;
    }
    Ok(())
}
