//! The `dbl` subcommands, one file each: an `Args` struct (clap) and `run`.

pub mod eval;
pub mod inspect;
pub mod synth;
pub mod tokenize;
pub mod vocab;
