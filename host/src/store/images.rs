//! Screenshots stored once by content hash and referenced from events.
//!
//! An image belongs to the sessions that stored it (`session_images`): it
//! is read only through one of them, so knowing a hash never lets a user
//! read another user's screenshot, and it is deleted with the last of them.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub sha256: String,
    pub media_type: String,
    pub width: i64,
    pub height: i64,
    pub bytes: Vec<u8>,
}

pub(super) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Store {
    /// Stores an image for a session (once per content) and returns its hash.
    pub async fn put_image(
        &self,
        session_id: &str,
        bytes: &[u8],
        media_type: &str,
        width: u32,
        height: u32,
    ) -> Result<String, StoreError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO images (sha256, media_type, width, height, data) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&sha256)
        .bind(media_type)
        .bind(width as i64)
        .bind(height as i64)
        .bind(b64().encode(bytes))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO session_images (session_id, sha256) VALUES ($1, $2) \
             ON CONFLICT (session_id, sha256) DO NOTHING",
        )
        .bind(session_id)
        .bind(&sha256)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(sha256)
    }

    /// An image the session stored; `NotFound` for any other image.
    pub async fn image(&self, session_id: &str, sha256: &str) -> Result<StoredImage, StoreError> {
        let row = sqlx::query(
            "SELECT i.sha256, i.media_type, i.width, i.height, i.data FROM images i \
             JOIN session_images s ON s.sha256 = i.sha256 WHERE s.session_id = $1 AND i.sha256 = $2",
        )
        .bind(session_id)
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let data: String = row.try_get("data")?;
        Ok(StoredImage {
            sha256: row.try_get("sha256")?,
            media_type: row.try_get("media_type")?,
            width: row.try_get("width")?,
            height: row.try_get("height")?,
            bytes: b64()
                .decode(data)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }

    pub async fn image_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM images")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
