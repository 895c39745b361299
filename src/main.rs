use clap::Parser;

/// Counts allocations only while `apitool profile` asks it to: otherwise one relaxed load per
/// allocation (see `apitool::profile::alloc`).
#[global_allocator]
static ALLOC: apitool::profile::alloc::Counting = apitool::profile::alloc::Counting;

fn main() {
    let cli = apitool::cli::Cli::parse();
    std::process::exit(apitool::cli::run(cli));
}
