//! Each chart is written to a temporary folder, decoded back and checked for size and content.
//! Set `MSENAS_KEEP_PLOTS=<folder>` to keep a copy of every image for a look by eye.

use super::*;
use std::path::Path;
use tempfile::TempDir;

fn dir() -> TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Decodes `path`, checks its size and that it is not one flat colour, and that the folder
/// holds nothing but `.png` files (no temporary files left behind).
fn check(path: &Path, size: (u32, u32)) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), size, "{}", path.display());
    let first = *img.get_pixel(0, 0);
    let distinct = img.pixels().filter(|&&p| p != first).count();
    assert!(
        distinct > 100,
        "{}: nearly flat image ({distinct} differing pixels)",
        path.display()
    );
    no_leftovers(path.parent().unwrap());
    if let Ok(keep) = std::env::var("MSENAS_KEEP_PLOTS") {
        fs::create_dir_all(&keep).unwrap();
        fs::copy(path, Path::new(&keep).join(path.file_name().unwrap())).unwrap();
    }
}

fn no_leftovers(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".png") && !name.starts_with('.'),
            "left behind: {name}"
        );
    }
}

/// Number of pixels with some colour (neither grey nor white), to see that data was drawn.
fn coloured_pixels(path: &Path) -> usize {
    let img = image::open(path).unwrap().to_rgb8();
    img.pixels()
        .filter(|p| {
            let [r, g, b] = p.0;
            r.max(g).max(b) - r.min(g).min(b) > 40
        })
        .count()
}

fn wave(name: &str, phase: f64, n: usize) -> Series {
    Series::new(
        name,
        (0..n)
            .map(|i| (i as f64, (i as f64 * 0.3 + phase).sin() * 0.4 + 0.5))
            .collect(),
    )
}

#[test]
fn line_chart_draws_series_with_legend() {
    let d = dir();
    let p = d.path().join("lines.png");
    let series = [
        wave("best accuracy", 0.0, 50),
        wave("mean accuracy", 1.0, 50),
        wave("worst", 2.0, 200),
    ];
    line_chart(
        &p,
        "Accuracy per generation",
        "generation",
        "accuracy",
        &series,
    )
    .unwrap();
    check(&p, CHART_SIZE);
    assert!(coloured_pixels(&p) > 1000);
}

#[test]
fn line_chart_degenerate_inputs() {
    let d = dir();
    let nan = Series::new(
        "nan",
        vec![
            (0.0, f64::NAN),
            (f64::INFINITY, 1.0),
            (2.0, f64::NEG_INFINITY),
        ],
    );
    let one = Series::new("one", vec![(3.0, 0.5)]);
    let flat = Series::new("flat", vec![(1.0, 2.0), (1.0, 2.0)]);
    let gap = Series::new(
        "gap",
        vec![
            (0.0, 1.0),
            (1.0, 2.0),
            (2.0, f64::NAN),
            (3.0, 1.5),
            (4.0, 1.0),
        ],
    );
    let huge = Series::new(
        "huge",
        vec![(0.0, f64::MAX), (1.0, -f64::MAX), (2.0, 1e-300)],
    );
    let cases: Vec<(&str, Vec<Series>)> = vec![
        ("none", vec![]),
        ("empty", vec![Series::default()]),
        ("nan", vec![nan.clone()]),
        ("one", vec![one.clone()]),
        ("flat", vec![flat]),
        ("gap", vec![gap, nan]),
        ("huge", vec![huge, one]),
    ];
    for (name, s) in cases {
        let p = d.path().join(format!("line_{name}.png"));
        line_chart(&p, name, "x", "y", &s).unwrap();
        check(&p, CHART_SIZE);
    }
}

#[test]
fn scatter_with_pareto_front() {
    let d = dir();
    let p = d.path().join("scatter.png");
    let pts = |k: u64| -> Vec<(f64, f64)> {
        (0..80)
            .map(|i| {
                let a = ((i * 37 + k * 11) % 97) as f64 / 97.0;
                let b = ((i * 53 + k * 7) % 89) as f64 / 89.0;
                (a * 5e4, 0.5 + 0.45 * b)
            })
            .collect()
    };
    let groups = [
        Series::new("generation 0", pts(0)),
        Series::new("generation 10", pts(1)),
    ];
    let front = Series::new("Pareto front", vec![(4e4, 0.95), (1e3, 0.6), (2e4, 0.9)]);
    scatter(
        &p,
        "Accuracy vs cost",
        "parameters",
        "accuracy",
        &groups,
        Some(&front),
    )
    .unwrap();
    check(&p, CHART_SIZE);
    assert!(coloured_pixels(&p) > 1000);
}

#[test]
fn scatter_degenerate_inputs() {
    let d = dir();
    let one = Series::new("one", vec![(1.0, 1.0)]);
    let nan = Series::new("", vec![(f64::NAN, 1.0), (1.0, f64::NAN)]);
    let cases: Vec<(&str, Vec<Series>, Option<Series>)> = vec![
        ("none", vec![], None),
        ("empty_front", vec![], Some(Series::default())),
        ("one", vec![one.clone()], Some(one.clone())),
        ("nan", vec![nan.clone()], Some(nan)),
        (
            "many_groups",
            (0..15)
                .map(|i| Series::new(format!("g{i}"), vec![(i as f64, 1.0)]))
                .collect(),
            None,
        ),
    ];
    for (name, groups, front) in cases {
        let p = d.path().join(format!("scatter_{name}.png"));
        scatter(&p, name, "x", "y", &groups, front.as_ref()).unwrap();
        check(&p, CHART_SIZE);
    }
}

#[test]
fn scatter_grid_small_multiples() {
    let d = dir();
    let p = d.path().join("grid.png");
    let panel = |name: &str, k: f64| {
        let pts = (0..60)
            .map(|i| (i as f64 / 60.0 * k, (i as f64 * 0.1).cos() * k))
            .collect();
        (
            format!("{name} vs accuracy"),
            name.to_string(),
            "accuracy".to_string(),
            pts,
        )
    };
    let panels = vec![
        panel("RSA score", 1.0),
        panel("NASWOT", 100.0),
        panel("synflow", 1e6),
        panel("grad norm", 1e-4),
        panel("spike rate", 0.3),
    ];
    scatter_grid(&p, "Zero-cost scores vs trained accuracy", &panels, 3).unwrap();
    check(&p, (3 * GRID_PANEL.0, 2 * GRID_PANEL.1 + TITLE_BAND));
}

#[test]
fn scatter_grid_degenerate_inputs() {
    let d = dir();
    let p = d.path().join("grid_empty.png");
    scatter_grid(&p, "empty", &[], 3).unwrap();
    check(&p, (GRID_PANEL.0, GRID_PANEL.1 + TITLE_BAND));
    let panels = vec![
        (
            "nan".to_string(),
            "x".to_string(),
            "y".to_string(),
            vec![(f64::NAN, f64::NAN)],
        ),
        (
            "one".to_string(),
            "x".to_string(),
            "y".to_string(),
            vec![(0.0, 0.0)],
        ),
        ("none".to_string(), String::new(), String::new(), vec![]),
    ];
    let p = d.path().join("grid_cols0.png");
    scatter_grid(&p, "cols 0", &panels, 0).unwrap();
    check(&p, (GRID_PANEL.0, 3 * GRID_PANEL.1 + TITLE_BAND));
    let p = d.path().join("grid_cols9.png");
    scatter_grid(&p, "cols 9", &panels, 9).unwrap();
    check(&p, (3 * GRID_PANEL.0, GRID_PANEL.1 + TITLE_BAND));
    let many: Vec<_> = (0..600).map(|_| panels[1].clone()).collect();
    assert!(matches!(
        scatter_grid(&d.path().join("too_many.png"), "", &many, 1),
        Err(Error::Input(_))
    ));
    no_leftovers(d.path());
}

#[test]
fn stacked_bars_motif_usage() {
    let d = dir();
    let p = d.path().join("bars.png");
    let cats: Vec<String> = ["feedforward", "recurrent", "lateral inhibition", "skip"]
        .map(String::from)
        .to_vec();
    let rows: Vec<(f64, Vec<f64>)> = (0..20)
        .map(|g| {
            (
                g as f64,
                vec![
                    10.0 - g as f64 * 0.3,
                    2.0 + g as f64 * 0.2,
                    1.0,
                    (g % 3) as f64,
                ],
            )
        })
        .collect();
    stacked_bars(
        &p,
        "Motif usage per generation",
        "generation",
        "count",
        &cats,
        &rows,
    )
    .unwrap();
    check(&p, CHART_SIZE);
    assert!(coloured_pixels(&p) > 10_000);
}

#[test]
fn stacked_bars_degenerate_inputs() {
    let d = dir();
    let cats = vec!["a".to_string(), "b".to_string()];
    type Case<'a> = (&'a str, Vec<String>, Vec<(f64, Vec<f64>)>);
    let cases: Vec<Case> = vec![
        ("none", vec![], vec![]),
        ("no_rows", cats.clone(), vec![]),
        ("one", cats.clone(), vec![(5.0, vec![1.0, 2.0])]),
        (
            "zeros",
            cats.clone(),
            vec![(0.0, vec![0.0, 0.0]), (1.0, vec![])],
        ),
        (
            "bad",
            cats.clone(),
            vec![
                (f64::NAN, vec![1.0]),
                (1.0, vec![f64::NAN, -3.0, f64::INFINITY]),
                (2.0, vec![1.0, 1.0, 1.0, 1.0]),
            ],
        ),
        (
            "same_x",
            cats.clone(),
            vec![(1.0, vec![1.0, 1.0]), (1.0, vec![2.0, 1.0])],
        ),
        (
            "many",
            (0..40).map(|k| format!("motif {k}")).collect(),
            vec![(0.0, vec![1.0; 40])],
        ),
    ];
    for (name, cats, rows) in cases {
        let p = d.path().join(format!("bars_{name}.png"));
        stacked_bars(&p, name, "x", "y", &cats, &rows).unwrap();
        check(&p, CHART_SIZE);
    }
}

#[test]
fn heatmaps_side_by_side() {
    let d = dir();
    let p = d.path().join("rdm.png");
    let n = 12;
    let label: Vec<f32> = (0..n * n)
        .map(|k| if (k / n) / 4 == (k % n) / 4 { 0.0 } else { 1.0 })
        .collect();
    let cand: Vec<f32> = (0..n * n)
        .map(|k| ((k / n) as f32 - (k % n) as f32).abs() / n as f32)
        .collect();
    heatmaps(
        &p,
        "Representational dissimilarity",
        &[("candidate".into(), n, cand), ("labels".into(), n, label)],
    )
    .unwrap();
    check(&p, (2 * HEATMAP_PANEL.0, HEATMAP_PANEL.1 + TITLE_BAND));
    assert!(coloured_pixels(&p) > 50_000);
}

#[test]
fn heatmaps_degenerate_inputs() {
    let d = dir();
    let p = d.path().join("heat_none.png");
    heatmaps(&p, "none", &[]).unwrap();
    check(&p, (HEATMAP_PANEL.0, HEATMAP_PANEL.1 + TITLE_BAND));
    let maps = vec![
        ("empty".to_string(), 0, vec![]),
        ("short".to_string(), 3, vec![1.0, 2.0]),
        ("constant".to_string(), 2, vec![5.0; 4]),
        (
            "nan".to_string(),
            2,
            vec![f32::NAN, f32::INFINITY, 0.0, f32::NEG_INFINITY],
        ),
        ("one".to_string(), 1, vec![0.5, 9.0]),
        ("huge n".to_string(), usize::MAX, vec![1.0, 2.0]),
        (
            "big".to_string(),
            700,
            (0..700 * 700).map(|k| (k % 701) as f32).collect(),
        ),
    ];
    let p = d.path().join("heat_odd.png");
    heatmaps(&p, "odd maps", &maps).unwrap();
    check(
        &p,
        (
            HEATMAP_COLS as u32 * HEATMAP_PANEL.0,
            2 * HEATMAP_PANEL.1 + TITLE_BAND,
        ),
    );
}

fn node(label: &str, x: f64, y: f64, colour: (u8, u8, u8)) -> GraphNode {
    GraphNode {
        label: label.into(),
        x,
        y,
        colour,
    }
}

fn edge(from: usize, to: usize, label: &str, dashed: bool) -> GraphEdge {
    GraphEdge {
        from,
        to,
        label: label.into(),
        colour: (60, 60, 60),
        dashed,
    }
}

#[test]
fn graph_architecture_drawing() {
    let d = dir();
    let p = d.path().join("graph.png");
    let nodes = [
        node("input\n64", 0.0, 0.5, (220, 220, 220)),
        node("LIF 128\ntau 2.0", 0.35, 0.2, (31, 119, 180)),
        node("LIF 64", 0.35, 0.8, (255, 200, 120)),
        node("readout 10", 1.0, 0.5, (44, 160, 44)),
    ];
    let edges = [
        edge(0, 1, "dense", false),
        edge(0, 2, "conv 3x3", false),
        edge(1, 3, "dense", false),
        edge(2, 3, "skip", true),
        edge(1, 2, "lateral", false),
        edge(2, 1, "feedback", true),
        edge(1, 1, "recurrent", false),
        edge(3, 9, "missing node", false),
    ];
    graph(
        &p,
        "Candidate 17 (generation 4)",
        &nodes,
        &edges,
        (900, 520),
    )
    .unwrap();
    check(&p, (900, 520));
    assert!(coloured_pixels(&p) > 5000);
}

#[test]
fn graph_degenerate_inputs() {
    let d = dir();
    let p = d.path().join("graph_empty.png");
    graph(&p, "empty", &[], &[edge(0, 1, "", false)], (300, 200)).unwrap();
    check(&p, (300, 200));
    let nodes = [
        node("a", 0.5, 0.5, (0, 0, 0)),
        node("b", 0.5, 0.5, (255, 255, 255)),
        node("", f64::NAN, -3.0, (9, 9, 9)),
    ];
    let edges = [
        edge(0, 1, "same place", false),
        edge(1, 2, "", true),
        edge(2, 2, "", true),
    ];
    let p = d.path().join("graph_odd.png");
    graph(&p, "coincident", &nodes, &edges, (64, 64)).unwrap();
    check(&p, (64, 64));
    for size in [(0, 100), (100, 0), (10_000, 100)] {
        assert!(matches!(
            graph(&d.path().join("bad.png"), "", &nodes, &edges, size),
            Err(Error::Input(_))
        ));
    }
    no_leftovers(d.path());
}

#[test]
fn writes_replace_atomically_and_fail_cleanly() {
    let d = dir();
    let p = d.path().join("same.png");
    fs::write(&p, b"old").unwrap();
    line_chart(&p, "first", "x", "y", &[wave("a", 0.0, 5)]).unwrap();
    check(&p, CHART_SIZE);
    line_chart(&p, "second", "x", "y", &[wave("b", 1.0, 7)]).unwrap();
    check(&p, CHART_SIZE);

    let missing = d.path().join("no such folder").join("x.png");
    assert!(matches!(
        line_chart(&missing, "", "", "", &[]),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        line_chart(Path::new("/"), "", "", "", &[]),
        Err(Error::Input(_))
    ));
    // A folder where the file should go: the rename fails and the temporary file is removed.
    let folder = d.path().join("taken.png");
    fs::create_dir(&folder).unwrap();
    fs::write(folder.join("inner.png"), b"x").unwrap();
    assert!(matches!(
        line_chart(&folder, "", "", "", &[]),
        Err(Error::Io { .. })
    ));
    no_leftovers(d.path());
}

#[test]
fn ranges_and_ticks() {
    assert_eq!(widen(None), (0.0, 1.0));
    assert_eq!(widen(Some((0.0, 0.0))), (-1.0, 1.0));
    let (lo, hi) = widen(Some((0.9, 0.9)));
    assert!(lo < 0.9 && hi > 0.9);
    assert_eq!(widen(Some((1.0, 2.0))), (1.0, 2.0));
    let (lo, hi) = padded(Some((0.0, 10.0)));
    assert!((lo + 0.5).abs() < 1e-12 && (hi - 10.5).abs() < 1e-12);
    assert_eq!(
        bounds([f64::NAN, 3.0, f64::INFINITY, -1.0, 1e200].into_iter()),
        Some((-1.0, 3.0))
    );
    assert_eq!(bounds(std::iter::empty()), None);

    let t = ticker((0.0, 1.0));
    assert_eq!(t(&0.30000000000000004), "0.3");
    assert_eq!(t(&0.25), "0.25");
    assert_eq!(t(&-1e-17), "0");
    let t = ticker((0.0, 200.0));
    assert_eq!(t(&40.0), "40");
    let t = ticker((0.0, 2e6));
    assert_eq!(t(&1.5e6), "1.5e6");
    let t = ticker((0.0, 1e-4));
    assert_eq!(t(&2.5e-5), "2.5e-5");

    assert_eq!(
        split_segments(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 1.0), (3.0, 1.0)]).len(),
        2
    );
    let distinct: std::collections::HashSet<_> = (0..30)
        .map(|i| {
            let c = colour(i);
            (c.0, c.1, c.2)
        })
        .collect();
    assert_eq!(distinct.len(), 30);
    assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
    assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
    assert_eq!(viridis(f64::NAN), viridis(0.0));
}
