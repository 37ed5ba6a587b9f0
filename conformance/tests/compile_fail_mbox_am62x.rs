//! Compile-fail tests for `mbox-am62x`: misuse of the queue type-states and
//! of the split/join ownership must not compile, and must fail for the
//! intended reason.
//!
//! Each file in `tests/ui-mbox-am62x/` is one misuse; its `.stderr` snapshot
//! pins the error code and the type that refuses. Regenerate with
//! `TRYBUILD=overwrite cargo test -p conformance --test compile_fail_mbox_am62x`
//! and read every changed snapshot. Snapshots are taken with the host stable
//! toolchain; Miri cannot run the compiler, hence the `ignore` under Miri.

#[test]
#[cfg_attr(miri, ignore = "trybuild invokes rustc; snapshots are for host stable")]
fn mbox_am62x_misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui-mbox-am62x/*.rs");
}
