//! HTTP/1.1 message framing for the gateway's relay (RFC 9112 section 6): how long a body
//! is, a chunked-body scanner that finds the end of a chunked body across reads, and the
//! copies of a body from one connection to another by its framing.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// No body (HEAD answers, 1xx, 204, 304, requests without framing headers).
    Empty,
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// An answer without framing headers: the body ends when the connection closes.
    UntilClose,
}

/// Malformed framing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FramingError {
    /// A chunk size line or chunk delimiter that is not HTTP.
    #[error("malformed chunked body")]
    BadChunk,
    /// The connection ended inside a body.
    #[error("connection closed inside a body")]
    Truncated,
    /// The body is longer than the gateway relays.
    #[error("body longer than {0} bytes")]
    TooLong(usize),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A connection's read buffer: the bytes read and not yet used.
#[derive(Default)]
pub(crate) struct ReadBuf {
    data: Vec<u8>,
    start: usize,
}

/// How much a read asks for at least.
const READ_CHUNK: usize = 16 * 1024;

impl ReadBuf {
    /// The bytes read and not yet used.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// Marks `n` bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.data.len() {
            self.data.clear();
            self.start = 0;
        }
    }

    /// Reads more from `io`; 0 at the end of the stream.
    pub(crate) async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> io::Result<usize> {
        if self.start > 0 && self.data.capacity() - self.data.len() < READ_CHUNK {
            self.data.drain(..self.start);
            self.start = 0;
        }
        self.data.reserve(READ_CHUNK);
        io.read_buf(&mut self.data).await
    }
}

/// Where a chunked body's scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk-size line: the size so far, whether a digit was seen, whether in an
    /// extension (after `;`), whether the CR was seen.
    Size {
        size: u64,
        digits: bool,
        extension: bool,
        cr: bool,
    },
    /// In chunk data: bytes left.
    Data(u64),
    /// After chunk data: expecting CR (false) or LF (true).
    DataEnd(bool),
    /// In the trailer section: bytes in the current line, whether its CR was seen.
    Trailer { line: usize, cr: bool },
    /// The body ended.
    Done,
}

/// Finds where a chunked body ends, fed in pieces as they are read; reports the chunk data.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedScanner {
    state: ChunkState,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner {
            state: ChunkState::Size {
                size: 0,
                digits: false,
                extension: false,
                cr: false,
            },
        }
    }
}

/// Longest trailer line accepted.
const MAX_LINE: usize = 8 * 1024;

impl ChunkedScanner {
    /// Whether the whole body has been scanned.
    pub(crate) fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Scans `input` up to the end of the body; returns how many bytes belong to the body.
    /// `data` gets the chunk data in order.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        data: &mut impl FnMut(&[u8]),
    ) -> Result<usize, FramingError> {
        let mut at = 0;
        while at < input.len() && !self.is_done() {
            if let ChunkState::Data(left) = self.state {
                let n = (input.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
                data(&input[at..at + n]);
                at += n;
                self.state = match left - n as u64 {
                    0 => ChunkState::DataEnd(false),
                    rest => ChunkState::Data(rest),
                };
                continue;
            }
            self.state = self.step(input[at])?;
            at += 1;
        }
        Ok(at)
    }

    /// The state after one byte outside chunk data.
    fn step(&self, byte: u8) -> Result<ChunkState, FramingError> {
        Ok(match self.state {
            ChunkState::Size { cr: true, .. } if byte != b'\n' => {
                return Err(FramingError::BadChunk);
            }
            ChunkState::Size { size, digits, .. } if byte == b'\n' => match (digits, size) {
                (false, _) => return Err(FramingError::BadChunk),
                (true, 0) => ChunkState::Trailer { line: 0, cr: false },
                (true, n) => ChunkState::Data(n),
            },
            ChunkState::Size {
                size,
                digits,
                extension,
                ..
            } => size_line(size, digits, extension, byte)?,
            ChunkState::DataEnd(false) if byte == b'\r' => ChunkState::DataEnd(true),
            ChunkState::DataEnd(true) if byte == b'\n' => ChunkState::default_size(),
            ChunkState::DataEnd(_) => return Err(FramingError::BadChunk),
            ChunkState::Trailer { cr: true, .. } if byte != b'\n' => {
                return Err(FramingError::BadChunk);
            }
            ChunkState::Trailer { line: 0, .. } if byte == b'\n' => ChunkState::Done,
            ChunkState::Trailer { .. } if byte == b'\n' => {
                ChunkState::Trailer { line: 0, cr: false }
            }
            ChunkState::Trailer { line, .. } if byte == b'\r' => {
                ChunkState::Trailer { line, cr: true }
            }
            ChunkState::Trailer { line, .. } if line >= MAX_LINE => {
                return Err(FramingError::BadChunk);
            }
            ChunkState::Trailer { line, .. } => ChunkState::Trailer {
                line: line + 1,
                cr: false,
            },
            ChunkState::Data(_) | ChunkState::Done => self.state,
        })
    }
}

impl ChunkState {
    fn default_size() -> ChunkState {
        ChunkState::Size {
            size: 0,
            digits: false,
            extension: false,
            cr: false,
        }
    }
}

/// One byte of a chunk-size line other than its LF.
fn size_line(
    size: u64,
    digits: bool,
    extension: bool,
    byte: u8,
) -> Result<ChunkState, FramingError> {
    let next = |size, digits, extension, cr| ChunkState::Size {
        size,
        digits,
        extension,
        cr,
    };
    if byte == b'\r' {
        return Ok(next(size, digits, extension, true));
    }
    if extension {
        return Ok(next(size, digits, true, false));
    }
    match byte {
        b';' | b' ' | b'\t' if digits => Ok(next(size, digits, true, false)),
        _ => {
            let digit = (byte as char).to_digit(16).ok_or(FramingError::BadChunk)?;
            let size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(digit)))
                .ok_or(FramingError::BadChunk)?;
            Ok(next(size, true, false, false))
        }
    }
}

/// Reads a body framed by `length` into `body` (at most `limit` bytes), the bytes already
/// read first. A chunked body is decoded; [`BodyLength::UntilClose`] reads until `io` ends.
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut ReadBuf,
    length: BodyLength,
    limit: usize,
    body: &mut Vec<u8>,
) -> Result<(), FramingError> {
    match length {
        BodyLength::Empty => Ok(()),
        BodyLength::UntilClose => loop {
            if buf.filled().is_empty() && buf.fill(io).await? == 0 {
                return Ok(());
            }
            body.extend_from_slice(buf.filled());
            let n = buf.filled().len();
            buf.consume(n);
            if body.len() > limit {
                return Err(FramingError::TooLong(limit));
            }
        },
        BodyLength::Length(n) => {
            let n = usize::try_from(n)
                .ok()
                .filter(|n| *n <= limit)
                .ok_or(FramingError::TooLong(limit))?;
            body.reserve(n);
            while body.len() < n {
                if buf.filled().is_empty() && buf.fill(io).await? == 0 {
                    return Err(FramingError::Truncated);
                }
                let take = buf.filled().len().min(n - body.len());
                body.extend_from_slice(&buf.filled()[..take]);
                buf.consume(take);
            }
            Ok(())
        }
        BodyLength::Chunked => {
            let mut scanner = ChunkedScanner::default();
            while !scanner.is_done() {
                if buf.filled().is_empty() && buf.fill(io).await? == 0 {
                    return Err(FramingError::Truncated);
                }
                let used = scanner.feed(buf.filled(), &mut |d| body.extend_from_slice(d))?;
                buf.consume(used);
                if body.len() > limit {
                    return Err(FramingError::TooLong(limit));
                }
            }
            Ok(())
        }
    }
}

/// How a relayed chunked body is written to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkedOut {
    /// As it came, chunk framing and trailers included (HTTP/1.1 clients).
    Verbatim,
    /// Only the data (HTTP/1.0 clients; the connection's end marks the body's).
    Decoded,
}

/// Copies an answer body framed by `length` from `from` (its read buffer `buf`) to `to`,
/// then flushes `to`. [`BodyLength::UntilClose`] copies until `from` ends.
pub(crate) async fn copy_body<R, W>(
    from: &mut R,
    buf: &mut ReadBuf,
    to: &mut W,
    length: BodyLength,
    chunked_out: ChunkedOut,
) -> Result<(), FramingError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match length {
        BodyLength::Empty => {}
        BodyLength::Length(mut left) => {
            while left > 0 {
                if buf.filled().is_empty() && buf.fill(from).await? == 0 {
                    return Err(FramingError::Truncated);
                }
                let take = buf
                    .filled()
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                to.write_all(&buf.filled()[..take]).await?;
                buf.consume(take);
                left -= take as u64;
            }
        }
        BodyLength::Chunked => copy_chunked(from, buf, to, chunked_out).await?,
        BodyLength::UntilClose => loop {
            if buf.filled().is_empty() && buf.fill(from).await? == 0 {
                break;
            }
            to.write_all(buf.filled()).await?;
            let n = buf.filled().len();
            buf.consume(n);
        },
    }
    to.flush().await?;
    Ok(())
}

async fn copy_chunked<R, W>(
    from: &mut R,
    buf: &mut ReadBuf,
    to: &mut W,
    out: ChunkedOut,
) -> Result<(), FramingError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = ChunkedScanner::default();
    let mut decoded = Vec::new();
    while !scanner.is_done() {
        if buf.filled().is_empty() && buf.fill(from).await? == 0 {
            return Err(FramingError::Truncated);
        }
        decoded.clear();
        let used = match out {
            ChunkedOut::Verbatim => scanner.feed(buf.filled(), &mut |_| {})?,
            ChunkedOut::Decoded => {
                scanner.feed(buf.filled(), &mut |d| decoded.extend_from_slice(d))?
            }
        };
        match out {
            ChunkedOut::Verbatim => to.write_all(&buf.filled()[..used]).await?,
            ChunkedOut::Decoded => to.write_all(&decoded).await?,
        }
        buf.consume(used);
    }
    Ok(())
}

#[cfg(test)]
#[path = "http1_framing_tests.rs"]
mod tests;
