//! The `edgec` binary: parses flags, runs the command, maps errors to exit codes.

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    // The long version names what this build links (LLVM) and its backends, known at run time.
    let version: &'static str = Box::leak(edgec::cli::version_text().into_boxed_str());
    let matches = edgec::cli::Cli::command().version(version).try_get_matches();
    let cli = match matches.and_then(|m| edgec::cli::Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // A panic is a bug in edgec: report it as an internal error (exit 1), not as a crash.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let loc = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("edgec: internal error: panic{loc}: {msg}");
    }));
    match std::panic::catch_unwind(|| edgec::cli::run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            // One line, whatever the error's own formatting.
            let msg = e.to_string().replace('\n', "; ");
            eprintln!("edgec: error: {msg}");
            ExitCode::from(e.exit_code() as u8)
        }
        Err(_) => ExitCode::from(1),
    }
}
