//! The manifest loader on any text: a role file or an environment file
//! (the first byte chooses), parsed with the loader's limits and checked.
//! It may say anything; it must not panic, hang or run out of memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = tend::manifest::check_text(choice & 1 == 1, "fuzz", text);
});
