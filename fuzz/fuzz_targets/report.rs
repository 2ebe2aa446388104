//! Report ingestion: the log's body parser and its checks (SPEC §5) on
//! any bytes a host could post.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tend_log::parse_report(data);
});
