//! Plain HTTP/1.1 against the dashboard, byte for byte as an attacker or a browser sends it
//! (no client library that would fix up what the tests want to send wrong).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::Coordinator;

/// Status, headers (lower-case names, values as sent), body (de-chunked).
pub type Response = (u16, Vec<(String, String)>, String);

/// Sends `request` on a fresh connection and reads the answer to its end (10 s limits; a
/// server that sends nothing gives status 0).
pub fn request(addr: &str, request: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.strip_prefix(' ').unwrap_or(v).to_string(),
            )
        })
        .collect();
    let body = if header(&headers, "transfer-encoding") == Some("chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, headers, body)
}

/// The body of a chunked response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
    }
    out
}

/// The first header called `name` (lower case).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The dashboard's `host:port` from the coordinator's second stdout line (`--http`).
pub fn dashboard_addr(coord: &mut Coordinator) -> String {
    let line = coord.proc.next_line(Duration::from_secs(10));
    line.strip_prefix("modsync dashboard on http://")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .trim_end_matches('/')
        .to_string()
}
