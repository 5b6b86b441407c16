//! Decoding `str` and `bytes` objects copied out of the interpreter (or, for
//! the calling thread's own live objects, read directly: see
//! [`crate::memory::DirectMem`]).
//!
//! The object header is copied first, its `ob_type` is checked against the
//! real `PyUnicode_Type`/`PyBytes_Type`, and only then is the payload copied,
//! with a length cap. Handles compact ASCII, compact kind 1/2/4 and the
//! legacy non-compact form (data behind a pointer).

use crate::memory::{Mem, ReadError};

/// Longest name or path we copy, in characters.
pub const MAX_NAME_CHARS: usize = 4096;
/// Longest line table we copy, in bytes.
pub const MAX_LINETABLE_BYTES: usize = 1 << 20;

/// Why a string or bytes object could not be decoded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StrError {
    /// Copying failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// `ob_type` is not the expected type object.
    #[error("object at {addr:#x} has type {found:#x}, expected {expected:#x}")]
    WrongType {
        /// The object.
        addr: usize,
        /// Its `ob_type`.
        found: usize,
        /// The type it should have had.
        expected: usize,
    },
    /// Negative or otherwise impossible length, or an unknown kind.
    #[error("object at {addr:#x} is malformed ({what})")]
    Malformed {
        /// The object.
        addr: usize,
        /// What was wrong.
        what: &'static str,
    },
}

/// Where the fields of `str` and `bytes` objects are (from the generated layout).
#[derive(Debug, Clone, Copy)]
pub struct StrLayout {
    /// `PyObject.ob_type`.
    pub ob_type: usize,
    /// `PyASCIIObject.length`.
    pub length: usize,
    /// `PyASCIIObject.state` (32-bit bitfield word).
    pub state: usize,
    /// `sizeof(PyASCIIObject)`: where compact ASCII data starts.
    pub ascii_size: usize,
    /// `sizeof(PyCompactUnicodeObject)`: where compact non-ASCII data starts.
    pub compact_size: usize,
    /// `PyUnicodeObject.data`: pointer to the data of non-compact strings.
    pub data_ptr: usize,
    /// Bit position of `state.kind`.
    pub kind_shift: u32,
    /// Mask of `state.kind` after shifting.
    pub kind_mask: u32,
    /// Bit position of `state.compact`.
    pub compact_bit: u32,
    /// Bit position of `state.ascii`.
    pub ascii_bit: u32,
    /// `PyBytesObject.ob_size`.
    pub bytes_size: usize,
    /// `PyBytesObject.ob_sval`.
    pub bytes_sval: usize,
}

/// Turns the raw characters of a string of `kind` (1, 2 or 4 bytes per
/// character) into UTF-8. Invalid code points become U+FFFD.
pub fn decode_kind(kind: u32, raw: &[u8]) -> Option<String> {
    match kind {
        1 => Some(raw.iter().map(|&b| char::from(b)).collect()),
        2 => Some(
            raw.chunks_exact(2)
                .map(|c| {
                    let u = u32::from(u16::from_le_bytes([c[0], c[1]]));
                    char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect(),
        ),
        4 => Some(
            raw.chunks_exact(4)
                .map(|c| {
                    let u = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect(),
        ),
        _ => None,
    }
}

fn word(buf: &[u8], off: usize) -> Option<u64> {
    let b = buf.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_ne_bytes(a))
}

fn word32(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(u32::from_ne_bytes(a))
}

/// Copies and decodes the `str` at `addr`, keeping at most `max_chars`.
pub fn read_str<M: Mem + ?Sized>(
    reader: &M,
    l: &StrLayout,
    unicode_type: usize,
    addr: usize,
    max_chars: usize,
) -> Result<String, StrError> {
    let mut hdr = [0u8; 128];
    let hdr = hdr.get_mut(..l.ascii_size).ok_or(StrError::Malformed {
        addr,
        what: "layout",
    })?;
    reader.read(addr, hdr)?;
    let bad = |what| StrError::Malformed { addr, what };
    let ty = word(hdr, l.ob_type).ok_or(bad("header"))? as usize;
    if ty != unicode_type {
        return Err(StrError::WrongType {
            addr,
            found: ty,
            expected: unicode_type,
        });
    }
    let len = word(hdr, l.length).ok_or(bad("header"))? as i64;
    if len < 0 {
        return Err(bad("negative length"));
    }
    let state = word32(hdr, l.state).ok_or(bad("header"))?;
    let kind = (state >> l.kind_shift) & l.kind_mask;
    let compact = state & (1 << l.compact_bit) != 0;
    let ascii = state & (1 << l.ascii_bit) != 0;
    if !matches!(kind, 1 | 2 | 4) {
        return Err(bad("unknown kind (legacy wstr string?)"));
    }
    if ascii && kind != 1 {
        return Err(bad("ascii string with kind != 1"));
    }
    let chars = (len as usize).min(max_chars);
    let data = if compact {
        addr.wrapping_add(if ascii { l.ascii_size } else { l.compact_size })
    } else {
        let p = reader.read_usize(addr.wrapping_add(l.data_ptr))?;
        if p == 0 {
            return Err(bad("non-compact string without data"));
        }
        p
    };
    let mut raw = vec![0u8; chars * kind as usize];
    reader.read(data, &mut raw)?;
    if ascii {
        // Bytes above 0x7f cannot occur in a real ASCII string: stale memory.
        if raw.iter().any(|b| *b >= 0x80) {
            return Err(bad("non-ascii byte in ascii string"));
        }
    }
    decode_kind(kind, &raw).ok_or(bad("kind"))
}

/// Copies the payload of the `bytes` object at `addr` (at most `max_len`
/// bytes; a longer object is an error).
pub fn read_bytes<M: Mem + ?Sized>(
    reader: &M,
    l: &StrLayout,
    bytes_type: usize,
    addr: usize,
    max_len: usize,
) -> Result<Vec<u8>, StrError> {
    let mut hdr = [0u8; 24];
    reader.read(addr, &mut hdr)?;
    let bad = |what| StrError::Malformed { addr, what };
    let ty = word(&hdr, l.ob_type).ok_or(bad("header"))? as usize;
    if ty != bytes_type {
        return Err(StrError::WrongType {
            addr,
            found: ty,
            expected: bytes_type,
        });
    }
    let len = word(&hdr, l.bytes_size).ok_or(bad("header"))? as i64;
    if len < 0 {
        return Err(bad("negative length"));
    }
    if len as u64 > max_len as u64 {
        return Err(bad("longer than the cap"));
    }
    let mut out = vec![0u8; len as usize];
    reader.read(addr.wrapping_add(l.bytes_sval), &mut out)?;
    Ok(out)
}

/// Only the `ob_size` of the `bytes` object at `addr`, type-checked.
pub fn bytes_len<M: Mem + ?Sized>(
    reader: &M,
    l: &StrLayout,
    bytes_type: usize,
    addr: usize,
) -> Result<i64, StrError> {
    let mut hdr = [0u8; 24];
    reader.read(addr, &mut hdr)?;
    let bad = |what| StrError::Malformed { addr, what };
    let ty = word(&hdr, l.ob_type).ok_or(bad("header"))? as usize;
    if ty != bytes_type {
        return Err(StrError::WrongType {
            addr,
            found: ty,
            expected: bytes_type,
        });
    }
    let len = word(&hdr, l.bytes_size).ok_or(bad("header"))? as i64;
    if len < 0 {
        return Err(bad("negative length"));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryReader;

    /// 3.12+ layout, as generated.
    fn layout312() -> StrLayout {
        StrLayout {
            ob_type: 8,
            length: 16,
            state: 32,
            ascii_size: 40,
            compact_size: 56,
            data_ptr: 56,
            kind_shift: 2,
            kind_mask: 7,
            compact_bit: 5,
            ascii_bit: 6,
            bytes_size: 16,
            bytes_sval: 32,
        }
    }

    const FAKE_STR_TYPE: usize = 0x5555_0000;
    const FAKE_BYTES_TYPE: usize = 0x6666_0000;

    /// Builds a fake str object in a u64-aligned buffer.
    fn fake_str(l: &StrLayout, s: &str, force_kind: Option<u32>, compact: bool) -> Vec<u64> {
        let cps: Vec<u32> = s.chars().map(u32::from).collect();
        let max = cps.iter().copied().max().unwrap_or(0);
        let kind = force_kind.unwrap_or(if max < 256 {
            1
        } else if max < 65536 {
            2
        } else {
            4
        });
        let ascii = max < 128 && kind == 1;
        let mut data: Vec<u8> = vec![];
        for c in &cps {
            match kind {
                1 => data.push(*c as u8),
                2 => data.extend((*c as u16).to_le_bytes()),
                _ => data.extend(c.to_le_bytes()),
            }
        }
        let start = if ascii { l.ascii_size } else { l.compact_size };
        let mut bytes = vec![0u8; l.compact_size.max(start) + data.len() + 8];
        bytes[l.ob_type..l.ob_type + 8].copy_from_slice(&FAKE_STR_TYPE.to_ne_bytes());
        bytes[l.length..l.length + 8].copy_from_slice(&(cps.len() as u64).to_ne_bytes());
        let state: u32 = (kind << l.kind_shift)
            | (u32::from(compact) << l.compact_bit)
            | (u32::from(ascii) << l.ascii_bit);
        bytes[l.state..l.state + 4].copy_from_slice(&state.to_ne_bytes());
        let mut out = vec![0u64; bytes.len().div_ceil(8) + 1];
        if compact {
            bytes[start..start + data.len()].copy_from_slice(&data);
        } else {
            // Data behind a pointer, leaked for the test.
            let leaked: &'static [u8] = Box::leak(data.into_boxed_slice());
            bytes[l.data_ptr..l.data_ptr + 8]
                .copy_from_slice(&(leaked.as_ptr() as usize).to_ne_bytes());
        }
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, bytes.len())
        };
        out
    }

    #[test]
    fn decodes_all_kinds() {
        let r = MemoryReader::new().unwrap();
        let l = layout312();
        for s in ["", "hello", "café", "функция", "𠀋x", "<module>"] {
            for compact in [true, false] {
                let obj = fake_str(&l, s, None, compact);
                let got = read_str(&r, &l, FAKE_STR_TYPE, obj.as_ptr() as usize, 4096).unwrap();
                assert_eq!(got, s, "compact={compact}");
            }
        }
        // kind 4 holding only BMP characters is still decoded correctly
        let obj = fake_str(&l, "abcé", Some(4), true);
        assert_eq!(
            read_str(&r, &l, FAKE_STR_TYPE, obj.as_ptr() as usize, 4096).unwrap(),
            "abcé"
        );
    }

    #[test]
    fn caps_and_type_checks() {
        let r = MemoryReader::new().unwrap();
        let l = layout312();
        let obj = fake_str(&l, "abcdefgh", None, true);
        let a = obj.as_ptr() as usize;
        assert_eq!(read_str(&r, &l, FAKE_STR_TYPE, a, 3).unwrap(), "abc");
        assert!(matches!(
            read_str(&r, &l, 0x1234, a, 3),
            Err(StrError::WrongType { .. })
        ));
        assert!(read_str(&r, &l, FAKE_STR_TYPE, 0, 3).is_err());
    }

    #[test]
    fn bytes_objects() {
        let r = MemoryReader::new().unwrap();
        let l = layout312();
        let mut obj = vec![0u64; 8];
        obj[1] = FAKE_BYTES_TYPE as u64;
        obj[2] = 5;
        unsafe {
            std::ptr::copy_nonoverlapping(
                b"xyzzy".as_ptr(),
                (obj.as_mut_ptr() as *mut u8).add(32),
                5,
            )
        };
        let a = obj.as_ptr() as usize;
        assert_eq!(
            read_bytes(&r, &l, FAKE_BYTES_TYPE, a, 100).unwrap(),
            b"xyzzy"
        );
        assert_eq!(bytes_len(&r, &l, FAKE_BYTES_TYPE, a).unwrap(), 5);
        assert!(read_bytes(&r, &l, FAKE_BYTES_TYPE, a, 4).is_err());
        assert!(read_bytes(&r, &l, FAKE_STR_TYPE, a, 100).is_err());
        obj[2] = u64::MAX; // negative
        assert!(read_bytes(&r, &l, FAKE_BYTES_TYPE, a, 100).is_err());
    }

    #[test]
    fn decode_kind_invalid() {
        assert_eq!(decode_kind(2, &[0x00, 0xd8]).unwrap(), "\u{fffd}");
        assert_eq!(decode_kind(4, &[0, 0, 0x11, 0]).unwrap(), "\u{fffd}");
        assert!(decode_kind(3, &[]).is_none());
    }
}
