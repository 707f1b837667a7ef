//! The document: a runbook as text and as a model. Parsing is pure
//! (`&str` to [`Runbook`], every element with its byte span); the writer
//! splices output blocks back into the original bytes; only the loader
//! reads, and only `atomic` writes, files.

pub mod atomic;
pub mod attrs;
pub mod duration;
pub mod frontmatter;
pub mod lines;
pub mod loader;
mod model;
pub mod parser;
pub mod paths;
pub mod pieces;
pub mod snapshot;
pub mod suggest;
pub mod writer;

pub use model::*;
