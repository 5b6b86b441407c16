//! Line-number lookup in CPython's three line-table formats.
//!
//! Pure functions on byte slices copied out of the interpreter; a malformed
//! table yields `None` (or a wrong line), never a panic.
//!
//! | versions | table | position unit |
//! |---|---|---|
//! | 3.8, 3.9 | `co_lnotab`: `(addr_inc u8, line_inc i8)` pairs | bytes |
//! | 3.10 | `co_linetable`: `(length u8, line_delta i8)` pairs, `-128` = no line | bytes |
//! | 3.11+ | `co_linetable`: location table (varint-coded entries) | code units |

/// Which decoder a CPython version needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// 3.8 / 3.9 `co_lnotab`.
    Lnotab,
    /// 3.10 `co_linetable`.
    Linetable310,
    /// 3.11+ location table.
    Locations,
}

/// Line of the instruction at `lasti` (the version's own `f_lasti` unit: bytes
/// on 3.8/3.9, code units on 3.10+; `-1` = not started). `None`: no line.
pub fn line_for(format: LineFormat, table: &[u8], firstlineno: i32, lasti: i64) -> Option<i32> {
    match format {
        LineFormat::Lnotab => Some(lnotab_line(table, firstlineno, lasti)),
        LineFormat::Linetable310 => linetable310_line(table, firstlineno, lasti.saturating_mul(2)),
        LineFormat::Locations => location_line(table, firstlineno, lasti),
    }
}

/// 3.8/3.9: `target` is the byte offset of the instruction.
pub fn lnotab_line(table: &[u8], firstlineno: i32, target: i64) -> i32 {
    let mut line = firstlineno;
    let mut addr: i64 = 0;
    for pair in table.chunks_exact(2) {
        let (inc, line_inc) = (pair[0], pair[1] as i8);
        addr += i64::from(inc);
        if addr > target {
            break;
        }
        line = line.wrapping_add(i32::from(line_inc));
    }
    line
}

/// 3.10: `target` is the byte offset (2 × `f_lasti`).
pub fn linetable310_line(table: &[u8], firstlineno: i32, target: i64) -> Option<i32> {
    if target < 0 {
        return Some(firstlineno);
    }
    let mut line = firstlineno;
    let mut end: i64 = 0;
    for pair in table.chunks_exact(2) {
        let (len, delta) = (i64::from(pair[0]), pair[1] as i8);
        let start = end;
        end += len;
        let this = if delta == -128 {
            None
        } else {
            line = line.wrapping_add(i32::from(delta));
            Some(line)
        };
        if len > 0 && start <= target && target < end {
            return this;
        }
    }
    None
}

/// Reads a 6-bit-group varint at `*pos`, advancing it.
fn varint(table: &[u8], pos: &mut usize) -> Option<u32> {
    let mut b = *table.get(*pos)?;
    *pos += 1;
    let mut val = u32::from(b & 63);
    let mut shift = 0u32;
    while b & 64 != 0 {
        b = *table.get(*pos)?;
        *pos += 1;
        shift += 6;
        if shift >= 32 {
            return None;
        }
        val |= u32::from(b & 63) << shift;
    }
    Some(val)
}

fn svarint(table: &[u8], pos: &mut usize) -> Option<i32> {
    let u = varint(table, pos)?;
    let mag = (u >> 1) as i32;
    Some(if u & 1 != 0 { -mag } else { mag })
}

/// 3.11+: `target` is the instruction's index in code units (CACHE units
/// included; `-1` = not started).
pub fn location_line(table: &[u8], firstlineno: i32, target: i64) -> Option<i32> {
    if target < 0 {
        return Some(firstlineno);
    }
    let mut line = firstlineno;
    let mut addr: i64 = 0;
    let mut pos = 0usize;
    while let Some(&first) = table.get(pos) {
        if first & 0x80 == 0 {
            return None; // not at an entry start: corrupt table
        }
        let code = (first >> 3) & 15;
        let units = i64::from(first & 7) + 1;
        let mut p = pos + 1;
        let this = match code {
            15 => None,
            13 | 14 => {
                line = line.wrapping_add(svarint(table, &mut p)?);
                Some(line)
            }
            10..=12 => {
                line = line.wrapping_add(i32::from(code) - 10);
                Some(line)
            }
            _ => Some(line),
        };
        if addr <= target && target < addr + units {
            return this;
        }
        addr += units;
        // Skip the rest of the entry: up to the next byte with bit 7 set.
        pos += 1;
        while table.get(pos).is_some_and(|b| b & 0x80 == 0) {
            pos += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lnotab() {
        // firstlineno 10; bytes 0..6 -> line 10, 6..14 -> 12, 14.. -> 11,
        // then a jump of 300 lines written as three pairs at byte 20.
        let t = [6u8, 2, 8, 0xff /* -1 */, 6, 127, 0, 127, 0, 46];
        assert_eq!(lnotab_line(&t, 10, -1), 10);
        assert_eq!(lnotab_line(&t, 10, 0), 10);
        assert_eq!(lnotab_line(&t, 10, 4), 10);
        assert_eq!(lnotab_line(&t, 10, 6), 12);
        assert_eq!(lnotab_line(&t, 10, 12), 12);
        assert_eq!(lnotab_line(&t, 10, 14), 11);
        assert_eq!(lnotab_line(&t, 10, 18), 11);
        assert_eq!(lnotab_line(&t, 10, 20), 11 + 300);
        assert_eq!(lnotab_line(&t, 10, 1000), 311);
        assert_eq!(lnotab_line(&[], 7, 50), 7);
        assert_eq!(lnotab_line(&[1], 7, 50), 7); // odd length: trailing byte ignored
    }

    #[test]
    fn linetable_310() {
        // firstlineno 5. [0,4) line 6; [4,4) +2 (zero length, carries delta);
        // [4,10) line 8+1=9; [10,12) no line; [12,20) line 9-3=6.
        let t = [4u8, 1, 0, 2, 6, 1, 2, 0x80, 8, 0xfd];
        let f = |b| linetable310_line(&t, 5, b);
        assert_eq!(f(-2), Some(5));
        assert_eq!(f(0), Some(6));
        assert_eq!(f(3), Some(6));
        assert_eq!(f(4), Some(9));
        assert_eq!(f(9), Some(9));
        assert_eq!(f(10), None);
        assert_eq!(f(11), None);
        assert_eq!(f(12), Some(6));
        assert_eq!(f(19), Some(6));
        assert_eq!(f(20), None);
        // Through the dispatcher, 3.10 takes f_lasti in code units.
        assert_eq!(line_for(LineFormat::Linetable310, &t, 5, 2), Some(9));
        assert_eq!(line_for(LineFormat::Linetable310, &t, 5, -1), Some(5));
    }

    fn entry(code: u8, units: u8) -> u8 {
        0x80 | (code << 3) | (units - 1)
    }

    #[test]
    fn location_table() {
        let mut t = vec![];
        // units 0..1: code 13 (no columns), line += 0 -> 20 (RESUME-like)
        t.extend([entry(13, 1), 0]);
        // units 1..3: one-line form, +1 -> 21, columns (4, 9)
        t.extend([entry(11, 2), 4, 9]);
        // units 3..8: short form (same line 21), one column byte
        t.extend([entry(2, 5), 0x23]);
        // units 8..10: no location
        t.push(entry(15, 2));
        // units 10..11: long form, line += -3 -> 18, end-line 0, cols 1+1, 5+1
        t.extend([entry(14, 1), 7 /* svarint -3 */, 0, 2, 6]);
        // units 11..19: code 13 with a multi-byte svarint: +100 -> 118
        // 200 = 0b11_001000 -> groups 8 (with more bit 64) then 3
        t.extend([entry(13, 8), 8 | 64, 3]);
        // units 19..20: one-line form, +2 -> 120
        t.extend([entry(12, 1), 0, 1]);
        let f = |u| location_line(&t, 20, u);
        assert_eq!(f(-1), Some(20));
        assert_eq!(f(0), Some(20));
        assert_eq!(f(1), Some(21));
        assert_eq!(f(2), Some(21));
        assert_eq!(f(3), Some(21));
        assert_eq!(f(7), Some(21));
        assert_eq!(f(8), None);
        assert_eq!(f(9), None);
        assert_eq!(f(10), Some(18));
        assert_eq!(f(11), Some(118));
        assert_eq!(f(18), Some(118));
        assert_eq!(f(19), Some(120));
        assert_eq!(f(20), None);
        assert_eq!(line_for(LineFormat::Locations, &t, 20, 11), Some(118));
    }

    #[test]
    fn garbage_does_not_panic() {
        let junk: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
        for target in [-1i64, 0, 5, 100, 10_000] {
            let _ = lnotab_line(&junk, 1, target);
            let _ = linetable310_line(&junk, 1, target);
            let _ = location_line(&junk, 1, target);
            let _ = location_line(&[0xf0, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f], 1, target);
            let _ = location_line(&[0xe8, 0x40], i32::MAX, target);
        }
        assert_eq!(location_line(&[0x01], 1, 0), None);
    }
}
