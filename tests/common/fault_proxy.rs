//! A fault-injecting HTTP/1.1 proxy for tests: listens on 127.0.0.1, forwards
//! requests to an upstream on 127.0.0.1 (Azurite), and disturbs requests as a
//! schedule says: synthetic 500/503 (with `Retry-After`)/429 answers, reset
//! connections, stalls past the client's timeout, truncated responses, and
//! requests that reach the server but whose answer is lost.
//!
//! It understands just enough HTTP/1.1 for the store client: requests with a
//! `Content-Length` body, responses framed by `Content-Length`, chunked
//! encoding, or nothing (HEAD, 204, 304).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and relay the answer.
    Pass,
    /// Answer this status without forwarding (`Retry-After` if given).
    Status(u16, Option<u64>),
    /// Reset the client connection without forwarding.
    Reset,
    /// Forward it (the server applies it), then reset the client connection
    /// instead of relaying the answer.
    ForwardThenReset,
    /// Forward it, then answer 500 instead of the real answer.
    ForwardThen500,
    /// Hold the connection this long without answering, then close it.
    Stall(Duration),
    /// Forward it, relay only the first half of the answer, then close.
    Truncate,
}

impl Fault {
    /// Whether this disturbs the request.
    pub fn disturbs(&self) -> bool {
        *self != Fault::Pass
    }
}

/// Decides the fault for the n-th request (0-based, in arrival order).
pub type Schedule = Arc<dyn Fn(u64) -> Fault + Send + Sync>;

/// Counters of what the proxy did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests disturbed.
    pub disturbed: AtomicU64,
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    port: u16,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:upstream_port` on the current tokio
    /// runtime.
    pub async fn start(upstream_port: u16, schedule: Schedule) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let stats = Arc::new(Stats::default());
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let task = {
            let stats = stats.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let stats = stats.clone();
                    let schedule = schedule.clone();
                    tokio::spawn(async move {
                        let _ = serve(client, upstream, schedule, stats).await;
                    });
                }
            })
        };
        FaultProxy { port, stats, task }
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Requests disturbed so far.
    pub fn disturbed(&self) -> u64 {
        self.stats.disturbed.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A deterministic schedule disturbing about `percent` % of requests with a
/// mix of every fault kind; `stall` should exceed the client's timeout.
pub fn mixed_schedule(seed: u64, percent: u64, stall: Duration) -> Schedule {
    Arc::new(move |n| {
        let h = splitmix(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let roll = h % 1000;
        let cut = percent * 10;
        if roll >= cut {
            return Fault::Pass;
        }
        // Spread the disturbed share over the fault kinds.
        match (h >> 32) % 100 {
            0..=24 => Fault::Status(500, None),
            25..=39 => Fault::Status(503, Some(1)),
            40..=54 => Fault::Status(429, None),
            55..=67 => Fault::Reset,
            68..=77 => Fault::Truncate,
            78..=85 => Fault::ForwardThenReset,
            86..=93 => Fault::ForwardThen500,
            94..=96 => Fault::Status(502, None),
            _ => Fault::Stall(stall),
        }
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A buffered connection that reads HTTP/1.1 messages.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// One HTTP message as raw bytes, with where its head ends.
struct Message {
    bytes: Vec<u8>,
    head_len: usize,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Takes `n` bytes from the front of the buffer, reading as needed.
    async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Takes one line (through CRLF).
    async fn take_line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                return Ok(self.buf.drain(..i + 2).collect());
            }
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads a message head; `None` at a clean end of stream.
    async fn take_head(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                return Ok(Some(self.buf.drain(..i + 4).collect()));
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(std::io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    /// Reads a request; `None` when the client closed the connection.
    async fn read_request(&mut self) -> std::io::Result<Option<(Message, String)>> {
        let Some(head) = self.take_head().await? else {
            return Ok(None);
        };
        let method =
            String::from_utf8_lossy(head.split(|b| *b == b' ').next().unwrap_or(b"")).to_string();
        let len = header(&head, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let head_len = head.len();
        let mut bytes = head;
        bytes.extend(self.take(len).await?);
        Ok(Some((Message { bytes, head_len }, method)))
    }

    /// Reads a response to a request of `method`.
    async fn read_response(&mut self, method: &str) -> std::io::Result<Message> {
        let head = self
            .take_head()
            .await?
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let status: u16 = String::from_utf8_lossy(&head)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let head_len = head.len();
        let mut bytes = head.clone();
        let no_body = method == "HEAD" || status == 204 || status == 304 || status < 200;
        if no_body {
        } else if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let line = self.take_line().await?;
                let size_text = String::from_utf8_lossy(&line);
                let size =
                    usize::from_str_radix(size_text.trim().split(';').next().unwrap_or("0"), 16)
                        .map_err(|_| std::io::Error::other("bad chunk size"))?;
                bytes.extend_from_slice(&line);
                if size == 0 {
                    // Trailers until an empty line.
                    loop {
                        let t = self.take_line().await?;
                        bytes.extend_from_slice(&t);
                        if t == b"\r\n" {
                            break;
                        }
                    }
                    break;
                }
                bytes.extend(self.take(size + 2).await?);
            }
        } else if let Some(len) = header(&head, "content-length").and_then(|v| v.parse().ok()) {
            bytes.extend(self.take(len).await?);
        } else {
            while self.fill().await? {}
            bytes.append(&mut self.buf);
        }
        Ok(Message { bytes, head_len })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of header `name` (lower case) in a message head.
fn header(head: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_ascii_lowercase())
    })
}

fn synthetic(status: u16, retry_after: Option<u64>) -> Vec<u8> {
    let (reason, code) = match status {
        429 => ("Too Many Requests", "TooManyRequests"),
        500 => ("Internal Server Error", "InternalError"),
        502 => ("Bad Gateway", "BadGateway"),
        503 => ("Service Unavailable", "ServerBusy"),
        _ => ("Error", "InjectedFault"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code>\
         <Message>injected by the fault proxy</Message></Error>"
    );
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n\
         x-ms-error-code: {code}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(secs) = retry_after {
        head.push_str(&format!("Retry-After: {secs}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Closes `stream` with a TCP reset.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(
    client: TcpStream,
    upstream_addr: SocketAddr,
    schedule: Schedule,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let mut client = Conn::new(client);
    let mut upstream: Option<Conn> = None;
    loop {
        let Some((request, method)) = client.read_request().await? else {
            return Ok(());
        };
        let n = stats.requests.fetch_add(1, Ordering::SeqCst);
        let fault = schedule(n);
        if fault.disturbs() {
            stats.disturbed.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            Fault::Status(status, retry_after) => {
                client
                    .stream
                    .write_all(&synthetic(status, retry_after))
                    .await?;
                continue;
            }
            Fault::Reset => {
                reset(client.stream);
                return Ok(());
            }
            Fault::Stall(d) => {
                tokio::time::sleep(d).await;
                return Ok(());
            }
            _ => {}
        }
        // Forward, reconnecting once if a kept-alive upstream connection
        // was closed meanwhile.
        let mut response = None;
        for _ in 0..2 {
            if upstream.is_none() {
                let s = TcpStream::connect(upstream_addr).await?;
                let _ = s.set_nodelay(true);
                upstream = Some(Conn::new(s));
            }
            let Some(up) = upstream.as_mut() else {
                continue;
            };
            let sent = up.stream.write_all(&request.bytes).await;
            let got = match sent {
                Ok(()) => up.read_response(&method).await,
                Err(e) => Err(e),
            };
            match got {
                Ok(r) => {
                    response = Some(r);
                    break;
                }
                Err(_) => upstream = None,
            }
        }
        let Some(response) = response else {
            reset(client.stream);
            return Ok(());
        };
        let keep_alive = header(&response.bytes[..response.head_len], "connection")
            .is_none_or(|v| !v.contains("close"));
        if !keep_alive {
            upstream = None;
        }
        match fault {
            Fault::ForwardThenReset => {
                reset(client.stream);
                return Ok(());
            }
            Fault::ForwardThen500 => {
                client.stream.write_all(&synthetic(500, None)).await?;
            }
            Fault::Truncate => {
                // Cut inside the body, or inside the head if there is no body.
                let cut = if response.bytes.len() > response.head_len {
                    response.head_len + (response.bytes.len() - response.head_len) / 2
                } else {
                    response.head_len / 2
                };
                client.stream.write_all(&response.bytes[..cut]).await?;
                client.stream.flush().await?;
                return Ok(());
            }
            _ => {
                client.stream.write_all(&response.bytes).await?;
                if !keep_alive {
                    return Ok(());
                }
            }
        }
    }
}
