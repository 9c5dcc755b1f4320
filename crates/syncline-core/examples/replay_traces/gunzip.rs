//! A small gzip reader (RFC 1952 around RFC 1951 DEFLATE), so the traces
//! can be read where they lie, compressed, without adding a dependency to
//! the engine crate. Slow by design choices (bit-at-a-time Huffman decoding)
//! but plenty fast for a few megabytes; checks each member's CRC-32 and size.

pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() * 8);
    let mut pos = 0;
    while pos < data.len() {
        let start = out.len();
        pos = member_header(data, pos)?;
        let mut bits = Bits { data, pos, bit: 0 };
        inflate(&mut bits, &mut out)?;
        pos = bits.pos + usize::from(bits.bit > 0);
        let trailer = data.get(pos..pos + 8).ok_or("gzip trailer is missing")?;
        let crc = u32::from_le_bytes(trailer[0..4].try_into().unwrap());
        let size = u32::from_le_bytes(trailer[4..8].try_into().unwrap());
        if crc32(&out[start..]) != crc {
            return Err("gzip CRC-32 does not match: the file is damaged".into());
        }
        if (out.len() - start) as u32 != size {
            return Err("gzip size does not match: the file is damaged".into());
        }
        pos += 8;
    }
    Ok(out)
}

/// Skips a member's header; returns where its deflate stream starts.
fn member_header(data: &[u8], mut pos: usize) -> Result<usize, String> {
    let header = data.get(pos..pos + 10).ok_or("truncated gzip header")?;
    if header[0..3] != [0x1f, 0x8b, 8] {
        return Err("not a gzip (deflate) file".into());
    }
    let flags = header[3];
    pos += 10;
    if flags & 4 != 0 {
        let len = data.get(pos..pos + 2).ok_or("truncated gzip extra field")?;
        pos += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [8, 16] {
        // A file name, then a comment: each zero-terminated.
        if flags & flag != 0 {
            let end = data[pos.min(data.len())..]
                .iter()
                .position(|&b| b == 0)
                .ok_or("unterminated gzip header string")?;
            pos += end + 1;
        }
    }
    if flags & 2 != 0 {
        pos += 2; // header CRC
    }
    Ok(pos)
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    bit: u32,
}

impl Bits<'_> {
    fn need(&mut self, n: u32) -> Result<u32, String> {
        let mut value = 0;
        for i in 0..n {
            let byte = *self.data.get(self.pos).ok_or("deflate stream ends early")?;
            value |= u32::from((byte >> self.bit) & 1) << i;
            self.bit += 1;
            if self.bit == 8 {
                self.bit = 0;
                self.pos += 1;
            }
        }
        Ok(value)
    }

    fn align(&mut self) {
        if self.bit > 0 {
            self.bit = 0;
            self.pos += 1;
        }
    }
}

/// A canonical Huffman code: how many codes of each length, and the symbols
/// in code order.
struct Huffman {
    counts: [u16; 16],
    symbols: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut counts = [0u16; 16];
        for &len in lengths {
            counts[len as usize] += 1;
        }
        counts[0] = 0;
        let mut offsets = [0u16; 16];
        for len in 1..15 {
            offsets[len + 1] = offsets[len] + counts[len];
        }
        let mut symbols = vec![0; lengths.len()];
        for (symbol, &len) in lengths.iter().enumerate() {
            if len != 0 {
                symbols[offsets[len as usize] as usize] = symbol as u16;
                offsets[len as usize] += 1;
            }
        }
        Huffman { counts, symbols }
    }

    fn decode(&self, bits: &mut Bits) -> Result<u16, String> {
        // Codes are stored most significant bit first: grow one bit at a
        // time and see whether the code falls among those of this length.
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.need(1)? as i32;
            let count = i32::from(self.counts[len]);
            if code - first < count {
                return Ok(self.symbols[(index + code - first) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("invalid Huffman code in deflate stream".into())
    }
}

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order in which a dynamic block lists its code-length code lengths.
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

fn inflate(bits: &mut Bits, out: &mut Vec<u8>) -> Result<(), String> {
    loop {
        let last = bits.need(1)? == 1;
        match bits.need(2)? {
            0 => stored(bits, out)?,
            1 => {
                let mut lengths = [8u8; 288];
                lengths[144..256].fill(9);
                lengths[256..280].fill(7);
                codes(bits, out, &Huffman::new(&lengths), &Huffman::new(&[5; 30]))?
            }
            2 => {
                let (lit, dist) = dynamic_tables(bits)?;
                codes(bits, out, &lit, &dist)?
            }
            _ => return Err("invalid deflate block type".into()),
        }
        if last {
            return Ok(());
        }
    }
}

fn stored(bits: &mut Bits, out: &mut Vec<u8>) -> Result<(), String> {
    bits.align();
    let header = bits
        .data
        .get(bits.pos..bits.pos + 4)
        .ok_or("truncated stored block")?;
    let len = u16::from_le_bytes([header[0], header[1]]);
    if len != !u16::from_le_bytes([header[2], header[3]]) {
        return Err("stored block length check failed".into());
    }
    let start = bits.pos + 4;
    let body = bits
        .data
        .get(start..start + usize::from(len))
        .ok_or("truncated stored block")?;
    out.extend_from_slice(body);
    bits.pos = start + usize::from(len);
    Ok(())
}

fn dynamic_tables(bits: &mut Bits) -> Result<(Huffman, Huffman), String> {
    let nlit = bits.need(5)? as usize + 257;
    let ndist = bits.need(5)? as usize + 1;
    let nclen = bits.need(4)? as usize + 4;
    let mut clen = [0u8; 19];
    for &i in &CLEN_ORDER[..nclen] {
        clen[i] = bits.need(3)? as u8;
    }
    let clen = Huffman::new(&clen);
    let mut lengths = Vec::with_capacity(nlit + ndist);
    while lengths.len() < nlit + ndist {
        let (value, repeat) = match clen.decode(bits)? {
            len @ 0..=15 => (len as u8, 1),
            16 => (
                *lengths.last().ok_or("repeat with no previous length")?,
                3 + bits.need(2)?,
            ),
            17 => (0, 3 + bits.need(3)?),
            _ => (0, 11 + bits.need(7)?),
        };
        lengths.extend(std::iter::repeat_n(value, repeat as usize));
    }
    if lengths.len() != nlit + ndist {
        return Err("code lengths overrun their table".into());
    }
    Ok((
        Huffman::new(&lengths[..nlit]),
        Huffman::new(&lengths[nlit..]),
    ))
}

fn codes(bits: &mut Bits, out: &mut Vec<u8>, lit: &Huffman, dist: &Huffman) -> Result<(), String> {
    loop {
        let symbol = lit.decode(bits)? as usize;
        match symbol {
            0..=255 => out.push(symbol as u8),
            256 => return Ok(()),
            257..=285 => {
                let i = symbol - 257;
                let len = usize::from(LENGTH_BASE[i]) + bits.need(LENGTH_EXTRA[i].into())? as usize;
                let d = dist.decode(bits)? as usize;
                if d >= 30 {
                    return Err("invalid distance code".into());
                }
                let back = usize::from(DIST_BASE[d]) + bits.need(DIST_EXTRA[d].into())? as usize;
                if back > out.len() {
                    return Err("distance reaches before the start of the output".into());
                }
                let from = out.len() - back;
                for k in 0..len {
                    out.push(out[from + k]); // may overlap what it copies
                }
            }
            _ => return Err("invalid literal/length code".into()),
        }
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (n, slot) in table.iter_mut().enumerate() {
        let mut c = n as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    !bytes.iter().fold(!0u32, |c, &b| {
        table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}
