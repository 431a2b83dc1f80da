//! The `dbl` subcommands, one file each: an `Args` struct (clap) and `run`.

pub mod bench;
pub mod bounds;
pub mod checkpoint_args;
pub mod demo;
pub mod eval;
pub mod explain;
pub mod import;
pub mod import_torch;
pub mod index;
pub mod inspect;
pub mod model;
pub mod out_path;
pub mod report;
pub mod score;
pub mod search;
pub mod serve;
pub mod sweep;
pub mod synth;
pub mod tokenize;
pub mod train;
pub mod vocab;
