//! The whole configuration of a run, one name for each part. Each section is defined, with its
//! checks, in the layer that uses it: the search space in [`crate::genome`], `data` in
//! [`crate::data`], `train` in [`crate::train`], `search` and the whole [`Config`] (presets,
//! config files, `--set`) in [`crate::evolve::config`]. Nothing in the library imports this
//! module; it is the one place a configuration's parts are gathered for callers.

pub use crate::data::{DataConfig, MAX_INPUT_SIZE};
pub use crate::evolve::config::{
    preset, Config, SearchConfig, ShortTrainConfig, MAX_GENERATIONS, MAX_POPULATION,
};
pub use crate::genome::SearchSpace;
pub use crate::train::{TrainConfig, MAX_BATCH};
