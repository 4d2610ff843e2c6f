//! Opens a damaged copy of a pristine kvhost store and walks it (lists and reads every key,
//! writes one per bucket). The input is a list of damages, 5 bytes each: a little-endian u32
//! offset into the file and a byte to XOR there. Any panic that escapes kvhost is a finding.
#![no_main]

#[path = "../../crates/kvhost/tests/damage/mod.rs"]
mod damage;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|damages: &[u8]| {
    static PRISTINE: OnceLock<Vec<u8>> = OnceLock::new();
    let mut bytes = PRISTINE
        .get_or_init(|| {
            // libFuzzer's panic hook aborts on every panic; a panic kvhost contains (and turns
            // into a "store damaged" error) is not a finding, so it passes that hook by.
            let abort = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !kvhost::backend::embedded::containing_panic() {
                    abort(info);
                }
            }));
            damage::pristine()
        })
        .clone();
    let length = bytes.len();
    for damage in damages.chunks_exact(5) {
        let offset = u32::from_le_bytes([damage[0], damage[1], damage[2], damage[3]]) as usize;
        bytes[offset % length] ^= damage[4];
    }
    // Errors are the expected outcome; only a panic (which libFuzzer catches) is a finding.
    let _ = damage::walk(&bytes);
});
