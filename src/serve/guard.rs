//! Who may talk to the server: a token on every request (from the URL
//! once, then an HttpOnly SameSite=Strict cookie), a Host header naming
//! this server (no DNS rebinding), an Origin, when sent, of this server (no
//! cross-site requests), and headers that keep the page to its own script.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// What a request must show.
#[derive(Debug, Clone)]
pub struct Guard {
    token: String,
    /// `host:port` values the Host header may hold.
    hosts: Vec<String>,
    /// Listening on every address (`0.0.0.0`, `::`): any IP address with
    /// this port is this server too. A literal address cannot be rebound
    /// by DNS; names other than the machine's own are still refused.
    any_ip: Option<u16>,
    cookie: String,
}

/// The Content-Security-Policy of every response: the page's own script,
/// style and connections only; no inline script, no plugins, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

impl Guard {
    /// A guard for a server at `host:port`. Loopback servers also answer
    /// to `localhost`, `127.0.0.1` and `[::1]`.
    pub fn new(token: String, host: &str, port: u16) -> Guard {
        let mut names = vec![host.to_string()];
        let unspecified = host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if is_loopback(host) || unspecified {
            names.extend(["localhost", "127.0.0.1", "[::1]"].map(String::from));
        }
        if unspecified {
            if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
                names.push(name.trim().to_string());
            }
        }
        let mut hosts: Vec<String> = names
            .iter()
            .map(|name| {
                if name.contains(':') && !name.starts_with('[') {
                    format!("[{name}]:{port}")
                } else {
                    format!("{name}:{port}")
                }
            })
            .collect();
        hosts.dedup();
        Guard {
            token,
            hosts,
            any_ip: unspecified.then_some(port),
            cookie: format!("runbook-token-{port}"),
        }
    }

    /// Whether `host:port` (a Host header, or an Origin without its
    /// scheme) names this server.
    fn is_us(&self, host: &str) -> bool {
        if self.hosts.iter().any(|allowed| allowed == host) {
            return true;
        }
        let Some(port) = self.any_ip else {
            return false;
        };
        host.parse::<std::net::SocketAddr>()
            .is_ok_and(|address| address.port() == port)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Why a request is refused, or `None` when it may go on.
    pub fn refusal(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<&'static str> {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !host.is_some_and(|h| self.is_us(h)) {
            return Some("this server does not answer to that Host");
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !origin
                .strip_prefix("http://")
                .is_some_and(|h| self.is_us(h))
            {
                return Some("requests from other sites are refused");
            }
        }
        // Browsers say where a request comes from: this page (same-origin)
        // or the address bar (none). Another port of the same host is only
        // `same-site`, and refused like any other site.
        if headers
            .get("sec-fetch-site")
            .is_some_and(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"))
        {
            return Some("requests from other sites are refused");
        }
        let from_cookie = self.cookie_token(headers);
        let from_query = (*method == Method::GET)
            .then(|| query.and_then(token_in_query))
            .flatten();
        let shown = from_cookie.or(from_query);
        if !shown.is_some_and(|t| same(t.as_bytes(), self.token.as_bytes())) {
            return Some("a valid token is needed: open the URL runbook serve printed");
        }
        None
    }

    fn cookie_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value)
    }

    /// The cookie that stands for the token from now on.
    fn set_cookie(&self) -> String {
        format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie, self.token
        )
    }
}

fn token_in_query(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| value)
}

/// Compares in time that does not depend on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A fresh random token: 32 bytes from the kernel, as hex.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The middleware: refuses what the guard refuses, turns a token in the
/// URL into the cookie (and sends the browser on without it), and adds
/// the security headers to every response.
pub async fn check(
    State(guard): State<std::sync::Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let refusal = guard.refusal(request.method(), request.uri().query(), request.headers());
    let mut response = match refusal {
        Some(reason) => (StatusCode::FORBIDDEN, format!("{reason}\n")).into_response(),
        None if request
            .uri()
            .query()
            .is_some_and(|q| token_in_query(q).is_some()) =>
        {
            let path = request.uri().path().to_string();
            let mut response = Redirect::to(&path).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&guard.set_cookie()) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn refuses_what_it_should() {
        let guard = Guard::new("abc".into(), "127.0.0.1", 8808);
        let cookie = "runbook-token-8808=abc";
        let get = Method::GET;
        let ok = headers(&[("host", "localhost:8808"), ("cookie", cookie)]);
        assert_eq!(guard.refusal(&get, None, &ok), None);
        assert_eq!(
            guard.refusal(
                &get,
                Some("token=abc"),
                &headers(&[("host", "127.0.0.1:8808")])
            ),
            None
        );
        // The token in the URL counts for GET only.
        assert!(guard
            .refusal(
                &Method::POST,
                Some("token=abc"),
                &headers(&[("host", "127.0.0.1:8808")])
            )
            .is_some());
        assert!(guard
            .refusal(&get, None, &headers(&[("host", "127.0.0.1:8808")]))
            .is_some());
        assert!(guard
            .refusal(
                &get,
                None,
                &headers(&[
                    ("host", "127.0.0.1:8808"),
                    ("cookie", "runbook-token-8808=abd")
                ])
            )
            .is_some());
        assert!(guard
            .refusal(
                &get,
                None,
                &headers(&[("host", "evil.example:8808"), ("cookie", cookie)])
            )
            .is_some());
        assert!(guard
            .refusal(
                &get,
                None,
                &headers(&[("host", "localhost:8809"), ("cookie", cookie)])
            )
            .is_some());
        assert!(guard
            .refusal(&get, None, &headers(&[("cookie", cookie)]))
            .is_some());
        assert!(guard
            .refusal(
                &get,
                None,
                &headers(&[
                    ("host", "localhost:8808"),
                    ("cookie", cookie),
                    ("origin", "http://evil.example")
                ])
            )
            .is_some());
        assert!(guard
            .refusal(
                &get,
                None,
                &headers(&[
                    ("host", "localhost:8808"),
                    ("cookie", cookie),
                    ("origin", "null")
                ])
            )
            .is_some());
        assert_eq!(
            guard.refusal(
                &get,
                None,
                &headers(&[
                    ("host", "localhost:8808"),
                    ("cookie", cookie),
                    ("origin", "http://127.0.0.1:8808")
                ])
            ),
            None
        );
    }

    #[test]
    fn every_address_means_any_ip_but_no_foreign_name() {
        let guard = Guard::new("abc".into(), "0.0.0.0", 8808);
        let cookie = "runbook-token-8808=abc";
        let get = Method::GET;
        for host in [
            "192.168.1.20:8808",
            "[fe80::1]:8808",
            "localhost:8808",
            "0.0.0.0:8808",
        ] {
            assert_eq!(
                guard.refusal(&get, None, &headers(&[("host", host), ("cookie", cookie)])),
                None,
                "{host}"
            );
        }
        for host in ["evil.example:8808", "192.168.1.20:9000", "192.168.1.20"] {
            assert!(
                guard
                    .refusal(&get, None, &headers(&[("host", host), ("cookie", cookie)]))
                    .is_some(),
                "{host}"
            );
        }
        let from = |origin| {
            headers(&[
                ("host", "192.168.1.20:8808"),
                ("cookie", cookie),
                ("origin", origin),
            ])
        };
        assert_eq!(
            guard.refusal(&get, None, &from("http://192.168.1.20:8808")),
            None
        );
        assert!(guard
            .refusal(&get, None, &from("http://evil.example:8808"))
            .is_some());
    }

    #[test]
    fn tokens_are_long_and_fresh() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
