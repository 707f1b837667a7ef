//! Where runbooks go and come from: Jupyter and Polyglot notebooks, and
//! CI pipelines that run them.

pub mod notebook;
pub mod shown;
pub mod workflow;
