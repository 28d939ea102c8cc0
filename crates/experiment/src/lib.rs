//! The `experiment` binary's library: the classifier, its configuration, training with
//! burn-train, comparisons and their reports, and predictions. The binary (`main.rs`, with the
//! clap arguments in `cli.rs`) only parses the command line, dispatches and reports errors.
//!
//! Dependencies run one way (cli → config → data → train → run folder; compare → train →
//! evaluate → report): no module imports one that imports it.
//!
//! | module | its one job |
//! |---|---|
//! | [`config`] | the experiment's configuration (TOML sections `[data]`, `[model]`, `[train]` + flags), reading 0.1's flat files ([`config::flat`]), and the data and training keys' checks |
//! | [`model`] | the classifier, its hyperparameters (`ModelOptions`, the `[model]` section) and their checks, loading its records |
//! | [`data`] | dataset, vocabulary and text → batch, for every caller |
//! | [`backend`] | backend choice and device probe |
//! | [`train`] | `train` and `resume`: the learner set-up and the classifier's training step; [`train::render`] what the user sees while training (compact log, dashboard shield, NaN guard); [`train::step_metrics`] the step's metrics; [`train::workers`] CPU data-parallel workers |
//! | [`run_dir`] | the run-folder contract: files, lock, labels, metrics, summary |
//! | [`checkpoint`] | checkpoint names and the point a run resumes from |
//! | [`evaluate`] | loss and accuracy of a kept model |
//! | [`trained`] | a finished run loaded back; prediction |
//! | [`compare`] | conditions × seeds, reusing finished runs |
//! | [`analysis`] | which tokens each head attends to |
//! | [`baseline`] | the bag-of-words baseline (TF-IDF + logistic regression) |
//! | [`heads`] | which heads matter: masking, importance, pruning curve, entropy |
//! | [`report`] | the comparison's report, and every chart ([`report::charts`]) |
//! | [`predict`] | terminal rendering of a prediction |
//!
//! ```
//! use experiment::config::ExperimentConfig;
//!
//! // The defaults: 4 heads, d_model 64, positional encoding, the embedded synthetic dataset.
//! let config = ExperimentConfig::default();
//! assert_eq!(config.run_name(), "synthetic-h4-pe-s42");
//! let model = config.model_config(178, 2); // vocabulary size, classes
//! assert_eq!((model.options.heads, model.options.d_model), (4, 64));
//! assert_eq!(model.options.positions, experiment::model::Positions::Sinusoidal);
//! let mut three = config.clone();
//! three.model.heads = 3;
//! assert!(three.validate().is_err()); // 3 does not divide 64
//!
//! // A TOML file has a section per part ([data], [model], [train]); keys left out keep defaults.
//! let (read, _) = ExperimentConfig::parse("[model]\nheads = 1\npositions = \"rope\"\n").unwrap();
//! assert_eq!(read.run_name(), "synthetic-h1-rope-s42");
//! ```

pub mod analysis;
pub mod backend;
pub mod baseline;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod heads;
pub mod model;
pub mod predict;
pub mod report;
pub mod run_dir;
pub mod train;
pub mod trained;
