fn main() -> std::process::ExitCode {
    match qrhub::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qrhub: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
