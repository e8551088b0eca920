//! The secret scan: fake AWS credentials are given to every operator, and any trace of them in a
//! log line, event, status or metric fails the suite; the operator's /metrics are scraped for
//! it all along.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;

use crate::support::metrics::scrape;

/// Fake credentials given to every operator process.
const SECRET_ACCESS_KEY: &str = "fAuLtSuItE/sEcReT+wJalrXUtnFEMI0K7MDENGbPxRfiCY";
const ACCESS_KEY_ID: &str = "AKIAFAULTSUITE7KEYID";
/// What the scan searches for.
pub const NEEDLES: [&str; 2] = [SECRET_ACCESS_KEY, ACCESS_KEY_ID];

/// The operator's environment: the fake credentials and `RUST_LOG`.
pub fn operator_env(rust_log: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY_ID.to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            SECRET_ACCESS_KEY.to_owned(),
        ),
        ("RUST_LOG".to_owned(), rust_log.to_owned()),
    ]
}

#[derive(Default)]
pub struct SecretScan {
    pub hits: Vec<String>,
    /// Bytes scanned per source.
    pub scanned: BTreeMap<String, usize>,
}

impl SecretScan {
    pub fn scan(&mut self, source: &str, text: &str) {
        *self.scanned.entry(source.to_owned()).or_default() += text.len();
        for (what, needle) in [
            ("the secret access key", SECRET_ACCESS_KEY),
            ("the access key id", ACCESS_KEY_ID),
        ] {
            if let Some(at) = text.find(needle) {
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                self.hits
                    .push(format!("{source} contains {what}: …{}…", &text[from..at]));
            }
        }
    }

    pub fn merge(&mut self, other: SecretScan) {
        self.hits.extend(other.hits);
        for (k, v) in other.scanned {
            *self.scanned.entry(k).or_default() += v;
        }
    }
}

/// Scrapes an operator's /metrics every few seconds and searches each scrape for the secret.
pub struct Scraper {
    pub port: u16,
    scrapes: AtomicU64,
    scan: Mutex<SecretScan>,
}

impl Scraper {
    pub fn new(port: u16) -> Self {
        Self {
            port,
            scrapes: AtomicU64::new(0),
            scan: Mutex::new(SecretScan::default()),
        }
    }

    pub async fn once(&self) {
        if let Ok(text) = scrape(self.port).await {
            self.scrapes.fetch_add(1, Ordering::Relaxed);
            self.scan
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .scan("operator /metrics", &text);
        }
    }

    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            self.once().await;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(3)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    /// What the scrapes found so far; the scraper starts over.
    pub fn take_scan(&self) -> SecretScan {
        std::mem::take(&mut *self.scan.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
