//! Shared test support: the Azurite harness, the fault-injecting proxy, SAS
//! generation for the emulator account, and a tracing capture.

#![allow(dead_code)]

pub mod azurite;
pub mod fault_proxy;
pub mod fixtures;
pub mod mount;
pub mod read;
pub mod stores;
pub mod tree;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// An account SAS for the emulator account (`ss=b`, `srt=sco`) with
/// permissions `sp`, valid until `se`, signed with `key` (base64). Returns
/// the query string (`sv=...&sig=...`).
pub fn account_sas(account: &str, key: &str, sp: &str, se: &str) -> String {
    let sv = "2021-12-02";
    let (ss, srt, st, sip, spr, ses) = ("b", "sco", "", "", "", "");
    let to_sign = format!("{account}\n{sp}\n{ss}\n{srt}\n{st}\n{se}\n{sip}\n{spr}\n{sv}\n{ses}\n");
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("key is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let sig = percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC);
    format!("sv={sv}&ss={ss}&srt={srt}&sp={sp}&se={se}&sig={sig}")
}

/// The `sig` value of a SAS query string, as it appears in the URL and
/// decoded.
pub fn sig_forms(sas: &str) -> Vec<String> {
    let raw = sas
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .expect("sas has sig")
        .to_string();
    let decoded = percent_encoding::percent_decode_str(&raw)
        .decode_utf8_lossy()
        .into_owned();
    let mut forms = vec![raw, decoded.clone()];
    // Also the signature's core without base64 padding, in case something
    // re-encodes or truncates it.
    forms.push(decoded.trim_end_matches('=').to_string());
    forms
}

/// A `tracing` writer collecting everything into memory.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}
