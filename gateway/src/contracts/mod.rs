//! One module per public contract (the seeds in `shared/seeds/`).

pub mod ojin;
