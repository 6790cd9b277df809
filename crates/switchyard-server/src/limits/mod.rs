//! Who may call and how much: client keys with their requests and tokens per minute, concurrency and the
//! models they may use, and spending budgets per day, month or in total. Counting is local, or shared through
//! [`crate::replicas`] when replicas run.

pub(crate) mod budget;
pub(crate) mod keys;
