//! Azure Blob Storage backend: a thin client over `reqwest` speaking the five
//! REST calls CLFS needs (Put Blob, Get Blob, Get Blob Properties, Delete
//! Blob, List Blobs), plus Create Container for setting up tests.
//!
//! Requests are authorised with a SAS appended to the URL or with Shared Key
//! signing ([`Credential`]). Connections are kept alive in a pool sized to the
//! configured concurrency. There is no retry here: [`super::retry`] does it.
//!
//! Nothing this module logs or returns contains a URL with its query string,
//! a signature or a key: transport errors are rendered without their URL and
//! scrubbed of the SAS signature as a second line of defence.

use std::fmt;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use quick_xml::events::Event;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use sha2::Sha256;

use super::url::{AccountKey, AzureTarget, Credential};
use super::{
    check_prefix, BlobMeta, BlobName, BlobStore, ListPage, Op, StoreError, TransportKind,
    LIST_PAGE_SIZE,
};

/// The REST API version sent in `x-ms-version`.
pub const API_VERSION: &str = "2021-12-02";

/// Characters left as they are in a blob path: unreserved ones and `/`.
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Characters left as they are in a query value: unreserved ones.
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Largest error body read to find Azure's error code.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Options of the Azure client.
#[derive(Clone, Debug)]
pub struct AzureOptions {
    /// Idle keep-alive connections kept per host; set it to the number of
    /// requests in flight. Default 32.
    pub concurrency: usize,
    /// Timeout for establishing a TCP (and TLS) connection. Default 10 s.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Whether to use the `HTTPS_PROXY`/`HTTP_PROXY` variables. Default true;
    /// loopback endpoints never go through a proxy.
    pub use_env_proxy: bool,
    /// Names per List Blobs page, 1 to 5,000 (the default and Azure's
    /// maximum).
    pub list_page_size: usize,
}

impl Default for AzureOptions {
    fn default() -> Self {
        AzureOptions {
            concurrency: 32,
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            use_env_proxy: true,
            list_page_size: LIST_PAGE_SIZE,
        }
    }
}

/// An Azure Blob container.
pub struct AzureStore {
    client: reqwest::Client,
    target: AzureTarget,
    /// `/container` or `/account/container` (URL-encoded form; names are
    /// plain already).
    container_path: String,
    /// Forms of the SAS signature to scrub out of any text we produce.
    scrub: Vec<String>,
    list_page_size: usize,
}

impl fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureStore")
            .field("container", &self.target.to_string())
            .field("credential", &self.target.credential.kind())
            .finish_non_exhaustive()
    }
}

/// What one request looks like before it is sent.
struct Request<'a> {
    op: Op,
    /// Blob name or list prefix, for errors.
    subject: &'a str,
    method: Method,
    blob: Option<&'a BlobName>,
    /// Query parameters of the operation (not the SAS), unencoded.
    query: Vec<(&'static str, String)>,
    body: Option<Bytes>,
    /// Extra `x-ms-*` headers.
    headers: Vec<(&'static str, &'static str)>,
    /// User metadata, sent as `x-ms-meta-KEY: VALUE`.
    meta: Vec<(String, String)>,
}

impl AzureStore {
    /// A client for `target`.
    pub fn new(target: AzureTarget, options: &AzureOptions) -> Result<Self, StoreError> {
        let mut builder = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(options.concurrency.max(1))
            .pool_idle_timeout(options.pool_idle_timeout)
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clfs-fs/", env!("CARGO_PKG_VERSION")));
        if !options.use_env_proxy || target.is_loopback() {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| {
            StoreError::Config(format!(
                "cannot set up the HTTP client: {}",
                chain(&e.without_url())
            ))
        })?;
        let scrub = match &target.credential {
            Credential::Sas(sas) => sas.signature_forms(),
            _ => Vec::new(),
        };
        if matches!(target.credential, Credential::SharedKey(_))
            && target.endpoint.starts_with("http://")
            && !target.is_loopback()
        {
            tracing::warn!(
                container = %target,
                "Shared Key requests over plain http: the requests (not the key) can be read on the network"
            );
        }
        Ok(AzureStore {
            client,
            container_path: target.container_path(),
            target,
            scrub,
            list_page_size: options.list_page_size.clamp(1, LIST_PAGE_SIZE),
        })
    }

    /// The parsed target (its `Display` is redacted).
    pub fn target(&self) -> &AzureTarget {
        &self.target
    }

    /// Creates the container; `Ok(false)` if it already existed.
    pub async fn create_container(&self) -> Result<bool, StoreError> {
        let req = Request {
            op: Op::CreateContainer,
            subject: &self.target.container,
            method: Method::PUT,
            blob: None,
            query: vec![("restype", "container".to_string())],
            body: None,
            headers: Vec::new(),
            meta: Vec::new(),
        };
        match self.send(req).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes the container and everything in it; `Ok(false)` if it did not
    /// exist.
    pub async fn delete_container(&self) -> Result<bool, StoreError> {
        let req = Request {
            op: Op::Delete,
            subject: &self.target.container,
            method: Method::DELETE,
            blob: None,
            query: vec![("restype", "container".to_string())],
            body: None,
            headers: Vec::new(),
            meta: Vec::new(),
        };
        match self.send(req).await {
            Ok(_) => Ok(true),
            Err(StoreError::ContainerNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Put Blob with user metadata (`x-ms-meta-KEY: VALUE`; keys must be
    /// valid C# identifiers, values printable ASCII).
    pub async fn put_with_metadata(
        &self,
        name: &BlobName,
        data: Bytes,
        meta: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut req = self.request(Op::Put, Method::PUT, name);
        req.body = Some(data);
        req.headers.push(("x-ms-blob-type", "BlockBlob"));
        req.meta = meta.to_vec();
        self.send(req).await.map(drop)
    }

    /// Put Block: stages one block of a block blob under `block_id`
    /// (base64 of at most 64 bytes, all ids of a blob the same length).
    pub async fn put_block(
        &self,
        name: &BlobName,
        block_id: &str,
        data: Bytes,
    ) -> Result<(), StoreError> {
        let mut req = self.request(Op::Put, Method::PUT, name);
        req.query = vec![
            ("comp", "block".to_string()),
            ("blockid", block_id.to_string()),
        ];
        req.body = Some(data);
        self.send(req).await.map(drop)
    }

    /// Put Block List: commits the staged blocks `block_ids` in order as
    /// the blob's contents, with user metadata.
    pub async fn put_block_list(
        &self,
        name: &BlobName,
        block_ids: &[String],
        meta: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in block_ids {
            xml.push_str("<Latest>");
            xml.push_str(id);
            xml.push_str("</Latest>");
        }
        xml.push_str("</BlockList>");
        let mut req = self.request(Op::Put, Method::PUT, name);
        req.query = vec![("comp", "blocklist".to_string())];
        req.body = Some(Bytes::from(xml));
        req.meta = meta.to_vec();
        self.send(req).await.map(drop)
    }

    /// Get Blob with its user metadata (keys without `x-ms-meta-`).
    pub async fn get_with_metadata(
        &self,
        name: &BlobName,
    ) -> Result<(Bytes, Vec<(String, String)>), StoreError> {
        let response = self.send(self.request(Op::Get, Method::GET, name)).await?;
        let mut meta: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                let key = k.as_str().strip_prefix("x-ms-meta-")?;
                Some((key.to_string(), v.to_str().ok()?.to_string()))
            })
            .collect();
        meta.sort();
        let body = response.bytes().await.map_err(|e| StoreError::Transport {
            op: Op::Get,
            name: name.to_string(),
            kind: TransportKind::Body,
            message: self.scrubbed(chain(&e.without_url())),
        })?;
        Ok((body, meta))
    }

    /// Replaces every form of the SAS signature in `text`.
    fn scrubbed(&self, text: String) -> String {
        let mut text = text;
        for secret in &self.scrub {
            if !secret.is_empty() && text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }

    /// The URL path of a blob or of the container (encoded).
    fn path_of(&self, blob: Option<&BlobName>) -> String {
        match blob {
            Some(name) => format!(
                "{}/{}",
                self.container_path,
                utf8_percent_encode(name.as_str(), PATH_SET)
            ),
            None => self.container_path.clone(),
        }
    }

    /// Sends one request; non-success statuses become errors.
    async fn send(&self, req: Request<'_>) -> Result<reqwest::Response, StoreError> {
        let path = self.path_of(req.blob);
        let mut url = format!("{}{}", self.target.endpoint, path);
        let mut sep = '?';
        for (k, v) in &req.query {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&utf8_percent_encode(v, QUERY_SET).to_string());
            sep = '&';
        }
        if let Credential::Sas(sas) = &self.target.credential {
            url.push(sep);
            url.push_str(sas.query().expose());
        }

        let date = httpdate::fmt_http_date(SystemTime::now());
        let request_id = format!("{:016x}", rand::random::<u64>());
        let content_length = req.body.as_ref().map_or(0, |b| b.len());
        let mut headers = HeaderMap::new();
        let mut ms_headers: Vec<(&str, String)> = vec![
            ("x-ms-client-request-id", request_id.clone()),
            ("x-ms-date", date),
            ("x-ms-version", API_VERSION.to_string()),
        ];
        for (k, v) in &req.headers {
            ms_headers.push((k, (*v).to_string()));
        }
        let meta_keys: Vec<String> = req
            .meta
            .iter()
            .map(|(k, _)| format!("x-ms-meta-{k}"))
            .collect();
        for (k, (_, v)) in meta_keys.iter().zip(&req.meta) {
            ms_headers.push((k.as_str(), v.clone()));
        }
        for (k, v) in &ms_headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                StoreError::Config(format!("metadata key {k:?} is not a valid header name"))
            })?;
            headers.insert(name, header_value(v)?);
        }
        if req.body.is_some() || req.method == Method::PUT {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(content_length));
        }
        if let Credential::SharedKey(key) = &self.target.credential {
            let to_sign = string_to_sign(
                req.method.as_str(),
                content_length,
                &ms_headers,
                &self.target.account,
                &path,
                &req.query,
            );
            let auth = format!("SharedKey {}:{}", self.target.account, sign(key, &to_sign));
            headers.insert(reqwest::header::AUTHORIZATION, header_value(&auth)?);
        }

        let mut builder = self
            .client
            .request(req.method.clone(), url)
            .headers(headers);
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let started = Instant::now();
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = self.transport_error(req.op, req.subject, e);
                tracing::debug!(op = %req.op, blob = req.subject, request_id, error = %err, "request failed");
                return Err(err);
            }
        };
        let status = response.status();
        tracing::trace!(
            op = %req.op,
            blob = req.subject,
            request_id,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "response"
        );
        if status.is_success() {
            return Ok(response);
        }
        Err(self.status_error(req.op, req.subject, response).await)
    }

    fn transport_error(&self, op: Op, subject: &str, e: reqwest::Error) -> StoreError {
        let kind = transport_kind(&e);
        StoreError::Transport {
            op,
            name: subject.to_string(),
            kind,
            message: self.scrubbed(chain(&e.without_url())),
        }
    }

    /// Turns an error response into a [`StoreError`].
    async fn status_error(
        &self,
        op: Op,
        subject: &str,
        mut response: reqwest::Response,
    ) -> StoreError {
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let mut code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if code.is_none() {
            let mut body = Vec::new();
            while body.len() < MAX_ERROR_BODY {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            code = error_code_from_body(&body);
        }
        // Codes are short identifiers; anything else is not echoed.
        let code = code.filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
        let name = subject.to_string();
        match status {
            StatusCode::NOT_FOUND => {
                let container_missing = code.as_deref() == Some("ContainerNotFound")
                    || (matches!(op, Op::Put | Op::List | Op::CreateContainer)
                        && code.as_deref() != Some("BlobNotFound"));
                if container_missing {
                    let hint = match code.as_deref() {
                        Some("ContainerNotFound") => String::new(),
                        _ => format!(
                            " (or it is not visible with {}: HTTP 404{})",
                            self.target.credential.kind(),
                            code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()
                        ),
                    };
                    StoreError::ContainerNotFound {
                        op,
                        name,
                        container: self.target.to_string(),
                        hint,
                    }
                } else {
                    StoreError::NotFound { op, name }
                }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StoreError::PermissionDenied {
                op,
                name,
                status: status.as_u16(),
                hint: self.permission_hint(op, code.as_deref()),
                code,
            },
            StatusCode::CONFLICT => StoreError::Conflict { op, name, code },
            _ => StoreError::Http {
                op,
                name,
                status: status.as_u16(),
                code,
                retry_after,
            },
        }
    }

    /// What a 401/403 most likely means, in words a user can act on.
    fn permission_hint(&self, op: Op, code: Option<&str>) -> String {
        let (letter, verb) = match op {
            Op::Put => ('w', "write"),
            Op::Get | Op::Head => ('r', "read"),
            Op::List => ('l', "list"),
            Op::Delete => ('d', "delete"),
            Op::CreateContainer => ('c', "create containers"),
        };
        let container = self.target.container_url();
        match &self.target.credential {
            Credential::Anonymous => format!(
                "no credential was given for {container}: add a SAS to the URL or set \
                 AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_ACCOUNT_KEY or \
                 AZURE_STORAGE_CONNECTION_STRING"
            ),
            Credential::SharedKey(_) => match code {
                Some("AuthenticationFailed") | Some("InvalidAuthenticationInfo") => format!(
                    "the account key was rejected: check that it is the key of account {} \
                     (from {})",
                    self.target.account, self.target.credential_source
                ),
                // Azure says AuthorizationFailure when network rules block
                // the client; Azurite says it for a wrong key too.
                _ => format!(
                    "the account key was rejected or may not be used from here: check that \
                     it is the key of account {} (from {}) and that the account's network \
                     rules allow this client",
                    self.target.account, self.target.credential_source
                ),
            },
            Credential::Sas(sas) => {
                let source = self.target.credential_source;
                // An expired SAS explains any refusal, whatever the code.
                if sas.expired_at(SystemTime::now()) == Some(true) {
                    return format!(
                        "the SAS (from {source}) expired at {}: create a new one",
                        sas.field("se").unwrap_or("?")
                    );
                }
                match code {
                    Some("AuthenticationFailed")
                    | Some("InvalidAuthenticationInfo")
                    | Some("ExpiredAuthenticationToken") => format!(
                        "the SAS (from {source}) was rejected: check that it is complete \
                         (with its sig= field), not expired, and made for {container}"
                    ),
                    Some("AuthorizationSourceIPMismatch") => format!(
                        "the SAS (from {source}) does not allow requests from this client's IP \
                         address (its sip= range)"
                    ),
                    Some("AuthorizationProtocolMismatch") => {
                        format!("the SAS (from {source}) allows HTTPS only (spr=https)")
                    }
                    Some("AuthorizationResourceTypeMismatch") => format!(
                        "the SAS (from {source}) is for another kind of resource: use a \
                         container SAS (sr=c) or an account SAS with srt=co"
                    ),
                    Some("AuthorizationServiceMismatch") => format!(
                        "the SAS (from {source}) is not for the Blob service (ss= must include b)"
                    ),
                    _ => {
                        let perms = sas.field("sp").unwrap_or("");
                        if !perms.contains(letter) {
                            format!(
                                "the SAS (from {source}) does not allow {verb}: it grants sp={perms}, \
                                 and {verb} needs the '{letter}' permission"
                            )
                        } else {
                            format!(
                                "the SAS (from {source}) was refused for {verb}{}: check that \
                                 it is complete and signed for {container}, and that the \
                                 account's network rules allow this client",
                                code.map(|c| format!(" ({c})")).unwrap_or_default()
                            )
                        }
                    }
                }
            }
        }
    }

    fn request<'a>(&self, op: Op, method: Method, blob: &'a BlobName) -> Request<'a> {
        Request {
            op,
            subject: blob.as_str(),
            method,
            blob: Some(blob),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            meta: Vec::new(),
        }
    }
}

#[async_trait]
impl BlobStore for AzureStore {
    async fn put(&self, name: &BlobName, data: Bytes) -> Result<(), StoreError> {
        let mut req = self.request(Op::Put, Method::PUT, name);
        req.body = Some(data);
        req.headers.push(("x-ms-blob-type", "BlockBlob"));
        self.send(req).await.map(drop)
    }

    async fn get(&self, name: &BlobName) -> Result<Bytes, StoreError> {
        let response = self.send(self.request(Op::Get, Method::GET, name)).await?;
        let expected = response.content_length();
        let body = response.bytes().await.map_err(|e| StoreError::Transport {
            op: Op::Get,
            name: name.to_string(),
            kind: TransportKind::Body,
            message: self.scrubbed(chain(&e.without_url())),
        })?;
        if let Some(len) = expected {
            if len != body.len() as u64 {
                return Err(StoreError::Transport {
                    op: Op::Get,
                    name: name.to_string(),
                    kind: TransportKind::Body,
                    message: format!("received {} of {len} bytes", body.len()),
                });
            }
        }
        Ok(body)
    }

    async fn head(&self, name: &BlobName) -> Result<Option<BlobMeta>, StoreError> {
        match self.send(self.request(Op::Head, Method::HEAD, name)).await {
            Ok(response) => {
                let size = response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| StoreError::InvalidResponse {
                        op: Op::Head,
                        name: name.to_string(),
                        detail: "no Content-Length in the blob's properties".into(),
                    })?;
                Ok(Some(BlobMeta {
                    name: name.clone(),
                    size,
                }))
            }
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, name: &BlobName) -> Result<(), StoreError> {
        match self
            .send(self.request(Op::Delete, Method::DELETE, name))
            .await
        {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_page(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, StoreError> {
        check_prefix(prefix)?;
        let mut query = vec![
            ("restype", "container".to_string()),
            ("comp", "list".to_string()),
            ("maxresults", self.list_page_size.to_string()),
        ];
        if !prefix.is_empty() {
            query.push(("prefix", prefix.to_string()));
        }
        if let Some(m) = marker {
            query.push(("marker", m.to_string()));
        }
        let req = Request {
            op: Op::List,
            subject: prefix,
            method: Method::GET,
            blob: None,
            query,
            body: None,
            headers: Vec::new(),
            meta: Vec::new(),
        };
        let response = self.send(req).await?;
        let body = response.bytes().await.map_err(|e| StoreError::Transport {
            op: Op::List,
            name: prefix.to_string(),
            kind: TransportKind::Body,
            message: self.scrubbed(chain(&e.without_url())),
        })?;
        let page = parse_list(&body).map_err(|detail| StoreError::InvalidResponse {
            op: Op::List,
            name: prefix.to_string(),
            detail,
        })?;
        // Azure returns names in order; a server that does not would break
        // callers that merge listings, so check rather than trust.
        if page.blobs.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(StoreError::InvalidResponse {
                op: Op::List,
                name: prefix.to_string(),
                detail: "the listing is not in name order".into(),
            });
        }
        Ok(page)
    }

    fn location(&self) -> String {
        self.target.to_string()
    }
}

fn header_value(v: &str) -> Result<HeaderValue, StoreError> {
    HeaderValue::from_str(v).map_err(|_| StoreError::Config("a request header is not valid".into()))
}

/// The Shared Key string to sign (Blob service, version 2009-09-19 and
/// later): verb, the standard headers (only Content-Length is ever set),
/// the canonicalised `x-ms-*` headers and the canonicalised resource.
fn string_to_sign(
    method: &str,
    content_length: usize,
    ms_headers: &[(&str, String)],
    account: &str,
    path: &str,
    query: &[(&'static str, String)],
) -> String {
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut s = format!("{method}\n\n\n{length}\n\n\n\n\n\n\n\n\n");
    let mut headers: Vec<(String, &str)> = ms_headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
        .collect();
    headers.sort();
    for (k, v) in headers {
        s.push_str(&k);
        s.push(':');
        s.push_str(v);
        s.push('\n');
    }
    s.push('/');
    s.push_str(account);
    s.push_str(path);
    let mut params: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    params.sort();
    for (k, v) in params {
        s.push('\n');
        s.push_str(&k);
        s.push(':');
        s.push_str(v);
    }
    s
}

/// Base64 of HMAC-SHA256(key, text).
fn sign(key: &AccountKey, text: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.expose()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// An error and its sources, joined with ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn transport_kind(e: &reqwest::Error) -> TransportKind {
    if e.is_connect() {
        return TransportKind::Connect;
    }
    if e.is_body() || e.is_decode() {
        return TransportKind::Body;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ) {
                return TransportKind::Reset;
            }
        }
        source = s.source();
    }
    TransportKind::Request
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The `<Code>` of an Azure error body (public for the fuzz target).
pub fn error_code_from_body(body: &[u8]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut in_code = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => in_code = e.local_name().as_ref() == b"Code",
            Ok(Event::Text(t)) if in_code => return t.decode().ok().map(|c| c.trim().to_string()),
            Ok(Event::End(_)) => in_code = false,
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// Parses a List Blobs response body (public for the fuzz target).
pub fn parse_list(body: &[u8]) -> Result<ListPage, String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut page = ListPage::default();
    // Element names from the root down to the current element.
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut name: Option<String> = None;
    let mut size: Option<u64> = None;
    let mut name_encoded = false;
    let mut saw_root = false;
    // Whether the text of the current element matters: Blob/Name,
    // Blob/Properties/Content-Length or EnumerationResults/NextMarker.
    let wanted = |path: &[Vec<u8>]| -> bool {
        let n = path.len();
        match path.last().map(Vec::as_slice) {
            Some(b"Name") => n >= 2 && path[n - 2] == b"Blob",
            Some(b"Content-Length") => {
                n >= 3 && path[n - 2] == b"Properties" && path[n - 3] == b"Blob"
            }
            Some(b"NextMarker") => n == 2,
            _ => false,
        }
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(e) => {
                text.clear();
                let local = e.local_name().as_ref().to_vec();
                if path.is_empty() {
                    if local != b"EnumerationResults" {
                        return Err("not a List Blobs response (no <EnumerationResults>)".into());
                    }
                    saw_root = true;
                }
                if local == b"Blob" {
                    name = None;
                    size = None;
                }
                if local == b"Name" {
                    name_encoded = e
                        .try_get_attribute("Encoded")
                        .ok()
                        .flatten()
                        .is_some_and(|a| a.value.as_ref() == b"true");
                }
                path.push(local);
            }
            Event::Empty(e)
                if path.is_empty() && e.local_name().as_ref() == b"EnumerationResults" =>
            {
                saw_root = true;
            }
            Event::Text(t) if wanted(&path) => {
                text.push_str(&t.decode().map_err(|e| format!("bad text: {e}"))?);
            }
            Event::CData(t) if wanted(&path) => {
                text.push_str(&t.decode().map_err(|e| format!("bad text: {e}"))?);
            }
            Event::GeneralRef(r) if wanted(&path) => {
                if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| format!("bad reference: {e}"))?
                {
                    text.push(c);
                } else {
                    let entity = r.decode().map_err(|e| format!("bad reference: {e}"))?;
                    text.push(match entity.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("unknown entity &{other};")),
                    });
                }
            }
            Event::End(_) => {
                let was_wanted = wanted(&path);
                let Some(local) = path.pop() else {
                    return Err("unbalanced XML".into());
                };
                match local.as_slice() {
                    b"Name" if was_wanted => {
                        let raw = std::mem::take(&mut text);
                        name = Some(if name_encoded {
                            percent_encoding::percent_decode_str(&raw)
                                .decode_utf8()
                                .map_err(|_| "an encoded name is not UTF-8".to_string())?
                                .into_owned()
                        } else {
                            raw
                        });
                    }
                    b"Content-Length" if was_wanted => {
                        size = Some(
                            text.trim()
                                .parse()
                                .map_err(|_| format!("bad Content-Length {text:?}"))?,
                        );
                    }
                    b"NextMarker" if was_wanted => {
                        let marker = std::mem::take(&mut text);
                        page.next_marker = (!marker.is_empty()).then_some(marker);
                    }
                    b"Blob" => {
                        let raw = name.take().ok_or("a <Blob> without <Name>")?;
                        // Names of plain containers may be any Unicode.
                        let name = BlobName::new_plain(raw).map_err(|e| e.to_string())?;
                        page.blobs.push(BlobMeta {
                            name,
                            size: size.take().unwrap_or(0),
                        });
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err("not a List Blobs response (no <EnumerationResults>)".into());
    }
    if !path.is_empty() {
        return Err("the listing ends early".into());
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listing() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:1/devstoreaccount1" ContainerName="c">
  <Prefix>p</Prefix><MaxResults>5000</MaxResults>
  <Blobs>
    <Blob><Name>p-a&amp;b</Name><Properties><Content-Length>12</Content-Length><Content-Type>application/octet-stream</Content-Type></Properties></Blob>
    <Blob><Name>p-c&#x20;d</Name><Properties><Content-Length>0</Content-Length></Properties><Metadata><Name>x</Name></Metadata></Blob>
    <Blob><Name Encoded="true">p-%41</Name><Properties><Content-Length>3</Content-Length></Properties></Blob>
  </Blobs>
  <NextMarker>2!72!MDAwMDA</NextMarker>
</EnumerationResults>"#;
        let page = parse_list(xml).unwrap();
        let got: Vec<_> = page
            .blobs
            .iter()
            .map(|b| (b.name.as_str(), b.size))
            .collect();
        assert_eq!(got, [("p-a&b", 12), ("p-c d", 0), ("p-A", 3)]);
        assert_eq!(page.next_marker.as_deref(), Some("2!72!MDAwMDA"));

        let last = br#"<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>"#;
        let page = parse_list(last).unwrap();
        assert!(page.blobs.is_empty());
        assert_eq!(page.next_marker, None);

        assert!(parse_list(b"<html>nope</html>").is_err());
        assert!(parse_list(b"<EnumerationResults><Blobs><Blob><Name>x</Blob>").is_err());
    }

    #[test]
    fn error_code_comes_from_the_body() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?><Error><Code>ContainerNotFound</Code><Message>The specified container does not exist.</Message></Error>"#;
        assert_eq!(
            error_code_from_body(body).as_deref(),
            Some("ContainerNotFound")
        );
        assert_eq!(error_code_from_body(b""), None);
    }

    #[test]
    fn shared_key_string_to_sign() {
        // Layout from the "Authorize with Shared Key" documentation: 11 empty
        // standard headers except Content-Length, sorted x-ms headers, then
        // /account/path and sorted lower-case query parameters.
        let s = string_to_sign(
            "GET",
            0,
            &[
                ("x-ms-version", "2021-12-02".into()),
                ("x-ms-date", "D".into()),
            ],
            "acct",
            "/cont",
            &[("restype", "container".into()), ("comp", "list".into())],
        );
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:D\nx-ms-version:2021-12-02\n/acct/cont\ncomp:list\nrestype:container"
        );
        let s = string_to_sign("PUT", 5, &[], "acct", "/cont/b", &[]);
        assert!(s.starts_with("PUT\n\n\n5\n"), "{s:?}");
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let d = parse_retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn blob_paths_are_encoded() {
        let target = AzureTarget {
            endpoint: "http://127.0.0.1:1".into(),
            account: "devstoreaccount1".into(),
            container: "cont".into(),
            path_style: true,
            credential: Credential::Anonymous,
            credential_source: super::super::url::CredentialSource::None,
        };
        let store = AzureStore::new(target, &AzureOptions::default()).unwrap();
        let name = BlobName::new("a b/c?d#e%f+g").unwrap();
        assert_eq!(
            store.path_of(Some(&name)),
            "/devstoreaccount1/cont/a%20b/c%3Fd%23e%25f%2Bg"
        );
    }
}
