//! One module a command: `run`, `check`, `test`, `list`, `status` (with
//! the table they print); `import` and `export` live in the notebooks.

pub mod check;
pub mod list;
pub mod new;
pub mod run;
pub mod status;
pub mod table;
pub mod testing;
