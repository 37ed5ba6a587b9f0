//! Compile-fail tests for `mbox-octeon`: misuse of its channel type-states
//! must not compile, and must fail for the intended reason.
//!
//! Each file in `tests/ui-mbox-octeon/` is one misuse; its `.stderr`
//! snapshot pins the error code and the type that refuses. Regenerate with
//! `TRYBUILD=overwrite cargo test -p conformance --test
//! compile_fail_mbox_octeon` and read every changed snapshot. Snapshots are
//! taken with the host stable toolchain (see `compile_fail.rs`).

#[test]
#[cfg_attr(miri, ignore = "trybuild invokes rustc; snapshots are for host stable")]
fn mbox_octeon_misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui-mbox-octeon/*.rs");
}
