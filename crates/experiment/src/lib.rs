//! The `experiment` binary's library: the classifier, its configuration, and training with
//! burn-train. The binary (`main.rs`) only parses the command line and reports errors.

pub mod backend;
pub mod config;
pub mod model;
pub mod render;
pub mod run;
