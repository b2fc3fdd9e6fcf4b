//! The body of an HTTP/1.1 response sent with `Transfer-Encoding: chunked`, for the tests'
//! plain-socket clients.

/// `s` (the bytes after the head) without its chunk framing.
pub fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(tail.get(..n).unwrap_or(tail));
        rest = tail.get(n..).unwrap_or("").trim_start_matches("\r\n");
    }
    out
}
