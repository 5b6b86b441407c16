//! CPython 3.13+ `_Py_DebugOffsets`: the interpreter's own table of struct
//! offsets, at `&_PyRuntime + 0`.
//!
//! Used as an independent check of the generated [`Layout`]: the header must
//! carry the cookie `xdebugpy` and the running version, the build must not be
//! free-threaded, and every entry that has a counterpart in the layout (listed
//! in `Layout::debug_checks`, generated alongside it) must be equal. A
//! mismatch names the field, so a patch release that moved a struct member is
//! reported instead of sampled wrongly.

use crate::layout::Layout;
use crate::memory::MemoryReader;
use crate::SamplerError;

/// The cookie at the start of `_Py_DebugOffsets`.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// Parsed header of `_Py_DebugOffsets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugHeader {
    /// `PY_VERSION_HEX` of the running interpreter.
    pub version: u64,
    /// Nonzero for free-threaded builds.
    pub free_threaded: u64,
}

fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    let b = buf.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_ne_bytes(a))
}

/// Checks a copy of `_Py_DebugOffsets` against `layout`. `version` is the
/// running interpreter's `(major, minor, micro)`. Returns the header and the
/// number of fields compared.
pub fn check_bytes(
    layout: &Layout,
    buf: &[u8],
    version: (u32, u32, u32),
) -> Result<(DebugHeader, usize), SamplerError> {
    let (Some(cookie_off), Some(ver_off), Some(ft_off)) = (
        layout.dbg_cookie,
        layout.dbg_version,
        layout.dbg_free_threaded,
    ) else {
        return Err(SamplerError::DebugOffsets(
            "this layout has no _Py_DebugOffsets (CPython < 3.13)".into(),
        ));
    };
    let bad = |m: String| SamplerError::DebugOffsets(m);
    let cookie = buf
        .get(cookie_off as usize..cookie_off as usize + 8)
        .ok_or_else(|| bad("copy too short".into()))?;
    if cookie != COOKIE {
        return Err(bad(format!(
            "cookie is {:?}, expected \"xdebugpy\": _PyRuntime is not where expected or this is not CPython 3.13+",
            String::from_utf8_lossy(cookie)
        )));
    }
    let hdr = DebugHeader {
        version: u64_at(buf, ver_off as usize).ok_or_else(|| bad("copy too short".into()))?,
        free_threaded: u64_at(buf, ft_off as usize).ok_or_else(|| bad("copy too short".into()))?,
    };
    let running = (
        hdr.version >> 24,
        (hdr.version >> 16) & 0xff,
        (hdr.version >> 8) & 0xff,
    );
    let wanted = (
        u64::from(version.0),
        u64::from(version.1),
        u64::from(version.2),
    );
    if running != wanted {
        return Err(bad(format!(
            "version is {}.{}.{} (hex {:#x}), but discover() was told {}.{}.{}",
            running.0, running.1, running.2, hdr.version, wanted.0, wanted.1, wanted.2
        )));
    }
    if hdr.free_threaded != 0 {
        return Err(SamplerError::UnsupportedBuild(
            "free-threaded (no-GIL) CPython builds are not supported".into(),
        ));
    }
    for c in layout.debug_checks {
        let found = u64_at(buf, c.pos as usize)
            .ok_or_else(|| bad(format!("copy too short for {}", c.debug_name)))?;
        if found != u64::from(c.expected) {
            return Err(SamplerError::LayoutMismatch(format!(
                "_Py_DebugOffsets.{} = {found}, but the layout generated from {}.{}.{} headers has {} = {}; \
                 this CPython {}.{}.{} build differs from those headers (regenerate with tools/gen-offsets/gen.sh)",
                c.debug_name,
                layout.version.0,
                layout.version.1,
                layout.version.2,
                c.field,
                c.expected,
                version.0,
                version.1,
                version.2
            )));
        }
    }
    Ok((hdr, layout.debug_checks.len()))
}

/// Copies `_Py_DebugOffsets` from `runtime` and checks it (see [`check_bytes`]).
pub fn check(
    reader: &MemoryReader,
    layout: &Layout,
    runtime: usize,
    version: (u32, u32, u32),
) -> Result<(DebugHeader, usize), SamplerError> {
    let size = layout.dbg_sizeof.ok_or_else(|| {
        SamplerError::DebugOffsets("this layout has no _Py_DebugOffsets (CPython < 3.13)".into())
    })? as usize;
    let at = runtime.wrapping_add(layout.runtime_debug_offsets.unwrap_or(0) as usize);
    let mut buf = vec![0u8; size];
    reader.read(at, &mut buf).map_err(|e| SamplerError::Read {
        what: "_Py_DebugOffsets",
        source: e,
    })?;
    check_bytes(layout, &buf, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `_Py_DebugOffsets` built from the generated checks themselves.
    fn fake(layout: &Layout, hex: u64) -> Vec<u8> {
        let mut b = vec![0u8; layout.dbg_sizeof.unwrap() as usize];
        b[..8].copy_from_slice(COOKIE);
        let v = layout.dbg_version.unwrap() as usize;
        b[v..v + 8].copy_from_slice(&hex.to_ne_bytes());
        for c in layout.debug_checks {
            let p = c.pos as usize;
            b[p..p + 8].copy_from_slice(&u64::from(c.expected).to_ne_bytes());
        }
        b
    }

    #[test]
    fn accepts_matching_and_names_mismatch() {
        for minor in [13, 14] {
            let l = Layout::for_version(3, minor).unwrap();
            let hex = (3u64 << 24) | (u64::from(minor) << 16) | (2 << 8) | 0xf0;
            let mut b = fake(l, hex);
            let (hdr, n) = check_bytes(l, &b, (3, minor, 2)).unwrap();
            assert_eq!(hdr.version, hex);
            assert!(n > 40);

            // wrong micro version
            assert!(check_bytes(l, &b, (3, minor, 3)).is_err());

            // one field moved
            let c = l
                .debug_checks
                .iter()
                .find(|c| c.field == "iframe_owner")
                .unwrap();
            let p = c.pos as usize;
            b[p..p + 8].copy_from_slice(&99u64.to_ne_bytes());
            let e = check_bytes(l, &b, (3, minor, 2)).unwrap_err().to_string();
            assert!(e.contains("interpreter_frame.owner"), "{e}");
            assert!(e.contains("iframe_owner"), "{e}");

            // bad cookie
            let mut b = fake(l, hex);
            b[0] = b'X';
            assert!(check_bytes(l, &b, (3, minor, 2)).is_err());

            // free-threaded
            let mut b = fake(l, hex);
            let f = l.dbg_free_threaded.unwrap() as usize;
            b[f] = 1;
            assert!(matches!(
                check_bytes(l, &b, (3, minor, 2)),
                Err(SamplerError::UnsupportedBuild(_))
            ));
        }
    }
}
