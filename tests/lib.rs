//! Integration tests, compiled as one binary.

mod support;

mod check;
mod document;
mod list;
mod replay;
mod run;
mod state;
