//! Evolutionary search on the host.

pub mod nsga2;
