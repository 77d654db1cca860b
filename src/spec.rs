//! What an executor needs to know about the data a network sees.

use serde::{Deserialize, Serialize};

/// Input shape, classes and time steps of a dataset, as the plan compiler sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSpec {
    /// Input channels (1 for digits, 3 for CIFAR, 2 polarities for event data).
    pub in_ch: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    /// Time steps T.
    pub timesteps: usize,
    /// Event data (T distinct frames) rather than a static image repeated T times.
    pub event: bool,
}

impl DataSpec {
    /// Values per sample per time step.
    pub fn frame_len(&self) -> usize {
        self.in_ch * self.height * self.width
    }
}
