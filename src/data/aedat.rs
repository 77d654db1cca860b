//! AEDAT readers: 3.1 (DVS128 Gesture) and 2.0 (CIFAR10-DVS, jAER).
//!
//! Both return a plain message on a malformed file; the dataset loaders turn it into an
//! `Error::Input` naming the path and the expected layout.

use super::frames::Event;

/// Skips the `#` header lines; returns the offset of the first byte after them. With
/// `end_marker`, the header ends after the line starting with it (AEDAT 3.1's `#!END-HEADER`);
/// otherwise at the first line that does not start with `#` or is not valid text (jAER's rule,
/// as spikingjelly reads it, so a first binary byte 0x23 is not taken for a comment).
fn skip_header(b: &[u8], end_marker: Option<&[u8]>) -> Result<usize, String> {
    let mut pos = 0;
    while pos < b.len() && b[pos] == b'#' {
        let end = match b[pos..].iter().position(|&c| c == b'\n') {
            Some(nl) => pos + nl + 1,
            None if end_marker.is_some() => return Err("no '#!END-HEADER' line".into()),
            None => b.len(),
        };
        let line = &b[pos..end];
        if end_marker.is_none() && std::str::from_utf8(line).is_err() {
            break;
        }
        pos = end;
        if let Some(m) = end_marker {
            if line.starts_with(m) {
                return Ok(pos);
            }
        }
    }
    if end_marker.is_some() {
        return Err("no '#!END-HEADER' line".into());
    }
    Ok(pos)
}

fn le_i32(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Decodes an AEDAT 3.1 file: polarity packets (type 1) only, every other packet skipped by its
/// `eventCapacity * eventSize`. A polarity event is `u32 data, i32 timestamp` (little-endian):
/// `x = (data >> 17) & 0x7FFF`, `y = (data >> 2) & 0x7FFF`, `p = (data >> 1) & 1`; the time is
/// `timestamp | eventTSOverflow << 31` (64-bit). Like spikingjelly's `load_aedat_v3`, all
/// `eventCapacity` events of a packet are read and the valid bit is not consulted.
pub fn read_aedat31(b: &[u8]) -> Result<Vec<Event>, String> {
    if !b.starts_with(b"#!AER-DAT3") {
        return Err("does not start with '#!AER-DAT3.1' (not an AEDAT 3.1 file)".into());
    }
    let mut pos = skip_header(b, Some(b"#!END-HEADER"))?;
    let mut events = Vec::new();
    let mut packet = 0usize;
    while pos < b.len() {
        if b.len() - pos < 28 {
            return Err(format!(
                "truncated packet header at byte {pos} (packet {packet})"
            ));
        }
        let h = &b[pos..pos + 28];
        let etype = i16::from_le_bytes([h[0], h[1]]);
        let esize = le_i32(h, 4);
        let overflow = le_u32(h, 12) as u64;
        let capacity = le_i32(h, 20);
        if esize <= 0 || capacity < 0 {
            return Err(format!(
                "packet {packet} at byte {pos} has eventSize {esize}, eventCapacity {capacity}"
            ));
        }
        let len = esize as usize * capacity as usize;
        pos += 28;
        if b.len() - pos < len {
            return Err(format!(
                "truncated packet {packet}: {} of {len} event bytes present",
                b.len() - pos
            ));
        }
        if etype == 1 {
            if esize < 8 {
                return Err(format!(
                    "polarity packet {packet} has eventSize {esize}, expected 8"
                ));
            }
            for e in b[pos..pos + len].chunks_exact(esize as usize) {
                let data = le_u32(e, 0);
                let ts = le_u32(e, 4) as u64;
                events.push(Event {
                    t: ts | (overflow << 31),
                    x: ((data >> 17) & 0x7FFF) as u16,
                    y: ((data >> 2) & 0x7FFF) as u16,
                    p: ((data >> 1) & 1) as u8,
                });
            }
        }
        pos += len;
        packet += 1;
    }
    Ok(events)
}

/// Decodes an AEDAT 2.0 (jAER) DVS128 file: big-endian `u32 address, u32 timestamp` pairs after
/// the `#` header. Address bits: 0 = polarity, 1..7 = X, 8..14 = Y. spikingjelly's mapping,
/// which most CIFAR10-DVS results use: `x = 127 - Y`, `y = 127 - X`, `p = 1 - polarity`.
pub fn read_aedat20(b: &[u8]) -> Result<Vec<Event>, String> {
    if !b.starts_with(b"#!AER-DAT2") {
        return Err("does not start with '#!AER-DAT2.0' (not an AEDAT 2.0 file)".into());
    }
    let pos = skip_header(b, None)?;
    let body = &b[pos..];
    if !body.len().is_multiple_of(8) {
        return Err(format!(
            "event data of {} bytes is not a multiple of the 8-byte (address, timestamp) pair",
            body.len()
        ));
    }
    Ok(body
        .chunks_exact(8)
        .map(|e| {
            let a = u32::from_be_bytes(e[0..4].try_into().unwrap());
            let t = u32::from_be_bytes(e[4..8].try_into().unwrap()) as u64;
            let xr = ((a >> 1) & 0x7F) as u16;
            let yr = ((a >> 8) & 0x7F) as u16;
            Event {
                t,
                x: 127 - yr,
                y: 127 - xr,
                p: 1 - (a & 1) as u8,
            }
        })
        .collect())
}
