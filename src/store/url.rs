//! Container locations: local paths, `file://` URLs and Azure container URLs,
//! with the credentials that go with them, and types that keep secrets out of
//! every `Debug`/`Display` output.
//!
//! # Accepted forms
//!
//! | form | meaning |
//! |---|---|
//! | `/some/dir`, `./dir`, `dir` | a directory used as a local container |
//! | `file:///some/dir` | the same, as a URL (host empty or `localhost`) |
//! | `https://ACCOUNT.blob.core.windows.net/CONTAINER[?SAS]` | an Azure container (any host whose first label is the account: other clouds, private endpoints) |
//! | `http://127.0.0.1:PORT/ACCOUNT/CONTAINER[?SAS]` | path style, as the Azurite emulator uses: for IP addresses, `localhost` and single-label host names (`http://azurite:10000/...`) |
//!
//! A URL naming a blob or a "folder" inside the container is refused: the
//! container is the unit.
//!
//! # Credential precedence (first match wins)
//!
//! 1. a SAS in the URL's query string;
//! 2. `AZURE_STORAGE_SAS_TOKEN` (a leading `?` is ignored);
//! 3. `AZURE_STORAGE_ACCOUNT_KEY`, the base64 account key of the URL's account
//!    (Shared Key signing);
//! 4. `AZURE_STORAGE_CONNECTION_STRING`: its `SharedAccessSignature`, else its
//!    `AccountKey` (its `AccountName`, if given, must be the URL's account;
//!    `UseDevelopmentStorage=true` means the emulator's published key);
//! 5. for the emulator's published account `devstoreaccount1` on a loopback
//!    address, its published key;
//! 6. otherwise no credential (anonymous: only a public container can be read).
//!
//! Empty variables count as unset. Keeping the secret in a variable keeps it
//! out of shell history and process listings.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use percent_encoding::percent_decode_str;

use super::StoreError;

/// Environment variable holding a SAS token.
pub const ENV_SAS_TOKEN: &str = "AZURE_STORAGE_SAS_TOKEN";
/// Environment variable holding an account key.
pub const ENV_ACCOUNT_KEY: &str = "AZURE_STORAGE_ACCOUNT_KEY";
/// Environment variable holding a connection string.
pub const ENV_CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";

/// The storage emulator's published development account.
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// The storage emulator's published development account key (public, from
/// Microsoft's documentation; not a secret).
pub const EMULATOR_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// What a user's secret looks like in output: `Debug` and `Display` print
/// `<redacted>`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret value. Call only where it is sent to the server.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A shared access signature: the query string as the user gave it (sent
/// verbatim) and its decoded fields. Prints with `sig` redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken {
    query: Secret<String>,
    fields: Vec<(String, Secret<String>)>,
}

/// SAS fields that are secret (printed as `<redacted>`).
const SECRET_SAS_FIELDS: &[&str] = &["sig"];

impl SasToken {
    /// Parses a SAS query string (`sv=...&sig=...`, an optional leading `?`).
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let query = text.trim().trim_start_matches('?');
        if query.is_empty() {
            return Err(StoreError::Config("the SAS token is empty".into()));
        }
        let mut fields = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let key = decode_component(k).to_ascii_lowercase();
            let value = decode_component(v);
            fields.push((key, Secret(value)));
        }
        if !fields.iter().any(|(k, v)| k == "sig" && !v.0.is_empty()) {
            return Err(StoreError::Config(
                "the query string is not a SAS token: it has no sig= field".into(),
            ));
        }
        Ok(SasToken {
            query: Secret(query.to_string()),
            fields,
        })
    }

    /// The query string to append to request URLs (secret).
    pub fn query(&self) -> &Secret<String> {
        &self.query
    }

    /// A decoded field (`sp`, `se`, ...), if present. Returns `None` for the
    /// signature itself.
    pub fn field(&self, name: &str) -> Option<&str> {
        if SECRET_SAS_FIELDS.contains(&name) {
            return None;
        }
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.0.as_str())
    }

    /// The signature, as given and decoded, for scrubbing text (secret).
    pub(crate) fn signature_forms(&self) -> Vec<String> {
        let mut forms = Vec::new();
        for part in self.query.0.split('&') {
            if let Some((k, v)) = part.split_once('=') {
                if k.eq_ignore_ascii_case("sig") && !v.is_empty() {
                    forms.push(v.to_string());
                    forms.push(decode_component(v));
                }
            }
        }
        forms
    }

    /// Whether the SAS's expiry (`se`) is in the past at `now`; `None` if it
    /// has no readable expiry.
    pub fn expired_at(&self, now: SystemTime) -> Option<bool> {
        let expiry = parse_iso8601(self.field("se")?)?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
        Some(expiry <= now)
    }

    /// The redacted query string: every field, with `sig` replaced.
    pub fn redacted(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| {
                if SECRET_SAS_FIELDS.contains(&k.as_str()) {
                    format!("{k}=<redacted>")
                } else {
                    format!("{k}={}", v.0)
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SasToken({})", self.redacted())
    }
}

impl fmt::Display for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A decoded storage account key (secret).
#[derive(Clone, PartialEq, Eq)]
pub struct AccountKey(Secret<Vec<u8>>);

impl AccountKey {
    /// Decodes a base64 account key.
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| StoreError::Config("the account key is not valid base64".into()))?;
        if bytes.is_empty() {
            return Err(StoreError::Config("the account key is empty".into()));
        }
        Ok(AccountKey(Secret(bytes)))
    }

    /// The key bytes (secret).
    pub fn expose(&self) -> &[u8] {
        &self.0 .0
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(<redacted>)")
    }
}

/// How requests to Azure are authorised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A SAS appended to every request URL.
    Sas(SasToken),
    /// Shared Key signing with the account key.
    SharedKey(AccountKey),
    /// No credential (public containers only).
    Anonymous,
}

impl Credential {
    /// A short description for messages (no secret).
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Sas(_) => "SAS",
            Credential::SharedKey(_) => "account key",
            Credential::Anonymous => "no credential",
        }
    }
}

/// Where credentials came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// The URL's query string.
    Url,
    /// `AZURE_STORAGE_SAS_TOKEN`.
    SasTokenVar,
    /// `AZURE_STORAGE_ACCOUNT_KEY`.
    AccountKeyVar,
    /// `AZURE_STORAGE_CONNECTION_STRING`.
    ConnectionString,
    /// The emulator's published key.
    EmulatorDefault,
    /// None at all.
    None,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialSource::Url => "the URL",
            CredentialSource::SasTokenVar => ENV_SAS_TOKEN,
            CredentialSource::AccountKeyVar => ENV_ACCOUNT_KEY,
            CredentialSource::ConnectionString => ENV_CONNECTION_STRING,
            CredentialSource::EmulatorDefault => "the emulator's published key",
            CredentialSource::None => "nowhere",
        })
    }
}

/// A parsed Azure container location with its credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureTarget {
    /// `scheme://host[:port]`, no trailing slash.
    pub endpoint: String,
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
    /// Whether the account is the first path segment (emulator, IP hosts)
    /// rather than the first label of the host name.
    pub path_style: bool,
    /// How requests are authorised.
    pub credential: Credential,
    /// Where the credential came from.
    pub credential_source: CredentialSource,
}

impl AzureTarget {
    /// The URL path of the container: `/CONTAINER` or `/ACCOUNT/CONTAINER`.
    pub fn container_path(&self) -> String {
        if self.path_style {
            format!("/{}/{}", self.account, self.container)
        } else {
            format!("/{}", self.container)
        }
    }

    /// The container URL without any query string (no secret).
    pub fn container_url(&self) -> String {
        format!("{}{}", self.endpoint, self.container_path())
    }

    /// Whether the endpoint host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        url::Url::parse(&self.endpoint)
            .ok()
            .and_then(|u| u.host_str().map(is_loopback_host))
            .unwrap_or(false)
    }
}

impl fmt::Display for AzureTarget {
    /// The container URL; a SAS shows as its fields with the signature
    /// redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.container_url())?;
        if let Credential::Sas(sas) = &self.credential {
            if self.credential_source == CredentialSource::Url {
                write!(f, "?{}", sas.redacted())?;
            }
        }
        Ok(())
    }
}

/// A container location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory on a local file system.
    Local(PathBuf),
    /// An Azure Blob container.
    Azure(AzureTarget),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Azure(t) => fmt::Display::fmt(t, f),
        }
    }
}

/// Serialises as the redacted `Display` form, so a location can go into
/// state files and JSON output.
impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Location {
    /// The location without any credential: the directory, or the container
    /// URL without its query string (what to record in state files).
    pub fn without_secrets(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::Azure(t) => t.container_url(),
        }
    }

    /// Parses a location, taking credentials from `env` when the URL has no
    /// SAS (see the module documentation for forms and precedence).
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, StoreError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(StoreError::Config("the location is empty".into()));
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("file:") {
            return parse_file_url(trimmed).map(Location::Local);
        }
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return parse_azure_url(trimmed, env).map(Location::Azure);
        }
        if let Some((scheme, _)) = trimmed.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+')
            {
                return Err(StoreError::Config(format!(
                    "unsupported URL scheme {scheme:?}: use a directory path, file://, or an \
                     https:// Azure container URL"
                )));
            }
        }
        Ok(Location::Local(PathBuf::from(trimmed)))
    }
}

fn parse_file_url(text: &str) -> Result<PathBuf, StoreError> {
    let url = url::Url::parse(text)
        .map_err(|e| StoreError::Config(format!("cannot parse the file URL: {e}")))?;
    match url.host_str() {
        None | Some("") | Some("localhost") => {}
        Some(host) => {
            return Err(StoreError::Config(format!(
                "a file:// URL must name a local path, not host {host:?}"
            )))
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(StoreError::Config(
            "a file:// URL cannot have a query or fragment".into(),
        ));
    }
    url.to_file_path()
        .map_err(|()| StoreError::Config("the file:// URL does not name an absolute path".into()))
}

fn nonempty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn parse_azure_url(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AzureTarget, StoreError> {
    // Never echo the URL itself in these errors: it may hold a SAS.
    let url = url::Url::parse(text)
        .map_err(|e| StoreError::Config(format!("cannot parse the container URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(StoreError::Config(
            "the container URL must not contain a user name or password".into(),
        ));
    }
    if url.fragment().is_some() {
        return Err(StoreError::Config(
            "the container URL must not have a #fragment".into(),
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| StoreError::Config("the container URL has no host".into()))?
        .to_ascii_lowercase();
    let endpoint = match url.port() {
        Some(port) => format!("{}://{}:{}", url.scheme(), host, port),
        None => format!("{}://{}", url.scheme(), host),
    };
    let segments: Vec<String> = url
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_component)
        .collect();
    let path_style_host = is_path_style_host(&host);
    let (account, container, path_style) = match (segments.len(), path_style_host) {
        (2, true) => (segments[0].clone(), segments[1].clone(), true),
        (1, false) => {
            let account = host.split('.').next().unwrap_or_default().to_string();
            (account, segments[0].clone(), false)
        }
        (1, true) => {
            return Err(StoreError::Config(format!(
                "an emulator or IP address URL names the account and the container: \
                 {endpoint}/{EMULATOR_ACCOUNT}/CONTAINER"
            )))
        }
        (0, _) => return Err(StoreError::Config(
            "the URL names no container: expected https://ACCOUNT.blob.core.windows.net/CONTAINER"
                .into(),
        )),
        _ => {
            return Err(StoreError::Config(
                "the URL names a path inside the container: give the container URL only".into(),
            ))
        }
    };
    check_account(&account)?;
    check_container(&container)?;

    let (credential, credential_source) = match nonempty(url.query().map(str::to_string)) {
        Some(query) => (
            Credential::Sas(SasToken::parse(&query)?),
            CredentialSource::Url,
        ),
        None => credential_from_env(&account, &host, env)?,
    };
    Ok(AzureTarget {
        endpoint,
        account,
        container,
        path_style,
        credential,
        credential_source,
    })
}

fn credential_from_env(
    account: &str,
    host: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Credential, CredentialSource), StoreError> {
    if let Some(sas) = nonempty(env(ENV_SAS_TOKEN)) {
        let sas = SasToken::parse(&sas)
            .map_err(|e| StoreError::Config(format!("{ENV_SAS_TOKEN}: {}", inner_message(e))))?;
        return Ok((Credential::Sas(sas), CredentialSource::SasTokenVar));
    }
    if let Some(key) = nonempty(env(ENV_ACCOUNT_KEY)) {
        let key = AccountKey::from_base64(&key)
            .map_err(|e| StoreError::Config(format!("{ENV_ACCOUNT_KEY}: {}", inner_message(e))))?;
        return Ok((Credential::SharedKey(key), CredentialSource::AccountKeyVar));
    }
    if let Some(cs) = nonempty(env(ENV_CONNECTION_STRING)) {
        let cred = credential_from_connection_string(&cs, account).map_err(|e| {
            StoreError::Config(format!("{ENV_CONNECTION_STRING}: {}", inner_message(e)))
        })?;
        return Ok((cred, CredentialSource::ConnectionString));
    }
    if account == EMULATOR_ACCOUNT && is_loopback_host(host) {
        let key = AccountKey::from_base64(EMULATOR_ACCOUNT_KEY)?;
        return Ok((
            Credential::SharedKey(key),
            CredentialSource::EmulatorDefault,
        ));
    }
    Ok((Credential::Anonymous, CredentialSource::None))
}

fn inner_message(e: StoreError) -> String {
    match e {
        StoreError::Config(m) => m,
        other => other.to_string(),
    }
}

/// Reads the credential out of a connection string
/// (`Key=Value;Key=Value`, keys case-insensitive).
fn credential_from_connection_string(cs: &str, account: &str) -> Result<Credential, StoreError> {
    let mut fields = Vec::new();
    for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            StoreError::Config("not a connection string (expected Key=Value;...)".into())
        })?;
        fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        if account != EMULATOR_ACCOUNT {
            return Err(StoreError::Config(format!(
                "UseDevelopmentStorage is for account {EMULATOR_ACCOUNT}, but the URL names account {account}"
            )));
        }
        return Ok(Credential::SharedKey(AccountKey::from_base64(
            EMULATOR_ACCOUNT_KEY,
        )?));
    }
    if let Some(name) = get("accountname") {
        if name != account {
            return Err(StoreError::Config(format!(
                "it is for account {name}, but the URL names account {account}"
            )));
        }
    }
    if let Some(sas) = get("sharedaccesssignature") {
        return Ok(Credential::Sas(SasToken::parse(sas)?));
    }
    if let Some(key) = get("accountkey") {
        return Ok(Credential::SharedKey(AccountKey::from_base64(key)?));
    }
    Err(StoreError::Config(
        "it has neither SharedAccessSignature nor AccountKey".into(),
    ))
}

/// Hosts addressed path style (`/ACCOUNT/CONTAINER`): IP addresses,
/// `localhost` and single-label names such as a container called `azurite`.
fn is_path_style_host(host: &str) -> bool {
    !host.contains('.')
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok()
}

/// Whether `host` is `localhost` or a loopback IP address.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Azure account names: 3–24 lowercase letters and digits.
fn check_account(account: &str) -> Result<(), StoreError> {
    let ok = (3..=24).contains(&account.len())
        && account
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "{account:?} is not a storage account name (3-24 lowercase letters and digits)"
        )))
    }
}

/// Azure container names: 3–63 of lowercase letters, digits and single
/// hyphens, starting and ending with a letter or digit; or `$root`.
fn check_container(container: &str) -> Result<(), StoreError> {
    let b = container.as_bytes();
    let ok = container == "$root"
        || ((3..=63).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && !container.contains("--"));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "{container:?} is not a container name (3-63 lowercase letters, digits and \
             single hyphens, starting and ending with a letter or digit)"
        )))
    }
}

/// Percent-decodes one URL component (`+` stays `+`).
fn decode_component(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Seconds since the Unix epoch of an ISO 8601 UTC time as SAS tokens write
/// it (`2024-05-01`, `2024-05-01T12:00Z`, `2024-05-01T12:00:00.5Z`).
fn parse_iso8601(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = text.split_once('T').unwrap_or((text, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi) = (t.next()??, t.next()??);
    let s = t.next().flatten().unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, m, day) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `now` formatted as ISO 8601 UTC to the second (`2024-05-01T12:00:00Z`).
pub fn iso8601(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil_from_days (H. Hinnant).
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "AbC%2Bd%2Fe%3D";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn azure(text: &str, env: &dyn Fn(&str) -> Option<String>) -> AzureTarget {
        match Location::parse(text, env) {
            Ok(Location::Azure(t)) => t,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn local_forms() {
        let cases = [
            ("/data/container", "/data/container"),
            ("relative/dir", "relative/dir"),
            ("file:///data/c", "/data/c"),
            ("file://localhost/data/c", "/data/c"),
            ("file:///with%20space", "/with space"),
        ];
        for (input, path) in cases {
            assert_eq!(
                Location::parse(input, &no_env).unwrap(),
                Location::Local(PathBuf::from(path)),
                "{input}"
            );
        }
    }

    #[test]
    fn azure_forms() {
        // (input, endpoint, account, container, path_style)
        let cases = [
            (
                "https://acct.blob.core.windows.net/cont",
                "https://acct.blob.core.windows.net",
                "acct",
                "cont",
                false,
            ),
            (
                "https://acct.blob.core.windows.net/cont/",
                "https://acct.blob.core.windows.net",
                "acct",
                "cont",
                false,
            ),
            (
                "HTTPS://Acct.Blob.Core.Windows.Net/cont",
                "https://acct.blob.core.windows.net",
                "acct",
                "cont",
                false,
            ),
            (
                "https://acct.blob.core.chinacloudapi.cn/cont",
                "https://acct.blob.core.chinacloudapi.cn",
                "acct",
                "cont",
                false,
            ),
            (
                "http://127.0.0.1:10000/devstoreaccount1/cont",
                "http://127.0.0.1:10000",
                "devstoreaccount1",
                "cont",
                true,
            ),
            (
                "http://localhost:43111/devstoreaccount1/my-cont",
                "http://localhost:43111",
                "devstoreaccount1",
                "my-cont",
                true,
            ),
            (
                "http://azurite:10000/devstoreaccount1/cont",
                "http://azurite:10000",
                "devstoreaccount1",
                "cont",
                true,
            ),
            (
                "http://[::1]:5/devstoreaccount1/cont",
                "http://[::1]:5",
                "devstoreaccount1",
                "cont",
                true,
            ),
        ];
        for (input, endpoint, account, container, path_style) in cases {
            let t = azure(input, &no_env);
            assert_eq!(t.endpoint, endpoint, "{input}");
            assert_eq!(t.account, account, "{input}");
            assert_eq!(t.container, container, "{input}");
            assert_eq!(t.path_style, path_style, "{input}");
        }
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_sas() {
        let cases = [
            ("https://acct.blob.core.windows.net/", "names no container"),
            (
                "https://acct.blob.core.windows.net/cont/blob",
                "path inside",
            ),
            ("http://127.0.0.1:10000/cont", "account and the container"),
            ("http://127.0.0.1:10000/a/cont/blob", "path inside"),
            (
                "https://acct.blob.core.windows.net/Upper",
                "not a container name",
            ),
            (
                "https://acct.blob.core.windows.net/a--b",
                "not a container name",
            ),
            (
                "https://acct.blob.core.windows.net/ab",
                "not a container name",
            ),
            (
                "https://a.blob.core.windows.net/cont",
                "not a storage account",
            ),
            (
                "https://acct.blob.core.windows.net/cont?sv=1&sp=r",
                "no sig=",
            ),
            ("https://u:p@acct.blob.core.windows.net/cont", "user name"),
            ("s3://bucket/x", "unsupported URL scheme"),
            ("file://otherhost/x", "not host"),
        ];
        for (input, expected) in cases {
            let err = Location::parse(input, &no_env).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(expected), "{input}: {msg}");
        }
        let err = Location::parse(
            &format!("https://acct.blob.core.windows.net/cont/blob?sv=1&sig={SIG}"),
            &no_env,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("AbC"), "{err}");
    }

    #[test]
    fn sas_is_redacted_everywhere() {
        let t = azure(
            &format!("https://acct.blob.core.windows.net/cont?sv=2021-12-02&sp=racwdl&se=2099-01-01T00:00:00Z&sig={SIG}"),
            &no_env,
        );
        assert_eq!(t.credential_source, CredentialSource::Url);
        let Credential::Sas(sas) = &t.credential else {
            panic!("not a SAS")
        };
        assert_eq!(
            sas.query().expose(),
            &format!("sv=2021-12-02&sp=racwdl&se=2099-01-01T00:00:00Z&sig={SIG}")
        );
        assert_eq!(sas.field("sp"), Some("racwdl"));
        assert_eq!(sas.field("sig"), None);
        assert_eq!(sas.expired_at(SystemTime::now()), Some(false));
        for text in [
            format!("{t}"),
            format!("{t:?}"),
            format!("{sas:?}"),
            format!("{sas}"),
        ] {
            assert!(!text.contains("AbC"), "{text}");
            assert!(!text.contains(SIG), "{text}");
        }
        assert_eq!(
            t.to_string(),
            "https://acct.blob.core.windows.net/cont?sv=2021-12-02&sp=racwdl&se=2099-01-01T00:00:00Z&sig=<redacted>"
        );
        assert!(sas.signature_forms().contains(&"AbC+d/e=".to_string()));
        let loc = Location::Azure(t);
        assert_eq!(
            loc.without_secrets(),
            "https://acct.blob.core.windows.net/cont"
        );
        let json = serde_json::to_string(&loc).unwrap();
        assert!(
            json.contains("sig=<redacted>") && !json.contains("AbC"),
            "{json}"
        );
    }

    #[test]
    fn credential_precedence() {
        let key = base64::engine::general_purpose::STANDARD.encode(b"secret-key-bytes");
        let sas = format!("?sv=2021-12-02&sig={SIG}");
        let cs_key = format!("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net");
        let cs_sas = format!(
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=1&sig={SIG}"
        );
        let env_of = |vars: Vec<(&'static str, String)>| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let url = "https://acct.blob.core.windows.net/cont";

        let all = env_of(vec![
            (ENV_SAS_TOKEN, sas.clone()),
            (ENV_ACCOUNT_KEY, key.clone()),
            (ENV_CONNECTION_STRING, cs_key.clone()),
        ]);
        let t = azure(&format!("{url}?sv=x&sig=fromurl"), &all);
        assert_eq!(t.credential_source, CredentialSource::Url);
        assert_eq!(
            azure(url, &all).credential_source,
            CredentialSource::SasTokenVar
        );

        let no_sas = env_of(vec![
            (ENV_SAS_TOKEN, "  ".to_string()),
            (ENV_ACCOUNT_KEY, key.clone()),
            (ENV_CONNECTION_STRING, cs_key.clone()),
        ]);
        let t = azure(url, &no_sas);
        assert_eq!(t.credential_source, CredentialSource::AccountKeyVar);
        assert!(matches!(t.credential, Credential::SharedKey(_)));

        let t = azure(url, &env_of(vec![(ENV_CONNECTION_STRING, cs_key.clone())]));
        assert_eq!(t.credential_source, CredentialSource::ConnectionString);
        assert!(matches!(t.credential, Credential::SharedKey(_)));
        let t = azure(url, &env_of(vec![(ENV_CONNECTION_STRING, cs_sas)]));
        assert!(matches!(t.credential, Credential::Sas(_)));
        assert!(!format!("{t:?}").contains("AbC"));

        let err = Location::parse(
            "https://other.blob.core.windows.net/cont",
            &env_of(vec![(ENV_CONNECTION_STRING, cs_key)]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("for account acct"), "{err}");
        assert!(!err.to_string().contains(&key));

        let t = azure("http://127.0.0.1:1/devstoreaccount1/cont", &no_env);
        assert_eq!(t.credential_source, CredentialSource::EmulatorDefault);
        let t = azure(
            "http://127.0.0.1:1/devstoreaccount1/cont",
            &env_of(vec![(
                ENV_CONNECTION_STRING,
                "UseDevelopmentStorage=true".into(),
            )]),
        );
        assert_eq!(t.credential_source, CredentialSource::ConnectionString);
        assert_eq!(azure(url, &no_env).credential, Credential::Anonymous);

        let err = Location::parse(url, &env_of(vec![(ENV_ACCOUNT_KEY, "!!".into())])).unwrap_err();
        assert!(err.to_string().contains(ENV_ACCOUNT_KEY), "{err}");
    }

    #[test]
    fn sas_expiry() {
        let sas = SasToken::parse("se=2020-01-01&sig=x").unwrap();
        assert_eq!(sas.expired_at(SystemTime::now()), Some(true));
        let sas = SasToken::parse("se=2020-01-01T10%3A00%3A00Z&sig=x").unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1_577_872_799); // 09:59:59
        assert_eq!(sas.expired_at(at), Some(false));
        assert_eq!(sas.expired_at(at + Duration::from_secs(1)), Some(true));
        assert_eq!(SasToken::parse("sig=x").unwrap().expired_at(at), None);
    }

    #[test]
    fn iso8601_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(iso8601(t), "2023-11-14T22:13:20Z");
        assert_eq!(parse_iso8601("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
