//! Integration tests, compiled as one binary.

mod support;

mod browser;
mod check;
mod commonmark;
mod crash;
mod document;
mod fuzz;
mod hostile;
mod lab;
mod lab_tools;
mod list;
mod notebook;
mod notebook_tools;
mod quoting;
mod replay;
mod run;
mod secrets;
mod serve;
mod state;
