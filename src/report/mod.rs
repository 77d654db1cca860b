//! Reports of a run: PNG charts drawn from search results.

pub mod plot;
