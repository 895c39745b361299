use clap::Parser;

fn main() {
    let cli = apitool::cli::Cli::parse();
    std::process::exit(apitool::cli::run(cli));
}
