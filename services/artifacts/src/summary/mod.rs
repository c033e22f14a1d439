//! Session summaries: jobs on a Redis Stream with a consumer group, run by
//! every artifacts replica; a job whose consumer dies is claimed again
//! (`XAUTOCLAIM`) once idle, and one that fails `max_attempts` times is
//! dead-lettered.

pub mod jobs;
pub mod summarizer;
pub mod textrank;
pub mod transcript;
pub mod worker;
