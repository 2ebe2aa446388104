//! The agent's settings file (/etc/tend/agent.yaml) on any text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = tend::agent::settings::parse(std::path::Path::new("/etc/tend/agent.yaml"), text);
});
