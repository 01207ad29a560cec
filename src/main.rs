//! The `openclaw-mcp` binary: parse flags, load and validate settings, start logging, run.
//! Bad configuration is one line on stderr and exit code 64; `--help` and `--version` exit 0.
//! A secret given as a flag is warned about once logging runs (see `Cli::secret_flags`).

use clap::Parser;
use openclaw_mcp::{
    app,
    cli::{Cli, Command},
    config::{EXIT_CONFIG, Settings},
    telemetry,
};

/// On musl (the static Linux builds of the release), mimalloc instead of musl's allocator, which
/// takes one lock for every allocation and loses a large share of throughput once several
/// threads allocate at once (the figures are in docs/development.md, "The musl builds and their
/// allocator"). The feature `musl-system-allocator` keeps musl's, to measure the difference.
#[cfg(all(target_env = "musl", not(feature = "musl-system-allocator")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => EXIT_CONFIG,
            };
            // clap writes help and version to stdout and errors to stderr.
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let settings = match Settings::load(&cli) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("openclaw-mcp: configuration error: {e}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    if let Some(Command::Healthcheck { url }) = &cli.command {
        let url = url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}/health", settings.http.port));
        std::process::exit(match app::healthcheck(&url) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("openclaw-mcp healthcheck: {e}");
                1
            }
        });
    }
    telemetry::init(settings.debug);
    if let Some(Command::Pair { instance, wait }) = &cli.command {
        app::install_crypto_provider();
        std::process::exit(openclaw_mcp::pair::run(
            &settings,
            instance.as_deref(),
            std::time::Duration::from_secs(*wait),
        ));
    }
    if let Some(Command::RotateSigningKey { retire_now }) = &cli.command {
        std::process::exit(app::rotate_signing_key(&settings, *retire_now));
    }
    for secret in cli.secret_flags() {
        // Names only: the value is not ours to repeat.
        tracing::warn!(
            flag = %secret.flag,
            env = %secret.env,
            env_file = %secret.env_file,
            "WARNING: a secret on the command line can be read by any local user (ps, /proc); set it in the environment variable, or its _FILE form (a file holding it), instead"
        );
    }
    std::process::exit(app::run(settings));
}
