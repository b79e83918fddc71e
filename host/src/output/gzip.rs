//! Gzip exactly as Inseq's `gzip_compress` (`inseq/utils/misc.py`): mtime 0, no file name,
//! OS byte 255. The deflate stream itself may differ from Python's zlib; both decompress alike.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};

/// Gzip as Python's `gzip_compress` (mtime 0, no file name) at `level`.
pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::new(level));
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Gunzips `data`.
pub fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}
