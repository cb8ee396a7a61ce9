//! The `lty` binary.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    lty_server::cli::main()
}
