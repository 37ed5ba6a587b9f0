//! Compile-fail tests for `msgbox-v853`: channel ownership and direction
//! misuse must not compile, and must fail for the intended reason.
//!
//! One misuse per file in `tests/ui-msgbox-v853/`; each `.stderr` snapshot
//! pins the error code and the type that refuses. Regenerate after a
//! deliberate change with `TRYBUILD=overwrite cargo test -p conformance
//! --test compile_fail_msgbox_v853` and read every changed snapshot. The
//! snapshots are taken with the host stable toolchain (docs/toolchain.md).

#[test]
#[cfg_attr(miri, ignore = "trybuild invokes rustc; snapshots are for host stable")]
fn msgbox_v853_misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui-msgbox-v853/*.rs");
}
