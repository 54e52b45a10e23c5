//! `mytracks`: parse the command line and hand over to the library, where everything else
//! lives so that it can be tested.

use clap::Parser;

fn main() -> std::process::ExitCode {
    mytracks::execute(mytracks::Cli::parse())
}
