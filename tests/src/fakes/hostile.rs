//! A hostile receiver: what a customer's broken or malicious SIEM endpoint can send back.
//!
//! It speaks raw HTTP/1.1 over TCP (one request per connection, then `Connection: close`) so
//! it can misbehave below what an HTTP framework allows: a compression bomb, a head or body
//! dripped one byte at a time, a chunked body that never ends, a response head of megabytes.
//! Requests are read (head and `Content-Length` body) before answering, so the client sees
//! the answer, not a reset. Paths listed in [`HostileSetup::benign`] get a normal JSON answer
//! instead (e.g. Splunk's `/services/collector/event` with an `ackId`, so that the hostile
//! answer lands on the acknowledgement poll).
//!
//! Nothing here holds a hostile body in memory: the gzip bomb repeats one precomputed deflate
//! block (a full flush resets the compressor, so the same input compresses to the same
//! bytes), the endless body reuses one chunk.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use flate2::{Compress, Compression, Crc, FlushCompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the receiver misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hostility {
    /// `status` with `Content-Encoding: gzip` and a body of about `inflated / 1000` bytes that
    /// inflates to `inflated` bytes of zeros (`inflated` is rounded down to whole MiB).
    GzipBomb { status: u16, inflated: u64 },
    /// The status line, then one byte of a header every `every`: the head never ends.
    DripHeaders { every: Duration },
    /// A complete head (`status`, a 1 MiB `Content-Length`), then one body byte every `every`.
    DripBody { status: u16, every: Duration },
    /// `status` with a chunked body that never ends, sent at `bytes_per_second`.
    EndlessBody { status: u16, bytes_per_second: u64 },
    /// `status` with a response head of about `size` bytes (many long headers).
    HugeHeaders { status: u16, size: usize },
}

/// A normal answer for requests whose path starts with `path_prefix`.
#[derive(Debug, Clone)]
pub struct BenignRoute {
    pub path_prefix: String,
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct HostileSetup {
    pub hostility: Hostility,
    pub benign: Vec<BenignRoute>,
}

/// What the receiver did.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    hostile_answers: AtomicU64,
    bytes_sent: AtomicU64,
}

#[derive(Debug)]
pub struct HostileReceiver {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl HostileReceiver {
    /// Listens on 127.0.0.1 (any free port).
    pub async fn start(setup: HostileSetup) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the hostile receiver");
        let addr = listener.local_addr().expect("local address");
        let counters = Arc::new(Counters::default());
        let setup = Arc::new(setup);
        let task = {
            let counters = counters.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (setup, counters) = (setup.clone(), counters.clone());
                    tokio::spawn(async move {
                        let _ = serve(stream, &setup, &counters).await;
                    });
                }
            })
        };
        Self {
            addr,
            counters,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests read (benign and hostile).
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Hostile answers started.
    pub fn hostile_answers(&self) -> u64 {
        self.counters.hostile_answers.load(Ordering::Relaxed)
    }

    /// Bytes written to clients before they hung up (or the answer ended).
    pub fn bytes_sent(&self) -> u64 {
        self.counters.bytes_sent.load(Ordering::Relaxed)
    }
}

impl Drop for HostileReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Largest request head read.
const MAX_HEAD: usize = 64 * 1024;

async fn serve(
    mut stream: TcpStream,
    setup: &HostileSetup,
    counters: &Counters,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let path = read_request(&mut stream).await?;
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let mut out = Counted { stream, counters };
    if let Some(route) = setup
        .benign
        .iter()
        .find(|route| path.starts_with(&route.path_prefix))
    {
        let head = head(
            route.status,
            &[("Content-Length", &route.body.len().to_string())],
        );
        out.write(head.as_bytes()).await?;
        out.write(route.body.as_bytes()).await?;
        return out.stream.shutdown().await;
    }
    counters.hostile_answers.fetch_add(1, Ordering::Relaxed);
    match &setup.hostility {
        Hostility::GzipBomb { status, inflated } => gzip_bomb(&mut out, *status, *inflated).await,
        Hostility::DripHeaders { every } => {
            out.write(b"HTTP/1.1 200 OK\r\nX-Drip: ").await?;
            loop {
                tokio::time::sleep(*every).await;
                out.write(b"a").await?;
            }
        }
        Hostility::DripBody { status, every } => {
            let head = head(*status, &[("Content-Length", "1048576")]);
            out.write(head.as_bytes()).await?;
            loop {
                tokio::time::sleep(*every).await;
                out.write(b"a").await?;
            }
        }
        Hostility::EndlessBody {
            status,
            bytes_per_second,
        } => endless(&mut out, *status, *bytes_per_second).await,
        Hostility::HugeHeaders { status, size } => {
            out.write(format!("HTTP/1.1 {status} {}\r\n", reason(*status)).as_bytes())
                .await?;
            let line = format!("X-Pad: {}\r\n", "a".repeat(4000));
            let mut sent = 0;
            while sent < *size {
                out.write(line.as_bytes()).await?;
                sent += line.len();
            }
            out.write(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                .await?;
            out.stream.shutdown().await
        }
    }
}

/// Reads one request (head, and the body announced by `Content-Length`); returns its path.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let mut remaining = length.saturating_sub(buffer.len() - head_end);
    while remaining > 0 {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        remaining = remaining.saturating_sub(read);
    }
    Ok(path)
}

/// A stream that counts what it wrote.
struct Counted<'a> {
    stream: TcpStream,
    counters: &'a Counters,
}

impl Counted<'_> {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.counters
            .bytes_sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Whatever")
}

fn head(status: u16, headers: &[(&str, &str)]) -> String {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
        reason(status)
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

const MIB: usize = 1024 * 1024;

/// One MiB of zeros as a raw deflate block ending in a full flush, and its CRC.
struct BombBlock {
    deflated: Vec<u8>,
    crc: Crc,
}

fn bomb_block() -> &'static BombBlock {
    static BLOCK: OnceLock<BombBlock> = OnceLock::new();
    BLOCK.get_or_init(|| {
        let zeros = vec![0u8; MIB];
        let mut compress = Compress::new(Compression::best(), false);
        let block = |compress: &mut Compress| {
            // Far more room than ~1 KiB of output: one call consumes the whole input.
            let mut out = Vec::with_capacity(64 * 1024);
            let consumed = compress.total_in();
            compress
                .compress_vec(&zeros, &mut out, FlushCompress::Full)
                .expect("deflate");
            assert_eq!(
                compress.total_in() - consumed,
                MIB as u64,
                "one call per block"
            );
            out
        };
        let first = block(&mut compress);
        let second = block(&mut compress);
        // The bomb repeats one block: that only holds if a full flush makes blocks identical.
        assert_eq!(first, second, "deflate blocks after a full flush differ");
        let mut crc = Crc::new();
        crc.update(&zeros);
        BombBlock {
            deflated: first,
            crc,
        }
    })
}

/// The gzip stream of `mebibytes` MiB of zeros, piece by piece (header, blocks, trailer).
pub fn gzip_bomb_pieces(mebibytes: u64) -> impl Iterator<Item = Vec<u8>> {
    let block = bomb_block();
    let mut crc = Crc::new();
    for _ in 0..mebibytes {
        crc.combine(&block.crc);
    }
    // An empty final block (static Huffman, BFINAL=1), byte-aligned after the full flush.
    let mut trailer = vec![0x03, 0x00];
    trailer.extend_from_slice(&crc.sum().to_le_bytes());
    trailer.extend_from_slice(&crc.amount().to_le_bytes());
    let header = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
    std::iter::once(header)
        .chain((0..mebibytes).map(|_| block.deflated.clone()))
        .chain(std::iter::once(trailer))
}

/// The compressed length of [`gzip_bomb_pieces`].
pub fn gzip_bomb_len(mebibytes: u64) -> u64 {
    10 + mebibytes * bomb_block().deflated.len() as u64 + 2 + 8
}

async fn gzip_bomb(out: &mut Counted<'_>, status: u16, inflated: u64) -> std::io::Result<()> {
    let mebibytes = inflated / MIB as u64;
    let head = head(
        status,
        &[
            ("Content-Encoding", "gzip"),
            ("Content-Length", &gzip_bomb_len(mebibytes).to_string()),
        ],
    );
    out.write(head.as_bytes()).await?;
    for piece in gzip_bomb_pieces(mebibytes) {
        out.write(&piece).await?;
    }
    out.stream.shutdown().await
}

async fn endless(out: &mut Counted<'_>, status: u16, bytes_per_second: u64) -> std::io::Result<()> {
    let head = head(status, &[("Transfer-Encoding", "chunked")]);
    out.write(head.as_bytes()).await?;
    let ticks_per_second = 100;
    let per_tick = usize::try_from(bytes_per_second / ticks_per_second)
        .unwrap_or(MIB)
        .max(1);
    let mut chunk = format!("{per_tick:x}\r\n").into_bytes();
    chunk.extend(std::iter::repeat_n(b'x', per_tick));
    chunk.extend_from_slice(b"\r\n");
    let mut interval = tokio::time::interval(Duration::from_millis(1000 / ticks_per_second));
    loop {
        interval.tick().await;
        out.write(&chunk).await?;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_gzip_bomb_is_a_valid_gzip_stream_of_zeros() {
        let compressed: Vec<u8> = gzip_bomb_pieces(3).flatten().collect();
        assert_eq!(compressed.len() as u64, gzip_bomb_len(3));
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut inflated)
            .expect("a valid gzip stream, CRC included");
        assert_eq!(inflated.len(), 3 * MIB);
        assert!(inflated.iter().all(|byte| *byte == 0));
        // About 1,000:1, so 2 GiB inflates from about 2 MB.
        assert!(
            gzip_bomb_len(2048) < 4 * MIB as u64,
            "{}",
            gzip_bomb_len(2048)
        );
    }
}
