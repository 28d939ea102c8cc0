//! The `experiment` binary's library: the classifier, its configuration, training with
//! burn-train, comparisons and their reports, and predictions. The binary (`main.rs`) only parses
//! the command line and reports errors.
//!
//! ```
//! use experiment::config::ExperimentConfig;
//!
//! // The defaults: 4 heads, d_model 64, positional encoding, the embedded synthetic dataset.
//! let config = ExperimentConfig::default();
//! assert_eq!(config.run_name(), "synthetic-h4-pe-s42");
//! let model = config.model_config(178, 2); // vocabulary size, classes
//! assert_eq!((model.heads, model.d_model, model.pe), (4, 64, true));
//! assert!(ExperimentConfig { heads: 3, ..config }.validate().is_err()); // 3 does not divide 64
//! ```

pub mod analysis;
pub mod backend;
pub mod charts;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod model;
pub mod predict;
pub mod render;
pub mod report;
pub mod run;
pub mod run_dir;
pub mod step_metrics;
pub mod trained;
pub mod workers;
