//! Versioned CPython bindings: byte offsets, sizes and constants per minor
//! version, kept apart from the walking logic.
//!
//! Everything in [`generated`] is produced by `tools/gen-offsets/gen.sh`, which
//! compiles `tools/gen-offsets/offsets.c` against each version's own headers
//! with `-DPy_BUILD_CORE`. Nothing there is typed by hand. This module only
//! adds the lookup by version and the type of the `_Py_DebugOffsets` checks.

#[rustfmt::skip]
mod generated;

pub use generated::{Layout, LAYOUTS};

/// One entry of CPython 3.13+'s `_Py_DebugOffsets` that must equal a field of
/// the generated [`Layout`].
#[derive(Debug, Clone, Copy)]
pub struct DebugCheck {
    /// Name of the [`Layout`] field.
    pub field: &'static str,
    /// Member path inside `_Py_DebugOffsets`, e.g. `thread_state.current_frame`.
    pub debug_name: &'static str,
    /// Byte position of that `uint64_t` inside `_Py_DebugOffsets`.
    pub pos: u32,
    /// Value the generated layout has for `field`.
    pub expected: u32,
}

impl Layout {
    /// The layout generated for `major.minor`, if that version is supported.
    pub fn for_version(major: u32, minor: u32) -> Option<&'static Layout> {
        LAYOUTS
            .iter()
            .find(|l| l.version.0 == major && l.version.1 == minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(minor: u32) -> &'static Layout {
        Layout::for_version(3, minor).unwrap()
    }

    #[test]
    fn every_supported_version_has_a_layout() {
        for minor in 8..=14 {
            assert_eq!(l(minor).version.1, minor);
        }
        assert!(Layout::for_version(3, 7).is_none());
        assert!(Layout::for_version(3, 15).is_none());
        assert!(Layout::for_version(2, 7).is_none());
    }

    /// Numbers from §5 of the verified fact sheet (cpython-frames.md).
    #[test]
    fn matches_fact_sheet() {
        assert_eq!(l(11).iframe_previous, Some(48));
        assert_eq!(l(11).iframe_f_code, Some(32));
        assert_eq!(l(11).iframe_prev_instr, Some(56));
        assert_eq!(l(11).iframe_owner, Some(69));
        assert_eq!(l(11).cframe_current_frame, Some(8));
        assert_eq!(l(11).tstate_cframe, Some(56));
        assert_eq!(l(11).code_co_code_adaptive, Some(184));
        assert_eq!(l(12).iframe_owner, Some(70));
        assert_eq!(l(12).iframe_previous, Some(8));
        assert_eq!(l(12).cframe_current_frame, Some(0));
        assert_eq!(l(12).tstate_thread_id, Some(136));
        assert_eq!(l(12).interp_gil, Some(1040));
        assert_eq!(l(13).tstate_current_frame, Some(72));
        assert_eq!(l(13).tstate_status_holds_gil_bit, Some(5));
        assert_eq!(l(13).interp_next, Some(7264));
        assert_eq!(l(14).iframe_owner, Some(74));
        assert_eq!(l(14).tstate_holds_gil, Some(36));
        assert_eq!(l(14).tstate_sizeof, Some(832));
        assert_eq!(l(14).code_co_firsttraceable, Some(192));
        assert_eq!(l(14).stackref_tag_bits, Some(3));
        assert_eq!(l(14).owner_interpreter, Some(3));
        assert_eq!(l(14).owner_cstack, Some(4));
        assert_eq!(l(12).owner_cstack, Some(3));
        assert_eq!(l(8).frameobj_f_lasti, Some(104));
        assert_eq!(l(10).frameobj_f_lasti, Some(96));
        assert_eq!(l(8).frameobj_f_back, Some(24));
        assert_eq!(l(8).frameobj_f_code, Some(32));
        assert_eq!(l(8).tstate_thread_id, Some(176));
        assert_eq!(l(8).runtime_gil, Some(1152));
        assert_eq!(l(8).code_co_lnotab, Some(120));
        assert_eq!(l(8).code_co_linetable, None);
        assert_eq!(l(10).code_co_linetable, Some(120));
        assert_eq!(l(9).ascii_sizeof, Some(48));
        assert_eq!(l(12).ascii_sizeof, Some(40));
        assert_eq!(l(12).compact_sizeof, Some(56));
        assert_eq!(l(8).runtime_sizeof, Some(1464));
        assert_eq!(l(14).runtime_sizeof, Some(316616));
        assert_eq!(l(13).dbg_sizeof, Some(584));
        assert_eq!(l(14).dbg_sizeof, Some(760));
        for minor in 8..=14 {
            assert_eq!(l(minor).object_ob_type, Some(8));
            assert_eq!(l(minor).bytes_ob_size, Some(16));
            assert_eq!(l(minor).bytes_ob_sval, Some(32));
            assert_eq!(l(minor).unicode_state, Some(32));
            assert_eq!(l(minor).unicode_state_kind_shift, Some(2));
            assert_eq!(l(minor).unicode_state_compact_bit, Some(5));
            assert_eq!(l(minor).unicode_state_ascii_bit, Some(6));
        }
    }

    #[test]
    fn debug_checks_only_on_313_plus() {
        for minor in 8..=12 {
            assert!(l(minor).debug_checks.is_empty());
        }
        for minor in 13..=14 {
            let checks = l(minor).debug_checks;
            assert!(checks.len() > 40, "{}", checks.len());
            let cf = checks
                .iter()
                .find(|c| c.field == "tstate_current_frame")
                .unwrap();
            assert_eq!(cf.expected, 72);
        }
    }
}
