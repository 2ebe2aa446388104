//! Change review (SPEC §7): what a change to the manifests would do, host
//! by host, before it merges — every host entry's catalog compiled at two
//! revisions and compared, with no host touched.

pub mod diff;
pub mod parity;
