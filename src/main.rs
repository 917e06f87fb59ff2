//! The `scraipe` command: `scrape` a list of URLs to JSONL/CSV, run the self-contained `demo`,
//! or `serve-demo` for outside tools.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // --help and --version print and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    #[cfg(feature = "observatory")]
    if let Err(e) = observe_from_env() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// `SCRAIPE_OBSERVE=timing,trace` (feature `observatory`): switches the observatory's timing
/// and scheduler trace on for the whole run, e.g. to measure what they cost end to end or to
/// have the flight recorder filled for `--observe`. `timing=N` times one poll in N instead of
/// sampling adaptively (`timing=1`: every poll).
#[cfg(feature = "observatory")]
fn observe_from_env() -> Result<(), String> {
    let Ok(parts) = std::env::var("SCRAIPE_OBSERVE") else {
        return Ok(());
    };
    for part in parts.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "timing" => scraipe::rt::observe::set_timing(true),
            // Timing of one poll (and wake) in N instead of the adaptive sampling; 1: all.
            p if p.starts_with("timing=") => {
                let n = p["timing=".len()..]
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        format!("SCRAIPE_OBSERVE: {p:?}: timing=N takes a whole number N ≥ 1")
                    })?;
                scraipe::rt::observe::set_timing_sampling(
                    scraipe::rt::observe::TimingSampling::OneIn(n),
                );
                scraipe::rt::observe::set_timing(true)
            }
            "trace" => scraipe::rt::observe::set_tracing(true),
            other => {
                return Err(format!(
                    "SCRAIPE_OBSERVE: unknown part {other:?} (expected timing, timing=N, trace)"
                ))
            }
        }
    }
    Ok(())
}
