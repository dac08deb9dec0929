//! Images plugins refer to by handle. Content-addressed (the same
//! screenshot twice is stored once) and bounded: the oldest images are
//! evicted past the byte budget, which the session store will back with
//! durable storage.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::EncodedImage;

#[derive(Debug, Clone)]
pub struct StoredImage {
    pub bytes: Arc<[u8]>,
    pub width: u32,
    pub height: u32,
    pub media_type: &'static str,
}

#[derive(Default)]
struct Inner {
    by_handle: HashMap<String, StoredImage>,
    order: VecDeque<String>,
    bytes: usize,
}

pub struct ImageStore {
    budget: usize,
    inner: Mutex<Inner>,
}

impl Default for ImageStore {
    fn default() -> Self {
        Self::with_budget(256 << 20)
    }
}

impl ImageStore {
    pub fn with_budget(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::default(),
        }
    }

    /// Stores the image and returns its handle.
    pub fn put(&self, image: EncodedImage) -> String {
        // The handle carries the full SHA-256 so the session store, which keys
        // images by it, can resolve handles after the in-memory copy is gone.
        let handle = format!("img-{}", hex::encode(Sha256::digest(&image.bytes)));
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.by_handle.contains_key(&handle) {
            return handle;
        }
        inner.bytes += image.bytes.len();
        inner.order.push_back(handle.clone());
        inner.by_handle.insert(
            handle.clone(),
            StoredImage {
                bytes: image.bytes.into(),
                width: image.width,
                height: image.height,
                media_type: image.media_type,
            },
        );
        while inner.bytes > self.budget && inner.order.len() > 1 {
            if let Some(old) = inner.order.pop_front() {
                if let Some(gone) = inner.by_handle.remove(&old) {
                    inner.bytes -= gone.bytes.len();
                }
            }
        }
        handle
    }

    pub fn get(&self, handle: &str) -> Option<StoredImage> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_handle
            .get(handle)
            .cloned()
    }
}
