//! PNG charts for run reports: line charts, scatter plots, small multiples, stacked bars,
//! heatmaps with colour bars and architecture drawings.
//!
//! Text uses the bundled DejaVu Sans (`assets/DejaVuSans.ttf`, licence beside it), so no system
//! fonts are needed. Every function renders into memory, writes the PNG to a temporary file in
//! the destination folder and renames it over `path`, so a reader never sees a half-written
//! image. Non-finite values (NaN, +-inf) and values beyond +-1e100 are skipped; empty inputs
//! and single points give a valid chart with a non-degenerate axis range.

use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Error, Result};

/// One named set of points: a line in [`line_chart`], a group in [`scatter`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// One panel of [`scatter_grid`]: (panel title, x label, y label, points).
pub type Panel = (String, String, String, Vec<(f64, f64)>);

/// A box in a [`graph`] drawing. `x`, `y` in [0, 1]: (0, 0) is the top left corner of the
/// drawing, (1, 1) the bottom right. The label may hold several lines separated by `\n`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub colour: (u8, u8, u8),
}

/// An arrow in a [`graph`] drawing, from node index `from` to node index `to` (indices into
/// the node slice; edges naming a missing node are skipped). `from == to` draws a loop.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphEdge {
    pub from: usize,
    pub to: usize,
    pub label: String,
    pub colour: (u8, u8, u8),
    pub dashed: bool,
}

/// Size of the single-chart images ([`line_chart`], [`scatter`], [`stacked_bars`]).
pub const CHART_SIZE: (u32, u32) = (900, 600);
/// Size of one panel of [`scatter_grid`].
pub const GRID_PANEL: (u32, u32) = (420, 340);
/// Size of one map (with its colour bar) in [`heatmaps`].
pub const HEATMAP_PANEL: (u32, u32) = (480, 440);
/// Height of the title band above [`scatter_grid`] and [`heatmaps`] panels.
pub const TITLE_BAND: u32 = 44;
/// Largest width or height of any image.
pub const MAX_SIDE: u32 = 8192;
/// Heatmaps per row in [`heatmaps`]; more wrap onto further rows.
pub const HEATMAP_COLS: usize = 4;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const LEGEND_WIDTH: u32 = 180;
const MARKER_MAX: usize = 60;
const LIMIT: f64 = 1e100;

// ----------------------------------------------------------------------------------------------
// Public charts
// ----------------------------------------------------------------------------------------------

/// Lines, one per series, each in its own colour, with a legend of the named series. A
/// non-finite point breaks its line; short series (<= 60 points) also get point markers.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let segments: Vec<Vec<Vec<(f64, f64)>>> =
        series.iter().map(|s| split_segments(&s.points)).collect();
    let all = || segments.iter().flatten().flatten().copied();
    let xr = padded(bounds(all().map(|p| p.0)));
    let yr = padded(bounds(all().map(|p| p.1)));
    let corner = emptiest_corner(
        segments.iter().flatten().flat_map(|seg| sample_path(seg)),
        xr,
        yr,
    );
    render(path, CHART_SIZE, |root| {
        let mut chart = cartesian(root, title, xr, yr, 24)?;
        draw_mesh(&mut chart, x_label, y_label, xr, yr)?;
        let mut named = false;
        for (i, (s, segs)) in series.iter().zip(&segments).enumerate() {
            let c = colour(i);
            let style = c.stroke_width(2);
            let ann =
                chart.draw_series(segs.iter().map(|seg| PathElement::new(seg.clone(), style)))?;
            if !s.name.is_empty() {
                named = true;
                ann.label(s.name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(2))
                });
            }
            let n: usize = segs.iter().map(Vec::len).sum();
            if n <= MARKER_MAX {
                chart.draw_series(
                    segs.iter()
                        .flatten()
                        .map(|&p| Circle::new(p, 3, c.filled())),
                )?;
            }
        }
        if named {
            draw_legend(&mut chart, corner)?;
        }
        Ok(())
    })
}

/// Points, one colour per group, with a legend of the named groups. `highlight` (e.g. a Pareto
/// front) is drawn on top in black as markers joined by a line, in order of increasing x.
pub fn scatter(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[Series],
    highlight: Option<&Series>,
) -> Result<()> {
    let clean: Vec<Vec<(f64, f64)>> = groups.iter().map(|g| finite_points(&g.points)).collect();
    let mut front = highlight
        .map(|h| finite_points(&h.points))
        .unwrap_or_default();
    front.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let all = || clean.iter().flatten().chain(&front).copied();
    let xr = padded(bounds(all().map(|p| p.0)));
    let yr = padded(bounds(all().map(|p| p.1)));
    let corner = emptiest_corner(all().chain(sample_path(&front)), xr, yr);
    render(path, CHART_SIZE, |root| {
        let mut chart = cartesian(root, title, xr, yr, 24)?;
        draw_mesh(&mut chart, x_label, y_label, xr, yr)?;
        let mut named = false;
        for (i, (g, pts)) in groups.iter().zip(&clean).enumerate() {
            let c = colour(i);
            let ann =
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.mix(0.75).filled())))?;
            if !g.name.is_empty() {
                named = true;
                ann.label(g.name.as_str())
                    .legend(move |(x, y)| Circle::new((x + 11, y), 4, c.filled()));
            }
        }
        if let Some(h) = highlight {
            let ann = chart.draw_series(LineSeries::new(
                front.iter().copied(),
                BLACK.stroke_width(2),
            ))?;
            if !h.name.is_empty() {
                named = true;
                ann.label(h.name.as_str()).legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 22, y)], BLACK.stroke_width(2))
                });
            }
            chart.draw_series(front.iter().map(|&p| Circle::new(p, 4, BLACK.filled())))?;
        }
        if named {
            draw_legend(&mut chart, corner)?;
        }
        Ok(())
    })
}

/// Small multiples: one scatter panel per entry (panel title, x label, y label, points), `cols`
/// panels per row (at least 1), each panel with its own axis ranges, under a common title.
pub fn scatter_grid(path: &Path, title: &str, panels: &[Panel], cols: usize) -> Result<()> {
    let cols = cols.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(cols).max(1);
    let size = grid_size(GRID_PANEL, rows, cols, "scatter_grid")?;
    render(path, size, |root| {
        let body = titled(root, title)?;
        if panels.is_empty() {
            return no_data(&body);
        }
        for ((name, x_label, y_label, points), area) in
            panels.iter().zip(body.split_evenly((rows, cols)))
        {
            let pts = finite_points(points);
            let xr = padded(bounds(pts.iter().map(|p| p.0)));
            let yr = padded(bounds(pts.iter().map(|p| p.1)));
            let mut chart = ChartBuilder::on(&area)
                .caption(name.as_str(), font(16))
                .margin(8)
                .x_label_area_size(40)
                .y_label_area_size(58)
                .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)?;
            let (fx, fy) = (ticker(xr), ticker(yr));
            chart
                .configure_mesh()
                .x_desc(x_label.as_str())
                .y_desc(y_label.as_str())
                .axis_desc_style(font(14))
                .label_style(font(12))
                .x_labels(5)
                .y_labels(5)
                .x_label_formatter(&fx)
                .y_label_formatter(&fy)
                .bold_line_style(RGBColor(215, 215, 215))
                .light_line_style(RGBColor(242, 242, 242))
                .draw()?;
            let c = colour(0);
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.mix(0.7).filled())))?;
        }
        Ok(())
    })
}

/// Stacked bars at numeric x positions (e.g. generations): each row is (x, one value per
/// category), stacked bottom to top in category order, with the legend on the right (top entry
/// = top of the stack). Non-finite and negative values count as 0; rows with a non-finite x
/// are skipped; values beyond the named categories are named `#k`.
pub fn stacked_bars(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    categories: &[String],
    rows: &[(f64, Vec<f64>)],
) -> Result<()> {
    let rows: Vec<(f64, Vec<f64>)> = rows
        .iter()
        .filter(|(x, _)| usable(*x))
        .map(|(x, v)| {
            (
                *x,
                v.iter()
                    .map(|&v| if usable(v) && v > 0.0 { v } else { 0.0 })
                    .collect(),
            )
        })
        .collect();
    let ncat = rows
        .iter()
        .map(|r| r.1.len())
        .max()
        .unwrap_or(0)
        .max(categories.len());
    let names: Vec<String> = (0..ncat)
        .map(|k| {
            categories
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("#{k}"))
        })
        .collect();
    let mut xs: Vec<f64> = rows.iter().map(|r| r.0).collect();
    xs.sort_by(f64::total_cmp);
    let gap = xs
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > 0.0)
        .fold(f64::INFINITY, f64::min);
    let width = if gap.is_finite() { 0.8 * gap } else { 0.8 };
    let xr = match bounds(xs.iter().copied()) {
        Some((lo, hi)) => (lo - width, hi + width),
        None => (0.0, 1.0),
    };
    let top = rows
        .iter()
        .map(|r| r.1.iter().sum::<f64>())
        .fold(0.0, f64::max);
    let yr = if top > 0.0 && top < LIMIT {
        (0.0, top * 1.05)
    } else {
        (0.0, 1.0)
    };
    render(path, CHART_SIZE, |root| {
        let (left, right) = root.split_horizontally(CHART_SIZE.0 - LEGEND_WIDTH);
        let mut chart = cartesian(&left, title, xr, yr, 24)?;
        draw_mesh(&mut chart, x_label, y_label, xr, yr)?;
        for (x, vals) in &rows {
            let mut base = 0.0;
            for (k, &v) in vals.iter().enumerate() {
                if v > 0.0 {
                    let c = colour(k);
                    let corners = [(x - width / 2.0, base), (x + width / 2.0, base + v)];
                    chart.draw_series(std::iter::once(Rectangle::new(corners, c.filled())))?;
                    if width * (chart_px_per_x(&chart, xr)) >= 6.0 {
                        chart.draw_series(std::iter::once(Rectangle::new(
                            corners,
                            WHITE.stroke_width(1),
                        )))?;
                    }
                }
                base += v;
            }
        }
        let entries: Vec<(String, RGBColor)> = names
            .iter()
            .enumerate()
            .rev()
            .map(|(k, n)| (n.clone(), colour(k)))
            .collect();
        side_legend(&right, &entries)
    })
}

/// Square heatmaps side by side (at most 4 per row), each (title, n, n*n row-major values) with
/// its own colour scale (viridis, min to max of its finite values) and colour bar. Row 0 is at
/// the top. Missing or non-finite cells are grey. Maps larger than their ~330 pixel square
/// are sampled, one cell per pixel.
pub fn heatmaps(path: &Path, title: &str, maps: &[(String, usize, Vec<f32>)]) -> Result<()> {
    let cols = maps.len().clamp(1, HEATMAP_COLS);
    let rows = maps.len().div_ceil(cols).max(1);
    let size = grid_size(HEATMAP_PANEL, rows, cols, "heatmaps")?;
    render(path, size, |root| {
        let body = titled(root, title)?;
        if maps.is_empty() {
            return no_data(&body);
        }
        for ((name, n, values), area) in maps.iter().zip(body.split_evenly((rows, cols))) {
            heatmap_panel(&area, name, *n, values)?;
        }
        Ok(())
    })
}

/// An architecture drawing of `size` pixels: nodes as labelled boxes, edges as labelled
/// arrows (dashed where asked; a pair of opposite edges is drawn as two parallel arrows).
pub fn graph(
    path: &Path,
    title: &str,
    nodes: &[GraphNode],
    edges: &[GraphEdge],
    size: (u32, u32),
) -> Result<()> {
    render(path, size, |root| {
        let body = titled(root, title)?;
        draw_graph(&body, nodes, edges)
    })
}

// ----------------------------------------------------------------------------------------------
// Rendering and atomic writing
// ----------------------------------------------------------------------------------------------

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for Error {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        Error::Plot(e.to_string())
    }
}

fn ensure_font() -> Result<()> {
    static LOADED: OnceLock<bool> = OnceLock::new();
    let ok = *LOADED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Plot(
            "the bundled font assets/DejaVuSans.ttf could not be loaded".into(),
        ))
    }
}

fn render<F>(path: &Path, (w, h): (u32, u32), draw: F) -> Result<()>
where
    F: FnOnce(&Area<'_>) -> Result<()>,
{
    if !(16..=MAX_SIDE).contains(&w) || !(16..=MAX_SIDE).contains(&h) {
        return Err(Error::input(format!(
            "{}: image size {w}x{h} is outside 16..={MAX_SIDE} pixels a side",
            path.display()
        )));
    }
    ensure_font()?;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    write_png_atomic(path, &buf, w, h)
}

fn write_png_atomic(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| Error::input(format!("{}: not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mut out = BufWriter::new(file);
        PngEncoder::new(&mut out)
            .write_image(rgb, w, h, ExtendedColorType::Rgb8)
            .map_err(std::io::Error::other)?;
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

fn grid_size(panel: (u32, u32), rows: usize, cols: usize, what: &str) -> Result<(u32, u32)> {
    let w = panel.0 as u64 * cols as u64;
    let h = panel.1 as u64 * rows as u64 + TITLE_BAND as u64;
    if w > MAX_SIDE as u64 || h > MAX_SIDE as u64 {
        return Err(Error::input(format!(
            "{what}: {rows}x{cols} panels need a {w}x{h} image, more than {MAX_SIDE} pixels a side"
        )));
    }
    Ok((w as u32, h as u32))
}

// ----------------------------------------------------------------------------------------------
// Shared drawing pieces
// ----------------------------------------------------------------------------------------------

fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

fn centred(size: u32) -> TextStyle<'static> {
    font(size).pos(Pos::new(HPos::Center, VPos::Center))
}

/// Draws `title` centred in a band of [`TITLE_BAND`] pixels and returns the area below it.
fn titled<'a>(root: &Area<'a>, title: &str) -> Result<Area<'a>> {
    let (w, _) = root.dim_in_pixel();
    let (band, body) = root.split_vertically(TITLE_BAND);
    band.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, TITLE_BAND as i32 / 2),
        centred(22),
    ))?;
    Ok(body)
}

fn no_data(area: &Area<'_>) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        "no data",
        (w as i32 / 2, h as i32 / 2),
        centred(18).color(&RGBColor(120, 120, 120)),
    ))?;
    Ok(())
}

fn cartesian<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    xr: (f64, f64),
    yr: (f64, f64),
    title_size: u32,
) -> Result<Chart<'a, 'b>> {
    Ok(ChartBuilder::on(area)
        .caption(title, font(title_size))
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(78)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)?)
}

fn draw_mesh(
    chart: &mut Chart<'_, '_>,
    x_label: &str,
    y_label: &str,
    xr: (f64, f64),
    yr: (f64, f64),
) -> Result<()> {
    let (fx, fy) = (ticker(xr), ticker(yr));
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style(font(16))
        .label_style(font(13))
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(242, 242, 242))
        .draw()?;
    Ok(())
}

fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, corner: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .position(corner)
        .label_font(font(14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .margin(10)
        .draw()?;
    Ok(())
}

/// A legend in its own area: a colour swatch and a name per entry, top to bottom.
fn side_legend(area: &Area<'_>, entries: &[(String, RGBColor)]) -> Result<()> {
    let (_, h) = area.dim_in_pixel();
    let mut y = 70;
    for (i, (name, c)) in entries.iter().enumerate() {
        if y + 20 > h as i32 - 10 {
            let more = format!("(+{} more)", entries.len() - i);
            area.draw(&Text::new(
                more,
                (8, y + 7),
                font(13).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            break;
        }
        area.draw(&Rectangle::new([(8, y), (24, y + 14)], c.filled()))?;
        area.draw(&Text::new(
            name.clone(),
            (32, y + 7),
            font(14).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        y += 22;
    }
    Ok(())
}

fn chart_px_per_x(chart: &Chart<'_, '_>, xr: (f64, f64)) -> f64 {
    let (px, _) = chart.plotting_area().dim_in_pixel();
    px as f64 / (xr.1 - xr.0)
}

fn heatmap_panel(area: &Area<'_>, name: &str, n: usize, values: &[f32]) -> Result<()> {
    let body = {
        let (w, _) = area.dim_in_pixel();
        let (band, body) = area.split_vertically(32);
        band.draw(&Text::new(
            format!("{name} ({n}x{n})"),
            (w as i32 / 2, 18),
            centred(16),
        ))?;
        body
    };
    let cells = n.saturating_mul(n);
    let vals: Vec<f64> = values.iter().take(cells).map(|&v| v as f64).collect();
    let (lo, hi) = widen(bounds(vals.iter().copied()));
    let (bw, bh) = body.dim_in_pixel();
    // Map area: square plot region, leaving room for tick labels and the colour bar.
    let (label_x, label_y, bar_w, pad) = (28u32, 40u32, 96u32, 8u32);
    let avail_w = bw.saturating_sub(bar_w + label_y + 2 * pad);
    let avail_h = bh.saturating_sub(label_x + 2 * pad);
    let side = avail_w.min(avail_h).max(8);
    let extra_w = avail_w.saturating_sub(side);
    let extra_h = avail_h.saturating_sub(side);
    let (map_area, bar_area) = body.split_horizontally(bw.saturating_sub(bar_w));
    let nf = n.max(1) as f64;
    let mut chart = ChartBuilder::on(&map_area)
        .margin_top(pad + extra_h / 2)
        .margin_bottom(pad + extra_h - extra_h / 2)
        .margin_left(pad + extra_w)
        .margin_right(pad)
        .x_label_area_size(label_x)
        .y_label_area_size(label_y)
        .build_cartesian_2d(0f64..nf, nf..0f64)?;
    let index = |v: &f64| {
        let r = v.round();
        if (v - r).abs() < 1e-9 && r < nf && r < 1e6 {
            format!("{}", r as i64)
        } else if (v - r).abs() < 1e-9 && r < nf {
            format!("{r:.1e}")
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style(font(12))
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&index)
        .y_label_formatter(&index)
        .draw()?;
    let plot = chart.plotting_area().strip_coord_spec();
    let (pw, ph) = plot.dim_in_pixel();
    if n == 0 {
        no_data(&plot)?;
    } else {
        for py in 0..ph {
            let i = ((py as u128 * n as u128) / ph as u128) as usize;
            for px in 0..pw {
                let j = ((px as u128 * n as u128) / pw as u128) as usize;
                let cell = i.checked_mul(n).and_then(|k| k.checked_add(j));
                let c = match cell.and_then(|k| vals.get(k)) {
                    Some(&v) if usable(v) => viridis((v - lo) / (hi - lo)),
                    _ => RGBColor(190, 190, 190),
                };
                plot.draw_pixel((px as i32, py as i32), &c)?;
            }
        }
    }
    // Colour bar, aligned with the map's plot region.
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(pad + extra_h / 2)
        .margin_bottom(pad + extra_h - extra_h / 2 + label_x)
        .margin_left(12)
        .margin_right(4)
        .set_label_area_size(LabelAreaPosition::Right, 60)
        .build_cartesian_2d(0f64..1f64, lo..hi)?;
    let fy = ticker((lo, hi));
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .label_style(font(12))
        .y_labels(6)
        .y_label_formatter(&fy)
        .draw()?;
    const STEPS: usize = 128;
    bar.draw_series((0..STEPS).map(|k| {
        let (a, b) = (k as f64 / STEPS as f64, (k + 1) as f64 / STEPS as f64);
        let y = |t: f64| lo + (hi - lo) * t;
        Rectangle::new([(0.0, y(a)), (1.0, y(b))], viridis((a + b) / 2.0).filled())
    }))?;
    bar.draw_series(std::iter::once(Rectangle::new(
        [(0.0, lo), (1.0, hi)],
        BLACK.stroke_width(1),
    )))?;
    Ok(())
}

fn draw_graph(area: &Area<'_>, nodes: &[GraphNode], edges: &[GraphEdge]) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let label_font = font(14);
    let line_h = 18i32;
    // Box sizes from the label text.
    let mut boxes = Vec::with_capacity(nodes.len());
    for n in nodes {
        let lines: Vec<&str> = n.label.split('\n').collect();
        let mut tw = 0i32;
        for l in &lines {
            tw = tw.max(area.estimate_text_size(l, &label_font)?.0 as i32);
        }
        boxes.push((tw + 18, lines.len() as i32 * line_h + 12));
    }
    let half_w = boxes.iter().map(|b| b.0 / 2).max().unwrap_or(0);
    let half_h = boxes.iter().map(|b| b.1 / 2).max().unwrap_or(0);
    let (mx, my) = (half_w + 10, half_h + 36);
    let span_x = (w as i32 - 2 * mx).max(1) as f64;
    let span_y = (h as i32 - 2 * my).max(1) as f64;
    let unit = |v: f64| {
        if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.5
        }
    };
    let centres: Vec<(f64, f64)> = nodes
        .iter()
        .map(|n| {
            (
                mx as f64 + unit(n.x) * span_x,
                my as f64 + unit(n.y) * span_y,
            )
        })
        .collect();
    let rect = |i: usize| {
        let (cx, cy) = centres[i];
        let (bw, bh) = boxes[i];
        (cx, cy, bw as f64 / 2.0, bh as f64 / 2.0)
    };

    // Edges first, so boxes cover line ends.
    let mut labels = Vec::new();
    for e in edges {
        if e.from >= nodes.len() || e.to >= nodes.len() {
            continue;
        }
        let c = RGBColor(e.colour.0, e.colour.1, e.colour.2);
        let style = c.stroke_width(2);
        if e.from == e.to {
            let (cx, cy, hw, hh) = rect(e.from);
            let (x0, x1) = (cx - hw / 2.0, cx + hw / 2.0);
            let (top, peak) = (cy - hh, cy - hh - 24.0);
            let path = vec![pt(x0, top), pt(x0, peak), pt(x1, peak), pt(x1, top - 9.0)];
            draw_path(area, path, style, e.dashed)?;
            arrow_head(area, (x1, top - 10.0), (x1, top), c)?;
            labels.push((e.label.clone(), (cx, peak - 10.0), (0.0, 0.0), c));
            continue;
        }
        let (ax, ay) = centres[e.from];
        let (bx, by) = centres[e.to];
        let (dx, dy) = (bx - ax, by - ay);
        let len = (dx * dx + dy * dy).sqrt();
        if len < 1e-9 {
            continue;
        }
        let twin = edges.iter().any(|o| o.from == e.to && o.to == e.from);
        let off = if twin { 6.0 } else { 0.0 };
        let (nx, ny) = (-dy / len * off, dx / len * off);
        let start = clip((ax + nx, ay + ny), (dx, dy), rect(e.from), 1.0);
        let end = clip((bx + nx, by + ny), (-dx, -dy), rect(e.to), 1.0);
        let (ux, uy) = (dx / len, dy / len);
        let base = (end.0 - ux * 10.0, end.1 - uy * 10.0);
        draw_path(
            area,
            vec![pt(start.0, start.1), pt(base.0, base.1)],
            style,
            e.dashed,
        )?;
        arrow_head(area, base, end, c)?;
        let mid = ((start.0 + end.0) / 2.0, (start.1 + end.1) / 2.0);
        // A twin edge's label sits beside its own arrow, on the outer side.
        let side = if twin { (-uy, ux) } else { (0.0, 0.0) };
        labels.push((e.label.clone(), mid, side, c));
    }

    for (i, n) in nodes.iter().enumerate() {
        let (cx, cy, hw, hh) = rect(i);
        let fill = RGBColor(n.colour.0, n.colour.1, n.colour.2);
        let border = RGBColor(n.colour.0 / 2, n.colour.1 / 2, n.colour.2 / 2);
        let corners = [pt(cx - hw, cy - hh), pt(cx + hw, cy + hh)];
        area.draw(&Rectangle::new(corners, fill.filled()))?;
        area.draw(&Rectangle::new(corners, border.stroke_width(2)))?;
        let lum = 0.299 * n.colour.0 as f64 + 0.587 * n.colour.1 as f64 + 0.114 * n.colour.2 as f64;
        let ink = if lum < 140.0 { WHITE } else { BLACK };
        let lines: Vec<&str> = n.label.split('\n').collect();
        let first = cy - (lines.len() as f64 - 1.0) * line_h as f64 / 2.0;
        for (k, l) in lines.iter().enumerate() {
            let at = pt(cx, first + k as f64 * line_h as f64);
            area.draw(&Text::new(l.to_string(), at, centred(14).color(&ink)))?;
        }
    }

    // Edge labels last, on a white patch, so they stay readable over lines.
    for (text, (x, y), (sx, sy), c) in labels {
        if text.is_empty() {
            continue;
        }
        let style = centred(13).color(&c);
        let (tw, th) = area.estimate_text_size(&text, &style)?;
        let (hw, hh) = (tw as f64 / 2.0 + 3.0, th as f64 / 2.0 + 2.0);
        let shift = sx.abs() * hw + sy.abs() * hh + 8.0 * (sx.abs() + sy.abs()).min(1.0);
        let (x, y) = (x + sx * shift, y + sy * shift);
        area.draw(&Rectangle::new(
            [pt(x - hw, y - hh), pt(x + hw, y + hh)],
            WHITE.mix(0.9).filled(),
        ))?;
        area.draw(&Text::new(text, pt(x, y), style))?;
    }
    Ok(())
}

fn pt(x: f64, y: f64) -> (i32, i32) {
    (x.round() as i32, y.round() as i32)
}

fn draw_path(
    area: &Area<'_>,
    path: Vec<(i32, i32)>,
    style: ShapeStyle,
    dashed: bool,
) -> Result<()> {
    if dashed {
        area.draw(&DashedPathElement::new(path, 7, 5, style))?;
    } else {
        area.draw(&PathElement::new(path, style))?;
    }
    Ok(())
}

fn arrow_head(area: &Area<'_>, from: (f64, f64), tip: (f64, f64), c: RGBColor) -> Result<()> {
    let (dx, dy) = (tip.0 - from.0, tip.1 - from.1);
    let len = (dx * dx + dy * dy).sqrt().max(1e-9);
    let (ux, uy) = (dx / len, dy / len);
    let (bx, by) = (tip.0 - ux * 11.0, tip.1 - uy * 11.0);
    let tri = vec![
        pt(tip.0, tip.1),
        pt(bx - uy * 5.5, by + ux * 5.5),
        pt(bx + uy * 5.5, by - ux * 5.5),
    ];
    area.draw(&Polygon::new(tri, c.filled()))?;
    Ok(())
}

/// The point where a ray from `from` in direction `dir` leaves the box (cx, cy, hw, hh),
/// pushed `gap` pixels further out.
fn clip(
    from: (f64, f64),
    dir: (f64, f64),
    (cx, cy, hw, hh): (f64, f64, f64, f64),
    gap: f64,
) -> (f64, f64) {
    let (hw, hh) = (hw + gap, hh + gap);
    let (ox, oy) = (from.0 - cx, from.1 - cy);
    let tx = if dir.0.abs() > 1e-12 {
        (hw.copysign(dir.0) - ox) / dir.0
    } else {
        f64::INFINITY
    };
    let ty = if dir.1.abs() > 1e-12 {
        (hh.copysign(dir.1) - oy) / dir.1
    } else {
        f64::INFINITY
    };
    let t = tx.min(ty).max(0.0);
    if t.is_finite() {
        (from.0 + dir.0 * t, from.1 + dir.1 * t)
    } else {
        from
    }
}

// ----------------------------------------------------------------------------------------------
// Numbers: ranges, ticks, colours
// ----------------------------------------------------------------------------------------------

fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() <= LIMIT
}

fn finite_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|p| usable(p.0) && usable(p.1))
        .collect()
}

/// Runs of consecutive usable points; a non-finite point ends a run.
fn split_segments(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for &p in points {
        if usable(p.0) && usable(p.1) {
            cur.push(p);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Vertices of a path plus points along each segment, to judge where a line runs.
fn sample_path(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = points.to_vec();
    for w in points.windows(2) {
        for k in 1..8 {
            let t = k as f64 / 8.0;
            out.push((
                w[0].0 + (w[1].0 - w[0].0) * t,
                w[0].1 + (w[1].1 - w[0].1) * t,
            ));
        }
    }
    out
}

/// Exact min and max of the usable values, if any.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|&v| usable(v))
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// A range of positive width: (0, 1) for no values, a band around a single value.
fn widen(b: Option<(f64, f64)>) -> (f64, f64) {
    match b {
        None => (0.0, 1.0),
        Some((lo, hi)) => {
            let scale = lo.abs().max(hi.abs());
            if hi - lo > scale * 1e-9 {
                (lo, hi)
            } else {
                let pad = if scale > 0.0 { scale * 0.1 } else { 1.0 };
                (lo - pad, hi + pad)
            }
        }
    }
}

/// [`widen`] plus a 5% margin each side.
fn padded(b: Option<(f64, f64)>) -> (f64, f64) {
    let degenerate = b.is_none_or(|(lo, hi)| hi - lo <= lo.abs().max(hi.abs()) * 1e-9);
    let (lo, hi) = widen(b);
    if degenerate {
        (lo, hi)
    } else {
        let m = (hi - lo) * 0.05;
        (lo - m, hi + m)
    }
}

/// Tick label formatter for an axis spanning `range`: as many decimals as the tick spacing
/// needs, scientific notation for very large or very small magnitudes.
fn ticker((lo, hi): (f64, f64)) -> impl Fn(&f64) -> String {
    let span = (hi - lo).abs();
    let mag = lo.abs().max(hi.abs());
    let scientific = mag >= 1e6 || (mag < 1e-3 && mag > 0.0);
    let decimals = if span > 0.0 {
        ((-(span / 8.0).log10()).ceil() + 1.0).clamp(0.0, 8.0) as usize
    } else {
        2
    };
    move |v: &f64| {
        let v = *v;
        if v.abs() <= span * 1e-9 {
            return "0".into();
        }
        if scientific {
            let s = format!("{v:.3e}");
            match s.split_once('e') {
                Some((m, e)) => format!("{}e{e}", trim_zeros(m)),
                None => s,
            }
        } else {
            trim_zeros(&format!("{v:.decimals$}")).to_string()
        }
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Corner of the plot with the fewest data points, for the legend.
fn emptiest_corner(
    points: impl Iterator<Item = (f64, f64)>,
    xr: (f64, f64),
    yr: (f64, f64),
) -> SeriesLabelPosition {
    // Order of preference on ties: upper right, upper left, lower right, lower left.
    let mut counts = [0usize; 4];
    for (x, y) in points {
        let fx = (x - xr.0) / (xr.1 - xr.0);
        let fy = (y - yr.0) / (yr.1 - yr.0);
        let (left, right, low, high) = (fx < 0.45, fx > 0.55, fy < 0.45, fy > 0.55);
        counts[0] += (right && high) as usize;
        counts[1] += (left && high) as usize;
        counts[2] += (right && low) as usize;
        counts[3] += (left && low) as usize;
    }
    let best = (0..4).min_by_key(|&k| counts[k]).unwrap_or(0);
    match best {
        0 => SeriesLabelPosition::UpperRight,
        1 => SeriesLabelPosition::UpperLeft,
        2 => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::LowerLeft,
    }
}

/// Distinct colours: the ten "tab10" colours, then golden-ratio hues.
fn colour(i: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    match TAB10.get(i) {
        Some(&(r, g, b)) => RGBColor(r, g, b),
        None => {
            let (r, g, b) = HSLColor((i as f64 * 0.618_034).fract(), 0.65, 0.45).rgb();
            RGBColor(r, g, b)
        }
    }
}

/// Viridis colour for t in [0, 1] (clamped), interpolated between 9 reference colours.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 9] = [
        (68.0, 1.0, 84.0),
        (71.0, 44.0, 122.0),
        (59.0, 81.0, 139.0),
        (44.0, 113.0, 142.0),
        (33.0, 144.0, 141.0),
        (39.0, 173.0, 129.0),
        (92.0, 200.0, 99.0),
        (170.0, 220.0, 50.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let k = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - k as f64;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests;
