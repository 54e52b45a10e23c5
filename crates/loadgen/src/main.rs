//! `mytracks-load`: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    mytracks_loadgen::execute(mytracks_loadgen::Cli::parse())
}
