//! The `dps-gpu` command line: a thin layer over the library. Errors print one line on stderr and exit 1.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
