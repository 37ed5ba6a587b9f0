//! The resource-table reader over arbitrary bytes: the table is written by
//! Linux (hostile input for the remote). Never panics; a table it accepts
//! has its vdev inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = rpmsg::rsc_table::parse(data) {
        assert!(
            info.offset + 28 + 40 <= data.len(),
            "vdev and its vrings lie inside the table"
        );
    }
});
