//! Compile-fail tests: misuse of the `ipc-traits` type-states must not
//! compile, and must fail for the intended reason.
//!
//! Each file in `tests/ui/` is one misuse, written as the program a user
//! would write if the type-state were missing; its `.stderr` snapshot pins
//! the exact error (error code and the type that refuses), so the test cannot
//! pass because of an unrelated mistake in the file.
//!
//! Regenerate the snapshots after a deliberate change to `ipc-traits` or to a
//! toolchain's diagnostics with `TRYBUILD=overwrite cargo test -p conformance
//! --test compile_fail`, then read every changed `.stderr`. The snapshots are
//! taken with the host stable toolchain (docs/toolchain.md); other toolchains
//! word diagnostics differently, so this test is meant for host stable only.
//! Miri cannot spawn the compiler at all, hence the `ignore` under Miri.

#[test]
#[cfg_attr(miri, ignore = "trybuild invokes rustc; snapshots are for host stable")]
fn type_state_misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
