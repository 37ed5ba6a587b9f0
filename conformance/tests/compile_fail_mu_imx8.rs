//! Compile-fail tests for `mu-imx8`: misuse of the channel ownership and
//! direction type-states must not compile, for the intended reason (the
//! `.stderr` snapshots pin the error code and the refusing type).
//!
//! Regenerate after a deliberate change with `TRYBUILD=overwrite cargo test
//! -p conformance --test compile_fail_mu_imx8`, then read every changed
//! `.stderr`. Snapshots are taken with the host stable toolchain.

#[test]
#[cfg_attr(miri, ignore = "trybuild invokes rustc; snapshots are for host stable")]
fn mu_imx8_misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui-mu-imx8/*.rs");
}
