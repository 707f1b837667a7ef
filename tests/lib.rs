//! Integration tests, compiled as one binary.

mod support;

mod browser;
mod check;
mod commonmark;
mod crash;
mod dialects;
mod document;
mod export_tools;
mod fuzz;
mod hostile;
mod hostile_config;
mod hostile_exports;
mod hostile_masking;
mod hostile_notebooks;
mod hostile_runtime;
mod hostile_templates;
mod hostile_writes;
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
