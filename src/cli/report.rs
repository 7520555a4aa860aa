use std::path::PathBuf;

use clap::Args;

use dps_gpu::Result;

use super::print_json;

#[derive(Args)]
pub struct ReportArgs {
    /// Sweep directories (each with the results.jsonl `dps-gpu sweep` writes), merged into one report.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Where report.md and the figures go (default: the first DIR).
    #[arg(long, value_name = "OUTDIR")]
    out: Option<PathBuf>,
    /// Print one JSON object with the paths and the headline numbers.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let report = dps_gpu::report::write_report(&a.dirs, a.out.as_deref())?;
    if a.json {
        print_json(&report.summary_json());
        return Ok(());
    }
    for w in &report.results.warnings {
        eprintln!("warning: {w}");
    }
    println!("{}", report.markdown.display());
    for f in &report.figures {
        println!("{}", f.display());
    }
    Ok(())
}
