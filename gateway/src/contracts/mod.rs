//! One module per public contract (the seeds in `shared/seeds/`).

pub mod links;
pub mod ojin;
pub mod otas;
