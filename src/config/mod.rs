//! Settings: every knob of the bridge, layered with figment (defaults < TOML file < environment <
//! command-line flags), then validated once into typed [`Settings`].
//!
//! The names are those of openclaw-mcp 1.7.0 (`OPENCLAW_URL`, `--openclaw-url`, `PORT`, …) so that
//! an existing deployment keeps working when only the command changes. Unlike 1.7.0, every bad
//! value is one [`ConfigError`] naming the setting *where it came from* (the environment variable,
//! the flag or the key in the file), and `main` turns it into one stderr line and exit code 64.
//!
//! [`SETTINGS`] is the single table of names: the environment layer is read from it, error messages
//! are named from it, and `docs/configuration.md` is checked against it.
//!
//! The module is split along its seams: `names` (the table), `settings` (the typed result),
//! `load` (the layers: TOML file, environment, flags), `validate` (values into settings), `values`
//! (single-value parsers and rules) and `instances` (`OPENCLAW_INSTANCES`). Dependencies go one
//! way: names and settings depend on nothing here; values on settings; instances on values and
//! settings; validate on all four; load on names, settings and validate.

mod instances;
mod load;
mod names;
mod settings;
mod validate;
mod values;

pub use instances::*;
pub use names::*;
pub use settings::*;
pub use values::*;

#[cfg(test)]
mod tests;
