//! The run report (its format is shared: `tend_common::report`), and the
//! agent's side of its way to the log: the spool, the sender, enrollment.

pub use tend_common::report::*;

pub mod enroll;
pub mod send;
pub mod spool;
