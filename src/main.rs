//! The `msenas` command line: parse, call the library, render.

fn main() {
    std::process::exit(msenas::cli::main());
}
