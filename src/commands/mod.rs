//! One module a command: `run`, `serve`, `check`, `test`, `list`, `status`
//! (with the table they print); `import` and `export` live in the notebooks.

pub mod check;
pub mod list;
pub mod new;
pub mod run;
pub mod serve;
pub mod status;
pub mod table;
pub mod testing;
