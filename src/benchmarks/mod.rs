//! Benchmarks of the method itself, above the search: the ranking benchmark of the
//! training-free scores against trained accuracy ([`proxy`], [`proxy_extra`], its typed
//! [`columns`]), and the search
//! against random architectures at equal training budget ([`versus`]).

pub mod columns;
pub mod proxy;
pub mod proxy_extra;
pub mod versus;
