//! Fig. 2 and Fig. 3 of the paper, drawn with plotters once as SVG and once into an RGB buffer saved as PNG.
//! Text is laid out with the embedded DejaVu Sans (through ab_glyph), so no system font library is needed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::analysis::Analysis;
use super::grid::{Combo, Grid, Measure};
use super::stats::summary;
use crate::{Context, Error, Result};

/// DejaVu Sans (Bitstream Vera licence, see FONT-LICENSE.md).
static FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

type Drawn<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can be drawn on any plotters backend.
pub trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB>;
}

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if !ok {
        return Err(Error::msg("the embedded font could not be loaded"));
    }
    Ok(())
}

/// Writes `stem.svg` and `stem.png`; returns their paths.
pub fn render(fig: &impl Figure, stem: &Path) -> Result<(PathBuf, PathBuf)> {
    register_font()?;
    let (w, h) = fig.size();
    let svg = stem.with_extension("svg");
    {
        let root = SVGBackend::new(&svg, (w, h)).into_drawing_area();
        fig.draw(&root)
            .map_err(|e| Error::msg(format!("drawing {}: {e}", svg.display())))?;
        root.present()
            .map_err(|e| Error::msg(format!("writing {}: {e}", svg.display())))?;
    }
    let png = stem.with_extension("png");
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        fig.draw(&root)
            .map_err(|e| Error::msg(format!("drawing {}: {e}", png.display())))?;
        root.present()
            .map_err(|e| Error::msg(format!("drawing {}: {e}", png.display())))?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb).expect("the buffer has w × h RGB pixels");
    img.save_with_format(&png, image::ImageFormat::Png)
        .context(png.display())?;
    Ok((svg, png))
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// Red (lowest) → grey → blue (highest), as the paper colours contexts by their baseline score.
pub fn rank_colour(rank: Option<usize>, count: usize) -> RGBColor {
    let Some(rank) = rank else {
        return RGBColor(0, 0, 0);
    };
    let t = if count > 1 {
        rank as f64 / (count - 1) as f64
    } else {
        0.5
    };
    let (a, b, u) = if t < 0.5 {
        ((215.0, 38.0, 30.0), (150.0, 150.0, 150.0), t * 2.0)
    } else {
        ((150.0, 150.0, 150.0), (30.0, 60.0, 200.0), t * 2.0 - 1.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Value range with a margin, always inside [0, 1] and showing chance (0.5) when close.
fn value_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (0.5f64, 0.5f64);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (
        ((lo - 0.03) * 20.0).floor().max(0.0) / 20.0,
        ((hi + 0.03) * 20.0).ceil().min(20.0) / 20.0,
    )
}

/// The label of category `x` when `x` is (close to) an integer index into `names`.
fn category(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 || i as usize >= names.len() {
        return String::new();
    }
    names[i as usize].clone()
}

/// Marker of a row: baseline ●, adapted scalars ×, any other adapted variant ▲.
fn marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    variant: Option<&str>,
    at: (i32, i32),
    colour: RGBColor,
) -> Drawn<DB> {
    match variant {
        None => area.draw(&Circle::new(at, 4, colour.filled())),
        Some("scalars") => area.draw(&Cross::new(at, 5, colour.stroke_width(2))),
        Some(_) => area.draw(&TriangleMarker::new(at, 5, colour.filled())),
    }
}

fn variant_label(v: &str) -> String {
    format!("adapted {v}")
}

/// Fig. 2: every (net, method) combination's baseline and adapted scores per context, one panel per test set.
pub struct Fig2<'a> {
    pub grid: &'a Grid,
    pub analysis: &'a Analysis,
}

const HEADER: u32 = 90;
const PANEL: u32 = 420;

impl Figure for Fig2<'_> {
    fn size(&self) -> (u32, u32) {
        (1500, HEADER + PANEL * self.grid.test_sets().len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        let g = self.grid;
        let n_ctx = g.contexts.len();
        root.fill(&WHITE)?;
        let (head, body) = root.split_vertically(HEADER);
        head.draw_text(
            "2AFC of baseline and adapted metrics per context (each (net, method) combination is one point)",
            &font(22),
            (20, 8),
        )?;
        let small = font(16);
        let width = |text: &str| head.estimate_text_size(text, &small).map(|(w, _)| w as i32);
        let mut x = 20;
        marker(&head, None, (x + 6, 52), BLACK)?;
        head.draw_text("baseline", &small, (x + 16, 44))?;
        x += 40 + width("baseline")?;
        for v in &g.variants {
            marker(&head, Some(v), (x + 6, 52), BLACK)?;
            let text = format!("{}: mean ± sd over seeds", variant_label(v));
            head.draw_text(&text, &small, (x + 16, 44))?;
            x += 40 + width(&text)?;
        }
        let colour_set = match g.colour_set() {
            Measure::Test(t) | Measure::Bapps(t) => t,
        };
        let text = format!("colour: context's mean baseline {colour_set} 2AFC, low");
        head.draw_text(&text, &small, (x, 44))?;
        x += 8 + width(&text)?;
        for i in 0..40 {
            let c = rank_colour(Some(i), 40);
            head.draw(&Rectangle::new(
                [(x + i as i32 * 3, 44), (x + i as i32 * 3 + 3, 60)],
                c.filled(),
            ))?;
        }
        head.draw_text("high", &small, (x + 126, 44))?;
        head.draw_text(
            "x: context (paper ranking number, or # in report.md's context table); dashed: chance (0.5)",
            &font(14),
            (20, 70),
        )?;

        let names: Vec<String> = g
            .contexts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if c.name.len() <= 3 {
                    c.name.clone()
                } else {
                    format!("#{i}")
                }
            })
            .collect();
        let k = g.combos.len().max(1) as f64;
        let offset = |j: usize| ((j as f64 + 0.5) / k - 0.5) * 0.75;
        let panels = body.split_evenly((g.test_sets().len(), 1));
        for (panel, m) in panels.iter().zip(g.test_sets()) {
            let mut values = Vec::new();
            for c in &g.contexts {
                for combo in &g.combos {
                    values.extend(g.baseline(combo, &c.name, &m));
                    for v in &g.variants {
                        if let Some(s) = summary(&g.adapted_seeds(v, combo, &c.name, &m)) {
                            values.extend([s.mean - s.sd, s.mean + s.sd]);
                        }
                    }
                }
            }
            let (lo, hi) = value_range(values);
            let mut chart = ChartBuilder::on(panel)
                .caption(g.label(&m), font(20))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(65)
                .build_cartesian_2d(-0.5..(n_ctx as f64 - 0.5), lo..hi)?;
            let fmt = |x: &f64| category(&names, *x);
            chart
                .configure_mesh()
                .x_labels(n_ctx.max(1))
                .x_label_formatter(&fmt)
                .disable_x_mesh()
                .light_line_style(RGBColor(238, 238, 238))
                .max_light_lines(1)
                .x_desc("context")
                .y_desc("2AFC")
                .label_style(font(14))
                .axis_desc_style(font(16))
                .draw()?;
            if lo < 0.5 && hi > 0.5 {
                chart.draw_series(DashedLineSeries::new(
                    [(-0.5, 0.5), (n_ctx as f64 - 0.5, 0.5)],
                    6,
                    4,
                    RGBColor(120, 120, 120).into(),
                ))?;
            }
            for (ci, c) in g.contexts.iter().enumerate() {
                let colour = rank_colour(self.analysis.context_rank[ci], n_ctx);
                for (j, combo) in g.combos.iter().enumerate() {
                    let x = ci as f64 + offset(j);
                    if let Some(b) = g.baseline(combo, &c.name, &m) {
                        chart.draw_series(std::iter::once(Circle::new((x, b), 3, colour.filled())))?;
                    }
                    for (vi, v) in g.variants.iter().enumerate() {
                        let Some(s) = summary(&g.adapted_seeds(v, combo, &c.name, &m)) else {
                            continue;
                        };
                        // Other variants a little to the right, so they do not hide the scalars of the combination.
                        let x = x + vi as f64 * 0.3 * 0.75 / k;
                        if s.n > 1 {
                            chart.draw_series(std::iter::once(ErrorBar::new_vertical(
                                x,
                                s.mean - s.sd,
                                s.mean,
                                s.mean + s.sd,
                                colour.stroke_width(1),
                                5,
                            )))?;
                        }
                        let at = (x, s.mean);
                        if v == "scalars" {
                            chart.draw_series(std::iter::once(Cross::new(at, 5, colour.stroke_width(2))))?;
                        } else {
                            chart.draw_series(std::iter::once(TriangleMarker::new(at, 5, colour.filled())))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Fig. 3: per (net, method) combination the average over contexts of the baseline and adapted scores, one panel
/// per test set (horizontal bars so that the combination names stay readable).
pub struct Fig3<'a> {
    pub grid: &'a Grid,
}

/// Bar colours: baseline grey, adapted variants blue, orange, green, ...
const SERIES: [RGBColor; 5] = [
    RGBColor(160, 160, 160),
    RGBColor(40, 90, 200),
    RGBColor(230, 120, 20),
    RGBColor(40, 160, 70),
    RGBColor(150, 60, 170),
];

impl Fig3<'_> {
    /// Per row (baseline, then each variant) and combination: mean and sd over contexts of the per-context score
    /// (seed-means for adapted metrics).
    pub fn bars(&self, m: &Measure) -> Vec<Vec<Option<(f64, f64)>>> {
        let g = self.grid;
        let rows = std::iter::once(None).chain(g.variants.iter().map(Some));
        rows.map(|v| {
            g.combos
                .iter()
                .map(|combo| {
                    let xs: Vec<f64> = g
                        .contexts
                        .iter()
                        .filter_map(|c| match v {
                            None => g.baseline(combo, &c.name, m),
                            Some(v) => g.adapted(v, combo, &c.name, m),
                        })
                        .collect();
                    summary(&xs).map(|s| (s.mean, s.sd))
                })
                .collect()
        })
        .collect()
    }
}

fn combo_name(c: &Combo) -> String {
    format!("{} / {}", c.0, c.1)
}

impl Figure for Fig3<'_> {
    fn size(&self) -> (u32, u32) {
        let panels = self.grid.test_sets().len() as u32;
        let rows = 1 + self.grid.variants.len() as u32;
        (
            60 + 560 * panels,
            150 + (self.grid.combos.len() as u32 * rows * 12).max(160),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        let g = self.grid;
        root.fill(&WHITE)?;
        let (head, body) = root.split_vertically(75);
        head.draw_text(
            "Average 2AFC over contexts per loss network / comparison method",
            &font(22),
            (20, 8),
        )?;
        let small = font(16);
        let mut x = 20;
        let labels = std::iter::once("baseline".to_string()).chain(g.variants.iter().map(|v| variant_label(v)));
        for (i, label) in labels.enumerate() {
            let c = SERIES[i % SERIES.len()];
            head.draw(&Rectangle::new([(x, 44), (x + 18, 58)], c.filled()))?;
            head.draw_text(&label, &small, (x + 24, 42))?;
            x += 50 + head.estimate_text_size(&label, &small)?.0 as i32;
        }
        head.draw_text(
            "bars: mean over contexts; whiskers: ± sd over contexts",
            &small,
            (x + 10, 42),
        )?;

        let names: Vec<String> = g.combos.iter().rev().map(combo_name).collect();
        let n = g.combos.len();
        let panels = body.split_evenly((1, g.test_sets().len()));
        for (pi, (panel, m)) in panels.iter().zip(g.test_sets()).enumerate() {
            let bars = self.bars(&m);
            let values = bars.iter().flatten().flatten().flat_map(|(mu, sd)| [mu - sd, mu + sd]);
            let (lo, hi) = value_range(values);
            let fmt = |y: &f64| category(&names, *y);
            let mut chart = ChartBuilder::on(panel)
                .caption(g.label(&m), font(18))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(if pi == 0 { 180 } else { 20 })
                .build_cartesian_2d(lo..hi, -0.5..(n as f64 - 0.5))?;
            let no_label = |_: &f64| String::new();
            chart
                .configure_mesh()
                .y_labels(n.max(1))
                .y_label_formatter(if pi == 0 { &fmt } else { &no_label })
                .disable_y_mesh()
                .light_line_style(RGBColor(238, 238, 238))
                .max_light_lines(1)
                .x_desc("2AFC")
                .label_style(font(14))
                .axis_desc_style(font(16))
                .draw()?;
            let rows = bars.len() as f64;
            for (ri, row) in bars.iter().enumerate() {
                let colour = SERIES[ri % SERIES.len()];
                for (j, bar) in row.iter().enumerate() {
                    let Some((mu, sd)) = bar else { continue };
                    // Combinations listed top to bottom; the baseline bar on top within a group.
                    let y0 = (n - 1 - j) as f64 + 0.4 - 0.8 * (ri as f64 + 1.0) / rows;
                    let y1 = y0 + 0.8 / rows;
                    chart.draw_series(std::iter::once(Rectangle::new([(lo, y0), (*mu, y1)], colour.filled())))?;
                    chart.draw_series(std::iter::once(ErrorBar::new_horizontal(
                        (y0 + y1) / 2.0,
                        mu - sd,
                        *mu,
                        mu + sd,
                        BLACK.stroke_width(1),
                        4,
                    )))?;
                }
            }
            if lo < 0.5 && hi > 0.5 {
                chart.draw_series(DashedLineSeries::new(
                    [(0.5, -0.5), (0.5, n as f64 - 0.5)],
                    6,
                    4,
                    RGBColor(120, 120, 120).into(),
                ))?;
            }
        }
        Ok(())
    }
}
