//! The `experiment` binary's library: the classifier, its configuration, training with
//! burn-train, comparisons and their reports, and predictions. The binary (`main.rs`) only parses
//! the command line and reports errors.

pub mod analysis;
pub mod backend;
pub mod charts;
pub mod compare;
pub mod config;
pub mod model;
pub mod predict;
pub mod render;
pub mod report;
pub mod run;
pub mod trained;
