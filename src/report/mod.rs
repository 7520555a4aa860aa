//! `dps-gpu report`: turns the `results.jsonl` files of one or more sweeps into report.md with the paper's
//! Fig. 2, Fig. 3 and Table 3 and its correlation statistics.

pub mod analysis;
pub mod figures;
pub mod grid;
pub mod markdown;
pub mod results;
pub mod stats;

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::{Context, Result};

pub use analysis::{analyse, Analysis};
pub use grid::Grid;
pub use results::{read_dirs, Results};

/// What a report run wrote, with the numbers behind it.
pub struct Report {
    pub markdown: PathBuf,
    /// Fig. 2 and Fig. 3, each as PNG then SVG.
    pub figures: Vec<PathBuf>,
    pub results: Results,
    pub grid: Grid,
    pub analysis: Analysis,
}

/// Reads and merges the result directories and writes report.md and the figures into `out` (default: the first
/// directory).
pub fn write_report(dirs: &[PathBuf], out: Option<&Path>) -> Result<Report> {
    let mut results = read_dirs(dirs)?;
    let out = match out {
        Some(o) => o.to_path_buf(),
        None if dirs[0].is_dir() => dirs[0].clone(),
        None => dirs[0].parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    std::fs::create_dir_all(&out).context(out.display())?;
    let grid = Grid::new(std::mem::take(&mut results.records));
    let analysis = analyse(&grid);
    let (svg2, png2) = figures::render(
        &figures::Fig2 {
            grid: &grid,
            analysis: &analysis,
        },
        &out.join("fig2_contexts"),
    )?;
    let (svg3, png3) = figures::render(&figures::Fig3 { grid: &grid }, &out.join("fig3_networks"))?;
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let md = markdown::render(
        &results,
        &grid,
        &analysis,
        (&name(&png2), &name(&svg2)),
        (&name(&png3), &name(&svg3)),
    );
    let markdown = out.join("report.md");
    std::fs::write(&markdown, md).context(markdown.display())?;
    Ok(Report {
        markdown,
        figures: vec![png2, svg2, png3, svg3],
        results,
        grid,
        analysis,
    })
}

impl Report {
    /// The paths and headline numbers as one JSON object.
    pub fn summary_json(&self) -> serde_json::Value {
        let g = &self.grid;
        let a = &self.analysis;
        let beats: Vec<_> = a
            .beats
            .iter()
            .map(|b| json!({"variant": b.variant, "score": g.label(&b.measure), "wins": b.wins, "total": b.total}))
            .collect();
        let spearman: Vec<_> = a
            .spearman
            .iter()
            .filter(|s| s.combo.is_none())
            .map(|s| json!({"variant": s.variant, "test": g.label(&s.measure), "rho": s.rho, "contexts": s.contexts}))
            .collect();
        let pearson: Vec<_> = a
            .pearson
            .iter()
            .map(|p| {
                let row = match &p.row {
                    analysis::Row::Baseline => "baseline".to_string(),
                    analysis::Row::Adapted(v) => format!("adapted {v}"),
                };
                json!({"scores": row, "test": g.label(&p.measure), "mean_pairwise_r": p.mean_off_diagonal})
            })
            .collect();
        json!({
            "report": self.markdown,
            "figures": self.figures,
            "files": self.results.files,
            "warnings": self.results.warnings,
            "duplicates_dropped": self.results.duplicates,
            "cells": a.header.cells,
            "baseline_cells": a.header.baseline_cells,
            "adapted_cells": a.header.adapted_cells,
            "nets": a.header.nets,
            "methods": a.header.methods,
            "contexts": g.contexts.len(),
            "seeds": a.header.seeds,
            "in_distribution": g.in_distribution,
            "out_of_distribution": g.ood,
            "wall_seconds": a.header.wall_seconds,
            "beats_baseline": beats,
            "spearman": spearman,
            "pearson": pearson,
        })
    }
}
